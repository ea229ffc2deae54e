"""Build step (``make setup``): the stage1's prebuilt default seccomp filter.

``python -m rkt.stage1.ns.prebuilt BIN_DIR`` writes ``BIN_DIR/seccomp-default``: the seccomp
step's arguments exactly as the planner writes them for rkt's default policy
(``launch.seccomp_args(DEFAULT_POLICY)``), then the BPF that ``BIN_DIR/app-exec`` compiles from
them with its own (static) libseccomp. The file ships in the stage1 image beside ``app-exec``
(stage1_image.NATIVE_FILES); the planner gives its BPF to ``app-exec`` as is ("seccomp-bpf")
when an app's rules are byte for byte the default ones (``launch.seccomp_step``): ~1 ms of
every app start. A stale file cannot give a wrong filter: rules that differ in any byte are
compiled by ``app-exec``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from rkt.stage1.common.seccomp import DEFAULT_POLICY
from rkt.stage1.ns.launch import PREBUILT, LaunchPlan, encode_args, seccomp_args


def step_bytes() -> bytes:
    """The default step's arguments, encoded as in a launch plan (without the keyword)."""
    return encode_args(seccomp_args(DEFAULT_POLICY))


def compile_default(app_exec: str) -> bytes:
    """The BPF ``app_exec`` compiles for the default step."""
    plan = LaunchPlan("prebuilt")
    plan.step("seccomp", *seccomp_args(DEFAULT_POLICY))
    read_end, write_end = os.pipe()
    os.write(write_end, plan.encode())
    os.close(write_end)
    try:
        proc = subprocess.run(
            [app_exec, "--export-bpf", str(read_end)],
            pass_fds=(read_end,),
            capture_output=True,
            check=True,
        )
    finally:
        os.close(read_end)
    if not proc.stdout or len(proc.stdout) % 8:
        raise SystemExit(f"{app_exec} --export-bpf gave {len(proc.stdout)} bytes")
    return proc.stdout


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rkt.stage1.ns.prebuilt BIN_DIR", file=sys.stderr)
        return 2
    bin_dir = argv[0]
    target = os.path.join(bin_dir, PREBUILT)
    data = step_bytes() + compile_default(os.path.join(bin_dir, "app-exec"))
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
