"""Interleaved side-by-side timing of commands, with per-round ratios against baselines.

A comparison runs every case once per round, in a freshly shuffled order, so slow drift of a
shared machine (noisy neighbours, writeback, thermal) touches every case alike; it then reports,
for each case, the ratio of its time to each baseline's time *in the same round*, and the median
of those per-round ratios. Everything a case needs around a run (a fresh target directory, removing
it again, flushing the filesystem) happens in its ``prepare`` and ``cleanup`` hooks, outside the
timed region, which covers exactly ``posix_spawn`` to ``wait4`` of one process.

A failing run (non-zero exit, or a ``check`` that returns an error) stops the benchmark: a figure
from a command that did not do its job is worse than none.

Only the standard library is used, so a benchmark runs wherever the project's venv does.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


class BenchError(Exception):
    """A benchmark could not run, or a command failed."""


@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, the child's CPU seconds, exit code and captured output."""

    wall: float
    user: float
    system: float
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def cpu(self) -> float:
        return self.user + self.system


@dataclass
class Case:
    """A command to time. ``argv`` is called before every run (untimed) and returns the argv.

    ``prepare`` and ``cleanup`` run untimed before and after every run; ``check`` looks at the
    sample and returns an error message when the run did not do its job.
    """

    label: str
    argv: Callable[[], Sequence[str]]
    prepare: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None
    check: Callable[[Sample], str | None] | None = None
    env: Mapping[str, str] | None = None
    description: str = ""


def _resolve(program: str) -> str:
    if "/" in program:
        return program
    found = shutil.which(program)
    if found is None:
        raise BenchError(f'"{program}": not found on PATH')
    return found


def spawn_timed(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Sample:
    """Run ``argv`` (no shell) with stdin from /dev/null; time it from spawn to reaping."""
    args = [str(a) for a in argv]
    path = _resolve(args[0])
    environ = dict(os.environ if env is None else env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            actions = [
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ]
            start = time.perf_counter()
            pid = os.posix_spawn(path, args, environ, file_actions=actions)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - start
        finally:
            os.close(devnull)
        out.seek(0)
        err.seek(0)
        return Sample(
            wall=wall,
            user=usage.ru_utime,
            system=usage.ru_stime,
            returncode=os.waitstatus_to_exitcode(status),
            stdout=out.read(1 << 16),
            stderr=err.read()[-4000:],
        )


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (``q`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Comparison:
    """The samples of one interleaved comparison, round by round."""

    title: str
    labels: list[str]
    baselines: list[str]
    descriptions: dict[str, str]
    rounds: list[dict[str, Sample]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def walls(self, label: str) -> list[float]:
        return [r[label].wall for r in self.rounds]

    def cpus(self, label: str) -> list[float]:
        return [r[label].cpu for r in self.rounds]

    def ratios(self, label: str, baseline: str) -> list[float]:
        return [r[label].wall / r[baseline].wall for r in self.rounds]

    def median_ratio(self, label: str, baseline: str) -> float:
        return statistics.median(self.ratios(label, baseline))

    def subjects(self) -> list[str]:
        return [label for label in self.labels if label not in self.baselines]

    def round_line(self, index: int) -> str:
        samples = self.rounds[index]
        times = "  ".join(f"{label} {samples[label].wall:6.3f}s" for label in self.labels)
        ratios = "  ".join(
            f"{subject}/{base} {samples[subject].wall / samples[base].wall:4.2f}x"
            for subject in self.subjects()
            for base in self.baselines
        )
        return f"  round {index + 1:2d}: {times}   | {ratios}"

    def markdown(self) -> str:
        """A table: per case, wall time (median, min, max), CPU, median ratio vs each baseline."""
        heads = [f"÷ {base}" for base in self.baselines]
        lines = [
            f"#### {self.title}",
            "",
            f"{len(self.rounds)} interleaved rounds (shuffled order each round); wall seconds; "
            "CPU = user+system of the process and its children; ratio = median of the per-round "
            "ratios [25th-75th percentile].",
            "",
            "| case | median s | min s | max s | CPU s (median) | " + " | ".join(heads) + " |",
            "|---|---:|---:|---:|---:|" + "---|" * len(heads),
        ]
        for label in self.labels:
            walls = self.walls(label)
            cells = []
            for base in self.baselines:
                if base == label:
                    cells.append("1")
                    continue
                ratios = self.ratios(label, base)
                cells.append(
                    f"**{statistics.median(ratios):.2f}x** "
                    f"[{quantile(ratios, 0.25):.2f}-{quantile(ratios, 0.75):.2f}]"
                )
            lines.append(
                f"| `{label}` | {statistics.median(walls):.3f} | {min(walls):.3f} | "
                f"{max(walls):.3f} | {statistics.median(self.cpus(label)):.2f} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
        for label in self.labels:
            if self.descriptions.get(label):
                lines.append(f"- `{label}`: {self.descriptions[label]}")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "labels": self.labels,
            "baselines": self.baselines,
            "descriptions": self.descriptions,
            "notes": self.notes,
            "rounds": [
                {
                    label: {"wall": s.wall, "user": s.user, "system": s.system}
                    for label, s in samples.items()
                }
                for samples in self.rounds
            ],
            "median_ratios": {
                label: {base: self.median_ratio(label, base) for base in self.baselines}
                for label in self.labels
            },
        }


def _run_case(case: Case) -> Sample:
    if case.prepare is not None:
        case.prepare()
    argv = case.argv()
    try:
        sample = spawn_timed(argv, case.env)
        problem = None
        if sample.returncode != 0:
            problem = f"exit status {sample.returncode}"
        elif case.check is not None:
            problem = case.check(sample)
    finally:
        if case.cleanup is not None:
            case.cleanup()
    if problem is not None:
        tail = sample.stderr.decode(errors="replace").strip()[-1500:]
        raise BenchError(f"{case.label}: {problem}\n  argv: {list(argv)}\n  stderr: {tail}")
    return sample


def compare(
    title: str,
    cases: Sequence[Case],
    *,
    rounds: int,
    warmup: int = 1,
    baselines: Sequence[str] | None = None,
    seed: int = 1,
    log: Callable[[str], None] = print,
) -> Comparison:
    """Run ``warmup`` untimed rounds, then ``rounds`` interleaved rounds; log each round."""
    labels = [case.label for case in cases]
    if len(set(labels)) != len(labels):
        raise BenchError(f"{title}: duplicate case labels {labels}")
    bases = list(baselines) if baselines else labels[-1:]
    for base in bases:
        if base not in labels:
            raise BenchError(f'{title}: baseline "{base}" is not a case')
    result = Comparison(title, labels, bases, {c.label: c.description for c in cases})
    rng = random.Random(seed)
    load_before = os.getloadavg()[0]
    log(f"{title}: {warmup} warm-up + {rounds} rounds of {', '.join(labels)}")
    for _ in range(warmup):
        for case in cases:
            _run_case(case)
    for index in range(rounds):
        order = list(cases)
        rng.shuffle(order)
        result.rounds.append({case.label: _run_case(case) for case in order})
        log(result.round_line(index))
    result.notes.append(
        f"load average (1 min) of the machine before / after: {load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    for subject in result.subjects():
        summary = "  ".join(
            f"{subject}/{base} {result.median_ratio(subject, base):.2f}x" for base in bases
        )
        log(f"  median: {summary}")
    return result
