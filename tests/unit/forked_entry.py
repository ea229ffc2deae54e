"""A stand-in stage1 entrypoint for tests/unit/test_stage0_inprocess.py (run in a forked child)."""

from __future__ import annotations

import gc
import os
import sys
import time


def main(argv: list[str]) -> int:
    if argv[:1] == ["--gc"]:
        sys.stderr.write(f"collecting={gc.isenabled()} frozen={gc.get_freeze_count() > 0}\n")
        return 0
    if argv[:1] == ["--sleep"]:
        time.sleep(30)  # outlives the caller's timeout: it must kill us
    sys.stdout.write("stdout is discarded\n")
    sys.stderr.write(f"cwd={os.getcwd()} argv={argv} env={sorted(os.environ.items())}\n")
    return 3
