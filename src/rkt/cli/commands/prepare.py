"""``rkt prepare IMAGE...``: fetch images and prepare a pod to be run by ``rkt run-prepared``."""

from __future__ import annotations

import sys

from rkt.cli.commands.run import prepare_from_args, usage
from rkt.cli.globals import parse_globals
from rkt.cli.run_args import parse_run_args, reject_unsupported


def run_raw(argv: list[str]) -> int:
    parsed = parse_run_args(argv)
    if parsed.help:
        sys.stdout.write(usage().replace("rkt run", "rkt prepare"))
        return 0
    reject_unsupported(parsed)
    opts = parse_globals(parsed.globals)
    prepared = prepare_from_args(parsed, opts, "prepare")
    quiet = parsed.flag_bool("--quiet")
    if not quiet:
        sys.stderr.write(f"prepared pod {prepared.pod.uuid}\n")
    print(prepared.pod.uuid)
    return 0
