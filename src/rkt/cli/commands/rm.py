"""``rkt rm [--uuid-file=F] UUID...``: remove exited (or prepared, or aborted) pods at once.

The same clean-up as ``rkt gc`` without the grace period: the stage1 gc entrypoint, then the pod
directory (busy mounts are detached lazily, never a failure). Prints each removed pod's UUID
(quoted, as rkt/rm.go); exits 254 if any pod could not be removed.
"""

from __future__ import annotations

import sys

from rkt.cli.commands.status import add_uuid_file, lookup, pods_root, uuid_args
from rkt.errors import EXIT_ERROR, RktError
from rkt.settings import GlobalOptions
from rkt.stage0.pods import remove_pod

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuids", metavar="UUID", nargs="*", help="pod UUIDs or unique prefixes")
    add_uuid_file(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    uuids = uuid_args(args.uuids, args.uuid_file)
    root = pods_root(opts, "rm")
    failed = 0
    for text in uuids:
        try:
            pod = lookup(root, text)
            remove_pod(pod)
        except RktError as exc:
            sys.stdout.flush()
            sys.stderr.write(f"rkt: {exc.message}\n")
            failed += 1
            continue
        print(f'"{pod.uuid}"')
    if failed and len(uuids) > 1:
        sys.stderr.write("rkt: failed to remove one or more pods\n")
    return EXIT_ERROR if failed else 0
