"""The gc entrypoint (docs/stage1-abi.md §3 "gc"): release what the pod holds outside its
directory. For this flavor: the pod's cgroups (mounts live and die in the pod's own mount
namespace; --net=none's namespace dies with its last process), then its CNI networks and pinned
network namespace (``rkt.stage1.ns.network.teardown_network``). Processes still in the
cgroups are killed first. Idempotent; what is already gone is not an error.

Imports only the standard library, ``rkt.host``, ``rkt.stage1``.
"""

from __future__ import annotations

import sys

from rkt.host.cgroups import detect_backend
from rkt.stage1.common.args import parse_gc
from rkt.stage1.common.entry import run_entrypoint
from rkt.stage1.common.poddir import NET_JOURNAL, PodDir
from rkt.stage1.ns._pod import load_pod_cgroup


def _gc(argv: list[str]) -> int:
    args = parse_gc(argv)
    pod = PodDir.from_cwd(args.uuid)
    cgroup = load_pod_cgroup(pod)
    if cgroup is not None:
        detect_backend().remove(cgroup)
    # After the cgroup: no process of the pod is left in the netns. Without a CNI journal there
    # is nothing to tear down, nor the network modules to import.
    if pod.file(NET_JOURNAL).exists():
        from rkt.stage1.ns.network import teardown_network

        teardown_network(pod)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint("gc", _gc, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
