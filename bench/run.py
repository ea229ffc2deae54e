"""Entry point of ``make bench``: run the side-by-side benchmarks and print their reports.

    .venv/bin/python bench/run.py [--quick] [BENCHMARK ...] [options]

Each benchmark is a function in ``BENCHMARKS`` that returns interleaved comparisons
(``harness.compare``); this module prints the machine description and their Markdown tables, and
can save both (``--md``, ``--json``). Progress and per-round ratios go to stderr as they come, the
report to stdout. To add a benchmark (issue 3: ``rkt run`` against crun, runc and
systemd-nspawn; ``rkt list`` with N pods; resident memory per pod), write a module that builds
``harness.Case``s and register one function here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness import BenchError, Comparison

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RKT = ROOT / ".venv" / "bin" / "rkt"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose a comma-separated list from {', '.join(choices)}"
            )
        return items

    return parse


def checkout_src(rev: str, workdir: Path) -> Path:
    """``src/`` of the git revision ``rev`` (read with ``git archive``, with its Makefile), for
    A/B runs."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if commit.returncode != 0:
        raise BenchError(f'--against: unknown revision "{rev}"')
    dest = workdir / f"src-{commit.stdout.strip()}"
    if not (dest / "src" / "rkt").is_dir() or not (dest / "Makefile").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit.stdout.strip(), "src", "Makefile"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def build_native(checkout: Path) -> None:
    """The stage1's native programs are build outputs (make setup), not in git: a checkout that
    has their sources gets them built by its own Makefile's rules (plans change with the Python
    that writes them, so another checkout's programs will not do), with this tree's .venv and
    without its set-up step (``make -o``: the machine is set up already)."""
    native = checkout / "src" / "rkt" / "stage1" / "native"
    if not native.is_dir():
        return
    venv = ROOT / ".venv"
    targets = [f"src/rkt/stage1/native/bin/{c.stem}" for c in sorted(native.glob("*.c"))]
    if (checkout / "src" / "rkt" / "stage1" / "ns" / "prebuilt.py").is_file():
        targets.append("src/rkt/stage1/native/bin/seccomp-default")  # its data file
    make = ["make", "-s", "-C", str(checkout), f"VENV={venv}", "-o", f"{venv}/.rkt-setup-stamp"]
    subprocess.run([*make, *targets], check=True)


def build_bundle(src: Path) -> None:
    """A checkout that has rkt/bundle.py gets its module bundle, as `make setup` builds it."""
    if (src / "rkt" / "bundle.py").is_file():
        subprocess.run(
            [sys.executable, "-m", "rkt.bundle"],
            env={**os.environ, "PYTHONPATH": str(src)},
            check=True,
        )


def other_sources(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """``--against``: (label, src dir) per revision or src/ directory given."""
    others = []
    for rev in args.against:
        if (Path(rev) / "rkt" / "__init__.py").is_file():  # a src/ directory, as it is
            others.append((Path(rev).resolve().parent.name, Path(rev).resolve()))
            continue
        src = checkout_src(rev, Path(args.disk_dir))
        build_native(src.parent)
        build_bundle(src)
        others.append((rev, src))
    return others


def bench_fetch_render(args: argparse.Namespace) -> list[Comparison]:
    import fetch_render

    others = [(f"rkt@{label}", src) for label, src in other_sources(args)]
    targets = [
        (name, Path(args.disk_dir if name == "disk" else args.tmpfs_dir)) for name in args.fs
    ]
    corpus, results = fetch_render.run(
        rkt=args.rkt,
        workdir=Path(args.disk_dir),
        targets=targets,
        compressions=args.compression,
        floors=args.floors,
        rounds=args.rounds,
        warmup=args.warmup,
        size_mb=args.size_mb,
        small_files=args.small_files,
        seed=args.seed,
        others=others,
        log=_log,
    )
    for result in results:
        result.notes.append(f"image: {corpus.describe()}")
    return results


def bench_net_run(args: argparse.Namespace) -> list[Comparison]:
    import net_run

    return net_run.run(
        rkt=args.rkt,
        workdir=Path(args.disk_dir),
        rounds=args.rounds * 4,  # runs of ~0.2 s: more rounds for the same wall time
        warmup=args.warmup,
        log=_log,
        others=other_sources(args),
    )


def bench_pull(args: argparse.Namespace) -> list[Comparison]:
    import pull

    return pull.run(
        rkt=args.rkt, workdir=Path(args.disk_dir), rounds=args.rounds, warmup=args.warmup, log=_log
    )


def bench_run_pod(args: argparse.Namespace) -> list[Comparison]:
    import run_pod

    return run_pod.run(
        rkt=args.rkt,
        workdir=Path(args.disk_dir),
        rounds=args.rounds * 4,  # runs of ~0.1-0.3 s: more rounds for the same wall time
        warmup=args.warmup,
        log=_log,
        others=other_sources(args),
    )


def bench_list_pods(args: argparse.Namespace) -> list[Comparison]:
    import list_pods

    return list_pods.run(
        rkt=args.rkt,
        workdir=Path(args.disk_dir),
        rounds=args.rounds * 4,
        warmup=args.warmup,
        log=_log,
    )


def bench_memory(args: argparse.Namespace) -> list[Comparison]:
    import memory

    return memory.run(
        rkt=args.rkt, workdir=Path(args.disk_dir), pods=args.pods, reps=args.mem_reps, log=_log
    )


BENCHMARKS: dict[str, tuple[str, Callable[[argparse.Namespace], list[Comparison]]]] = {
    "fetch-render": (
        "rkt fetch (hash + blob + render) of a ~200 MB ACI vs sha512sum + tar -x",
        bench_fetch_render,
    ),
    "pull": (
        "rkt fetch docker:// of a ~200 MB 5-layer image vs skopeo copy + umoci unpack",
        bench_pull,
    ),
    "net-run": (
        "rkt run --net=default of /bin/true vs crun in a netns wired by the same CNI plugins",
        bench_net_run,
    ),
    "run-pod": (
        "rkt run --net=none of /bin/true vs crun, runc, systemd-nspawn; --private-users vs not",
        bench_run_pod,
    ),
    "list-pods": ("rkt list with 1, 50 and 200 pods", bench_list_pods),
    "memory": (
        "RSS/PSS of the runtime's own processes for N idle pods vs systemd-nspawn",
        bench_memory,
    ),
}


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine_description(args: argparse.Namespace) -> list[str]:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    with open("/proc/cpuinfo") as fh:
        flags = fh.read()
    sha = f"SHA-NI (SHA-1/256): {'yes' if ' sha_ni' in flags else 'no'}, "
    sha += f"SHA-512 instructions: {'yes' if ' sha512' in flags else 'no'}"
    rev = _first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; rkt checkout {rev}",
        f"- machine: {os.cpu_count()} CPUs ({cpu}; {sha}), "
        f"{mem_kb / 1024 / 1024:.1f} GiB RAM, kernel {platform.release()}",
        f"- python {platform.python_version()}; {_first_line(['tar', '--version'])}; "
        f"{_first_line(['sha512sum', '--version'])}; {_first_line(['gzip', '--version'])}",
    ]
    if "fetch-render" in args.benchmarks:
        import fetch_render

        for name in args.fs:
            path = Path(args.disk_dir if name == "disk" else args.tmpfs_dir)
            path.mkdir(parents=True, exist_ok=True)
            device = _first_line(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(path)])
            lines.append(f"- {name}: `{path}` on {fetch_render.fs_type(path)} ({device})")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Side-by-side benchmarks of rkt against the floors and peers it must meet.",
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help="which to run (default all): "
        + "; ".join(f"{name}: {text}" for name, (text, _) in BENCHMARKS.items()),
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (3 instead of 5)")
    parser.add_argument("--rounds", type=int, help="timed rounds per comparison")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated image content")
    parser.add_argument("--rkt", type=Path, default=DEFAULT_RKT, help="the rkt to measure")
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="REV",
        help="fetch-render, net-run, run-pod: also time rkt as of git revision REV, or of a src/"
        " directory (on PYTHONPATH): an A/B of a change",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="run every case at this nice value (e.g. -10 as root, to shield the runs from"
        " background load on a shared machine; the same for every case)",
    )
    parser.add_argument("--md", type=Path, help="also write the report (Markdown) to this file")
    parser.add_argument("--json", type=Path, help="write every sample to this JSON file")
    group = parser.add_argument_group("fetch-render")
    group.add_argument(
        "--fs",
        type=_csv(("disk", "tmpfs")),
        default=["disk", "tmpfs"],
        help="filesystems to render onto (default disk,tmpfs)",
    )
    group.add_argument(
        "--compression",
        type=_csv(("none", "gzip")),
        default=["none", "gzip"],
        help="ACI variants (default none,gzip)",
    )
    group.add_argument(
        "--floors",
        type=_csv(("floor", "floor+sync", "pipe")),
        default=["floor", "floor+sync"],
        help="floor commands to run beside rkt (default floor,floor+sync; also: pipe)",
    )
    group.add_argument(
        "--disk-dir",
        default="/var/tmp/rkt-bench",
        help="work directory on disk: the generated image and the disk runs",
    )
    group.add_argument("--tmpfs-dir", default="/dev/shm/rkt-bench", help="tmpfs run directory")
    group.add_argument("--size-mb", type=int, default=200, help="image size (default 200)")
    group.add_argument("--small-files", type=int, default=3500, help="files of 64 B-256 KiB")
    group = parser.add_argument_group("memory")
    group.add_argument("--pods", type=int, default=20, help="idle pods at once (default 20)")
    group.add_argument("--mem-reps", type=int, default=2, help="repetitions (default 2)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (have {', '.join(BENCHMARKS)})")
    args.benchmarks = args.benchmarks or list(BENCHMARKS)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    if not args.rkt.exists():
        parser.error(f"{args.rkt}: no such rkt (run make setup, or pass --rkt)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # As `make bench`: the processes under test may write and use bytecode caches; without them
    # every rkt start compiles its modules again (tens of milliseconds).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.nice:
        os.nice(args.nice)
    started = time.monotonic()
    results: list[Comparison] = []
    try:
        header = machine_description(args)
        for name in args.benchmarks:
            results.extend(BENCHMARKS[name][1](args))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    report = "\n".join(
        [
            "### Benchmark run",
            "",
            *header,
            f"- command: `{' '.join(['.venv/bin/python bench/run.py', *argv])}`",
            f"- took {time.monotonic() - started:.0f} s",
            "",
            *(result.markdown() for result in results),
        ]
    )
    print(report)
    if args.md:
        args.md.write_text(report)
    if args.json:
        payload = {"machine": header, "results": [r.to_json() for r in results]}
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
