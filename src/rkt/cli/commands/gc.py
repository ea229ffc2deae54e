"""``rkt gc [--grace-period=30m] [--expire-prepared=24h] [--mark-only]``: mark and sweep pods.

Pass 1 moves exited pods to ``exited-garbage``, aborted prepares and prepared pods older than
``--expire-prepared`` to ``garbage`` (rkt/gc.go); pass 2 deletes marked pods whose mark is older
than ``--grace-period``, after the stage1 gc entrypoint. Prints rkt's lines.
"""

from __future__ import annotations

import sys

from rkt.cli.commands.status import pods_root
from rkt.cli.flags import parse_age
from rkt.cli.quickparse import add_bool
from rkt.errors import EXIT_ERROR
from rkt.pod.pod import ensure_pods_root
from rkt.settings import GlobalOptions
from rkt.stage0.pods import gc_pods

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grace-period",
        default="30m",
        metavar="DUR",
        help="how long a pod stays marked as garbage before it is removed (default 30m)",
    )
    parser.add_argument(
        "--expire-prepared",
        default="24h",
        metavar="DUR",
        help="how long a prepared pod may wait for run-prepared (default 24h)",
    )
    add_bool(parser, "--mark-only", False, "only mark pods as garbage, remove nothing")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    grace = parse_age(args.grace_period, "--grace-period")
    expire = parse_age(args.expire_prepared, "--expire-prepared")
    pods_root(opts, "gc")
    report = gc_pods(
        ensure_pods_root(opts.dir), grace=grace, expire_prepared=expire, mark_only=args.mark_only
    )
    for uuid in report.marked:
        sys.stderr.write(f'moving pod "{uuid}" to garbage\n')
    for uuid in report.removed:
        print(f'Garbage collecting pod "{uuid}"')
    for uuid, message in report.failed:
        sys.stderr.write(f'rkt: cannot garbage collect pod "{uuid}": {message}\n')
    return EXIT_ERROR if report.failed else 0
