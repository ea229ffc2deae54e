"""Every privileged kernel call rkt makes: mounts, namespaces, capabilities, cgroups.

Owns: the ``Host`` protocol (``rkt.host.api``), its Linux implementation over ctypes
(``rkt.host.linux``), a recording fake for tests (``rkt.host.fake``) and the cgroup backends
(``rkt.host.cgroups``). A leaf package: imports only the standard library and ``rkt.host.*``.

This ``__init__`` imports nothing, so a pod init that needs one helper pays for one module.
"""
