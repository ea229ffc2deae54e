"""CNI networking for pods (used by stage1 only; stage0 reads the results stage1 leaves behind).

Owns: running external programs (``rkt.net.program``), CNI plugin execution and the 1.0 protocol
(``rkt.net.cni``), network configurations — the built-in ``default`` and ``default-restricted``
and the user's ``net.d`` — and the ``--net`` grammar (``rkt.net.config``), port forwarding
(``rkt.net.ports``), resolv.conf and hosts (``rkt.net.dns``), the per-pod record of what was
attached (``rkt.net.state``). A leaf package: imports only the standard library, ``rkt.errors``
and ``rkt.net.*``. This ``__init__`` imports nothing.
"""
