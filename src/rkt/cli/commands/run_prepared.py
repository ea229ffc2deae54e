"""``rkt run-prepared UUID``: run a pod made by ``rkt prepare``."""

from __future__ import annotations

import argparse
import sys

from rkt.cli.commands.run import NETWORKS
from rkt.cli.flags import add_bool
from rkt.errors import UsageError
from rkt.pod.pod import ensure_pods_root, find_pod
from rkt.settings import GlobalOptions
from rkt.stage0.privileges import require_root
from rkt.stage0.run import RunOptions, exec_stage1, start_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", help="the prepared pod")
    parser.add_argument("--net", default="host", help=f"networks ({', '.join(NETWORKS)})")
    parser.add_argument("--hostname", default=None, help="pod hostname (default rkt-UUID)")
    add_bool(parser, "--interactive", False, "give the single app the terminal")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    require_root("run-prepared")
    if args.net.split(":", 1)[0] not in NETWORKS:
        raise UsageError(f'--net: network "{args.net}" is not available yet')
    pod = find_pod(ensure_pods_root(opts.dir), args.uuid)
    options = RunOptions(
        net=args.net,
        hostname=args.hostname,
        interactive=args.interactive,
        debug=opts.debug,
        insecure=tuple(
            n for n in opts.insecure.names() if n in ("capabilities", "paths", "seccomp")
        ),
    )
    _lock, argv, env = start_run(pod, options)
    sys.stdout.flush()
    exec_stage1(pod, argv, env)
