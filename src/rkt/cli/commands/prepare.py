"""``rkt prepare IMAGE...``: fetch images and prepare a pod to be run by ``rkt run-prepared``."""

from __future__ import annotations

import sys

from rkt.cli.commands.run import prepare_from_args, usage
from rkt.cli.globals import parse_globals
from rkt.cli.run_args import RUN_TIME_FLAGS, parse_run_args, reject_unsupported
from rkt.errors import UsageError


def run_raw(argv: list[str]) -> int:
    parsed = parse_run_args(argv)
    if parsed.help:
        sys.stdout.write(usage("prepare"))
        return 0
    refused = sorted(RUN_TIME_FLAGS & parsed.pod.keys())
    if refused:
        raise UsageError(
            f"{refused[0]} is a flag of rkt run-prepared: a prepared pod does not keep it"
        )
    reject_unsupported(parsed)
    opts = parse_globals(parsed.globals)
    prepared = prepare_from_args(parsed, opts, "prepare")
    quiet = parsed.flag_bool("--quiet")
    if not quiet:
        sys.stderr.write(f"prepared pod {prepared.pod.uuid}\n")
    print(prepared.pod.uuid)
    return 0
