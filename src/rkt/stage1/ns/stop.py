"""The stop entrypoint (docs/stage1-abi.md §3 "stop"): SIGTERM to the pod's init, which stops the
apps gracefully (SIGTERM, SIGKILL after 10 s), exactly what the run process does on SIGTERM;
``--force``: SIGKILL to the init, and the kernel kills every process of its pid namespace.
Returns at once; a pod that is not running is not an error.

Imports only the standard library, ``rkt.stage1``.
"""

from __future__ import annotations

import os
import signal
import sys

from rkt.stage1.common.args import parse_stop
from rkt.stage1.common.entry import run_entrypoint
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.ns._pod import open_pod_init


def _stop(argv: list[str]) -> int:
    args = parse_stop(argv)
    pod = PodDir.from_cwd(args.uuid)
    pidfd = open_pod_init(pod)
    if pidfd is None:
        return 0
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL if args.force else signal.SIGTERM)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint("stop", _stop, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
