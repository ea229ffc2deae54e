"""Resident memory of the runtime's own processes for N idle pods (issue 3, acceptance 7), against
systemd-nspawn; the peer measurement is shared/peers/04-memory.sh (memtest.py).

Per repetition and runtime (the order alternates between repetitions): start N pods running
``sleep 3600`` at once (rkt: ``rkt run --net=none``; nspawn: ``systemd-nspawn --register=no
--keep-unit --quiet --read-only -M NAME -D ROOTFS``), wait until every ``sleep`` runs, settle 2 s,
then sum RSS and PSS (``/proc/PID/smaps_rollup``) of every process of the pod that is not the
payload: rkt's stage1 run process and pod init, nspawn's own process. Then stop everything (SIGTERM
to the started processes; rkt gc) and check that nothing is left. A third case is N empty mutable
pods (``rkt app sandbox --net=none``, what a Kubernetes node keeps per pod sandbox), counted once
each pod's supervisor runs. Both are started through
``nsenter`` into the benchmark mount namespace (see ``run_pod``).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import BenchError
from run_pod import (
    IMAGE_SLEEP,
    BenchNamespace,
    compile_bytecode,
    fetch_into,
    gc_pods,
    make_image,
    make_rootfs,
    need,
    rkt_env,
)

PAYLOAD = "sleep"
SANDBOX = "rkt app sandbox (mutable, empty)"


def rollup(pid: int) -> tuple[int, int]:
    """(RSS kB, PSS kB) of a process; (0, 0) once it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return rss, pss


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        pass
    return out


def tree(pid: int) -> list[tuple[int, int]]:
    """(pid, depth) of a process and its descendants."""
    out, todo = [], [(pid, 0)]
    while todo:
        p, depth = todo.pop()
        out.append((p, depth))
        todo += [(c, depth + 1) for c in children(p)]
    return out


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except FileNotFoundError:
        return "?"


@dataclass
class Snapshot:
    runtime: str
    n: int
    start_s: float
    procs: list[tuple[int, int, str, int, int]] = field(
        default_factory=list
    )  # pid depth comm rss pss

    def runtime_procs(self) -> list[tuple[int, int, str, int, int]]:
        return [p for p in self.procs if p[2] != PAYLOAD]

    def payload_procs(self) -> list[tuple[int, int, str, int, int]]:
        return [p for p in self.procs if p[2] == PAYLOAD]

    def per_pod(self, procs: list[tuple[int, int, str, int, int]], col: int) -> float:
        return sum(p[col] for p in procs) / self.n

    def by_depth(self) -> dict[int, float]:
        depths = sorted({p[1] for p in self.runtime_procs()})
        return {d: self.per_pod([p for p in self.runtime_procs() if p[1] == d], 4) for d in depths}


def _start(
    kind: str,
    n: int,
    argv_for: Callable[[int], list[str]],
    env: dict[str, str],
    ready_comm: str = PAYLOAD,
) -> Snapshot:
    procs = []
    t0 = time.perf_counter()
    try:
        for i in range(n):
            procs.append(
                subprocess.Popen(
                    argv_for(i),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                )
            )
        deadline = time.perf_counter() + 90
        while True:
            running = sum(1 for p in procs for c, _ in tree(p.pid) if comm(c) == ready_comm)
            if running >= n:
                break
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.perf_counter() > deadline:
                raise BenchError(
                    f"memory: {kind}: {running} of {n} pods running ({len(dead)} died)"
                )
            time.sleep(0.05)
        snap = Snapshot(kind, n, time.perf_counter() - t0)
        time.sleep(2)
        for p in procs:
            for pid, depth in tree(p.pid):
                rss, pss = rollup(pid)
                snap.procs.append((pid, depth, comm(pid), rss, pss))
        return snap
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@dataclass
class MemoryReport:
    n: int
    snaps: list[Snapshot]
    notes: list[str] = field(default_factory=list)

    def _cells(self, kind: str, value: Callable[[Snapshot], float], fmt: str = "{:.0f}") -> str:
        vals = [value(s) for s in self.snaps if s.runtime == kind]
        mid = fmt.format(statistics.median(vals))
        return f"{mid} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"

    def markdown(self) -> str:
        kinds = list(dict.fromkeys(s.runtime for s in self.snaps))
        reps = len(self.snaps) // max(1, len(kinds))
        rows: list[tuple[str, Callable[[Snapshot], float], str]] = [
            ("runtime processes (all pods)", lambda s: len(s.runtime_procs()), "{:.0f}"),
            ("runtime RSS kB per pod", lambda s: s.per_pod(s.runtime_procs(), 3), "{:.0f}"),
            ("**runtime PSS kB per pod**", lambda s: s.per_pod(s.runtime_procs(), 4), "{:.0f}"),
            ("payload PSS kB per pod", lambda s: s.per_pod(s.payload_procs(), 4), "{:.0f}"),
            (f"time until all {self.n} payloads run (s)", lambda s: s.start_s, "{:.2f}"),
        ]
        lines = [
            f"#### Resident memory of the runtime for {self.n} idle pods (`sleep 3600`)",
            "",
            f"{reps} repetitions (order alternated); median (min-max) over repetitions; RSS and "
            "PSS from /proc/PID/smaps_rollup after all payloads run and 2 s of settling.",
            "",
            "| metric | " + " | ".join(kinds) + " |",
            "|---|" + "---:|" * len(kinds),
        ]
        for name, value, fmt in rows:
            lines.append(
                f"| {name} | " + " | ".join(self._cells(k, value, fmt) for k in kinds) + " |"
            )
        lines.append("")
        for kind in kinds:
            snap = next(s for s in self.snaps if s.runtime == kind)
            parts = []
            for depth, pss in snap.by_depth().items():
                names = sorted({p[2] for p in snap.runtime_procs() if p[1] == depth})
                parts.append(f"depth {depth} ({'/'.join(names)}): {pss:.0f} kB")
            lines.append(
                f"- {kind}, PSS per pod by process (first repetition): " + "; ".join(parts)
            )
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, object]:
        return {
            "title": f"memory, {self.n} idle pods",
            "snapshots": [
                {"runtime": s.runtime, "n": s.n, "start_s": s.start_s, "procs": s.procs}
                for s in self.snaps
            ],
            "notes": self.notes,
        }


def _leftovers(data: Path) -> list[str]:
    left = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if str(data).encode() in cmd or b"rkt-bench-mem-" in cmd:
                left.append(p)
    return left


def run(
    *, rkt: Path, workdir: Path, pods: int, reps: int, log: Callable[[str], None]
) -> list[MemoryReport]:
    need("systemd-nspawn", "busybox")
    compile_bytecode(rkt)
    env = rkt_env()
    work = workdir / "memory"
    work.mkdir(parents=True, exist_ok=True)
    rootfs = make_rootfs(work / "rootfs")
    data = work / "data"
    fetch_into(rkt, data, make_image(rkt, work, rootfs, IMAGE_SLEEP, ["/bin/sleep", "3600"]), env)
    report = MemoryReport(pods, [])
    with BenchNamespace() as ns:
        rkt_argv = [*ns.prefix, str(rkt), f"--dir={data}", "run", "--net=none"]
        rkt_argv += ["--pull-policy=never", f"{IMAGE_SLEEP}:1"]
        nspawn = [*ns.prefix, "systemd-nspawn", "--register=no", "--keep-unit", "--quiet"]
        nspawn += ["--read-only"]
        sandbox = [*ns.prefix, str(rkt), f"--dir={data}", "app", "sandbox", "--net=none"]
        runtimes: dict[str, Callable[[int], list[str]]] = {
            "rkt run --net=none": lambda i: rkt_argv,
            SANDBOX: lambda i: sandbox,
            "systemd-nspawn": lambda i: [
                *nspawn,
                "-M",
                f"rkt-bench-mem-{os.getpid()}-{i}",
                "-D",
                str(rootfs),
                "/bin/sleep",
                "3600",
            ],
        }
        try:
            for rep in range(reps):
                order = list(runtimes) if rep % 2 == 0 else list(reversed(runtimes))
                for kind in order:
                    time.sleep(1)
                    ready = "pod-supervisor" if kind == SANDBOX else PAYLOAD
                    snap = _start(kind, pods, runtimes[kind], env, ready)
                    gc_pods(rkt, data, env, ns.prefix)
                    report.snaps.append(snap)
                    log(
                        f"memory: {kind}: runtime PSS "
                        f"{snap.per_pod(snap.runtime_procs(), 4):.0f} kB/pod, RSS "
                        f"{snap.per_pod(snap.runtime_procs(), 3):.0f} kB/pod "
                        f"({len(snap.runtime_procs())} processes)"
                    )
        finally:
            gc_pods(rkt, data, env, ns.prefix)
    left = _leftovers(data)
    report.notes.append(
        "both started with `nsenter --mount=<bench ns> --`; after each batch: SIGTERM to every "
        "started process, rkt gc; processes left afterwards: " + str(len(left))
    )
    if left:
        raise BenchError(f"memory: processes left behind: {', '.join(left)}")
    return [report]
