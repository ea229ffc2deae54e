"""``rkt stop [--force] [--uuid-file=F] UUID...``: stop running pods through their stage1.

The stage1 stop entrypoint only asks (docs/stage1-abi.md §3 stop); this command then waits on the
pod's lock until the pod has exited, up to ``STOP_WAIT`` seconds. As rkt/stop.go it prints each
stopped pod's UUID (quoted), says so for pods already stopped, and exits 254 if any pod failed.
"""

from __future__ import annotations

import sys

from rkt.cli.commands.status import add_uuid_file, lookup, pods_root, uuid_args
from rkt.cli.quickparse import add_bool
from rkt.errors import EXIT_ERROR, PodError, RktError
from rkt.paths import Path
from rkt.pod.pod import RUN, wait_for_exit
from rkt.settings import GlobalOptions
from rkt.stage0.pods import stop_pod

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse

# The stage1 kills with SIGKILL what SIGTERM has not ended after 10 s (docs/stage1-abi.md,
# "stop"): wait for that, with time for the pod to exit after it.
STOP_WAIT = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuids", metavar="UUID", nargs="*", help="pod UUIDs or unique prefixes")
    add_bool(parser, "--force", False, "kill the pod's processes at once (SIGKILL)")
    add_uuid_file(parser)


def stop_one(root: Path, text: str, *, force: bool) -> None:
    pod = lookup(root, text)
    if pod.phase != RUN or not pod.is_running():
        if pod.is_exited():
            print(f'pod "{pod.uuid}" is already stopped')
            return
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}, not running')
    stop_pod(pod, force=force)
    if not wait_for_exit(pod, STOP_WAIT):
        raise PodError(f'pod "{pod.uuid}": still running {STOP_WAIT:g}s after stop (try --force)')
    print(f'"{pod.uuid}"')


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    uuids = uuid_args(args.uuids, args.uuid_file)
    root = pods_root(opts, "stop")
    failed = 0
    for text in uuids:
        try:
            stop_one(root, text, force=args.force)
        except RktError as exc:
            sys.stdout.flush()
            sys.stderr.write(f"rkt: {exc.message}\n")
            failed += 1
    if failed and len(uuids) > 1:
        sys.stderr.write(f"rkt: failed to stop {failed} pod(s)\n")
    return EXIT_ERROR if failed else 0
