"""``rkt list`` with 1, 50 and 200 pods (issue 3, acceptance 7): it should be flat-ish in the
number of pods.

Three data directories hold 1, 50 and 200 exited pods (``rkt run --net=none`` of ``/bin/true``,
made a few at a time before timing); ``rkt list`` of each is one case, interleaved round by round
(``harness.compare``), baseline the 1-pod directory. A ``--format=json`` case per directory is
timed too (it reads every pod's status and apps). ``rkt gc`` removes every pod afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import BenchError, Case, Comparison, Sample, compare
from run_pod import (
    IMAGE_TRUE,
    compile_bytecode,
    fetch_into,
    gc_pods,
    make_image,
    make_rootfs,
    need,
    ok,
    rkt_env,
)

SIZES = (1, 50, 200)


def _count_check(want: int) -> Callable[[Sample], str | None]:
    def check(sample: Sample) -> str | None:
        problem = ok(sample)
        if problem:
            return problem
        rows = [line for line in sample.stdout.decode().splitlines()[1:] if line.strip()]
        return None if len(rows) >= want else f"listed {len(rows)} pods, expected {want}"

    return check


def _fill(
    rkt: Path, data: Path, want: int, env: dict[str, str], log: Callable[[str], None]
) -> None:
    listed = subprocess.run(
        [str(rkt), f"--dir={data}", "list", "--no-legend"],
        capture_output=True,
        text=True,
        env=env,
    )
    have = len([line for line in listed.stdout.splitlines() if line.strip()])
    argv = [
        str(rkt),
        f"--dir={data}",
        "run",
        "--net=none",
        "--pull-policy=never",
        f"{IMAGE_TRUE}:1",
    ]

    def one(_: int) -> int:
        return subprocess.run(argv, capture_output=True, env=env).returncode

    if want > have:
        log(f"list-pods: running {want - have} pods in {data}")
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(one, range(want - have)))
        if any(codes):
            raise BenchError(f"list-pods: {sum(1 for c in codes if c)} of the pod runs failed")


def run(
    *, rkt: Path, workdir: Path, rounds: int, warmup: int, log: Callable[[str], None]
) -> list[Comparison]:
    need("busybox")
    compile_bytecode(rkt)
    env = rkt_env()
    work = workdir / "list-pods"
    work.mkdir(parents=True, exist_ok=True)
    rootfs = make_rootfs(work / "rootfs")
    aci = make_image(rkt, work, rootfs, IMAGE_TRUE, ["/bin/true"])
    dirs = {n: work / f"data-{n}" for n in SIZES}
    try:
        for n, data in dirs.items():
            fetch_into(rkt, data, aci, env)
            _fill(rkt, data, n, env, log)
        cases = []
        for n, data in dirs.items():
            base = [str(rkt), f"--dir={data}", "list"]
            cases.append(
                Case(
                    f"rkt list ({n} pods)",
                    lambda base=base: base,
                    check=_count_check(n),
                    env=env,
                    description=f"rkt --dir=DATA list, DATA holding {n} exited pods",
                )
            )
        for n, data in dirs.items():
            base = [str(rkt), f"--dir={data}", "list", "--format=json"]
            cases.append(
                Case(
                    f"rkt list --format=json ({n} pods)", lambda base=base: base, check=ok, env=env
                )
            )
        result = compare(
            "rkt list with 1, 50 and 200 exited pods",
            cases,
            rounds=rounds,
            warmup=warmup,
            baselines=[f"rkt list ({SIZES[0]} pods)"],
            log=log,
        )
        result.notes.append("pods made by `rkt run --net=none` of /bin/true, 4 at a time, untimed")
        return [result]
    finally:
        for data in dirs.values():
            gc_pods(rkt, data, env)
            shutil.rmtree(data, ignore_errors=True)
