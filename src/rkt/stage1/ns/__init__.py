"""The "ns" stage1 flavor (the default): namespaces + cgroups, a small Python pod init.

``ENTRYPOINTS`` maps each ABI entrypoint to the module that implements it; each module has
``main(argv) -> int`` and runs with ``python -m``. stage0's stage1-image generator writes one
script per entrypoint calling these. Importing this package imports nothing else.
"""

from __future__ import annotations

ENTRYPOINTS = {
    "run": "rkt.stage1.ns.run",
    "enter": "rkt.stage1.ns.enter",
    "stop": "rkt.stage1.ns.stop",
    "gc": "rkt.stage1.ns.gc",
}
