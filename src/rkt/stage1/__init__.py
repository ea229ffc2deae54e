"""stage1 flavors: ``common`` (shared by flavors) and ``ns`` (namespaces + cgroups, the default).

A stage1 talks to stage0 only through argv, the environment and files in the pod directory
(docs/stage1-abi.md); it never imports ``rkt.stage0``, ``rkt.cli``, ``rkt.fetch`` or ``rkt.store``.
"""
