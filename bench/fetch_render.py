"""Fetch+render of a ~200 MB ACI against ``sha512sum`` + ``tar -x`` of the same file (issue 2, 7).

The subject, ``rkt``, is ``rkt --dir=FRESH --insecure-options=image fetch --full ACI`` as root: it
hashes the uncompressed tar (the image ID), copies the file into the blob store, extracts the
rootfs into the tree store while computing the tree hash, fsyncs the blob, syncfs'es the
filesystem and writes the sqlite index. Python start-up and imports are inside the timing.

The floors do the minimum a shell can do for the same result (an image ID and an extracted tree):

- ``floor``: the acceptance criterion, literally. Uncompressed: ``sha512sum ACI && tar -xf ACI -C
  DIR``. Gzip: ``zcat ACI | sha512sum && tar -xzf ACI -C DIR`` (the image ID is the hash of the
  *decompressed* tar, so the hash pass must decompress too). Nothing is flushed to disk.
- ``floor+sync``: the same followed by ``sync -f DIR``, so the tree is durable as rkt's is.
- ``pipe``: one pass, hashing and extracting the same stream concurrently: ``{ [zcat ACI |] tee
  /dev/fd/3 [< ACI] | tar -x -C DIR; } 3>&1 >/dev/null | sha512sum`` (optional, ``--floors``).

Every run gets a fresh target directory on the filesystem under test; removing it and flushing
that filesystem (``syncfs``) happen after the run, outside the timed region, so no run pays for
the previous one's writeback. The ACI itself stays in the page cache (it was just built or
downloaded), as it would right after a download. Each run's output is checked: rkt must print
the expected image ID and leave a rendered tree; the floors must print the same digest and leave
``rootfs/bin/busybox``.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpus import Corpus, ensure_corpus
from harness import BenchError, Case, Comparison, Sample, compare


@dataclass(frozen=True)
class Target:
    """A filesystem to render onto: ``disk`` (the data dir's kind) or ``tmpfs``."""

    name: str
    path: Path
    fstype: str


def fs_type(path: Path) -> str:
    out = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()[-1]  # the last line is the mount on top


def syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (untimed settling between runs)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL("libc.so.6", use_errno=True).syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def make_target(name: str, path: Path) -> Target:
    path.mkdir(parents=True, exist_ok=True)
    kind = fs_type(path)
    if name == "tmpfs" and kind != "tmpfs":
        raise BenchError(f'"{path}" is {kind}, not tmpfs (pass --tmpfs-dir)')
    if name == "disk" and kind == "tmpfs":
        raise BenchError(f'"{path}" is tmpfs, not a disk filesystem (pass --disk-dir)')
    runs = path / "runs"
    if runs.exists():
        shutil.rmtree(runs)
    runs.mkdir()
    return Target(name, path, kind)


def sha512_file(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _FreshDirs:
    """Hands out a new directory path per run and removes it (then flushes) after the run."""

    def __init__(self, target: Target, label: str, create: bool) -> None:
        self._target = target
        self._label = label.replace("+", "-")
        self._create = create
        self._count = 0
        self.current = target.path

    def prepare(self) -> None:
        self._count += 1
        self.current = self._target.path / "runs" / f"{self._label}-{self._count}"
        if self._create:
            self.current.mkdir()

    def cleanup(self) -> None:
        shutil.rmtree(self.current, ignore_errors=True)
        syncfs(self._target.path)


def _floor_script(kind: str, compression: str, aci: Path, dest: Path) -> str:
    gz = compression == "gzip"
    if kind == "pipe":
        source = f"zcat '{aci}' | tee /dev/fd/3" if gz else f"tee /dev/fd/3 < '{aci}'"
        return f"set -o pipefail; {{ {source} | tar -x -C '{dest}'; }} 3>&1 >/dev/null | sha512sum"
    hashing = f"zcat '{aci}' | sha512sum" if gz else f"sha512sum '{aci}'"
    extract = f"tar -x{'z' if gz else ''}f '{aci}' -C '{dest}'"
    script = f"set -o pipefail; {hashing} && {extract}"
    return script + (f" && sync -f '{dest}'" if kind == "floor+sync" else "")


def _floor_case(kind: str, compression: str, aci: Path, target: Target, digest: str) -> Case:
    dirs = _FreshDirs(target, kind, create=True)

    def check(sample: Sample) -> str | None:
        if not sample.stdout.startswith(digest.encode()):
            return f"printed {sample.stdout[:40]!r}…, not the expected sha512"
        if not (dirs.current / "rootfs" / "bin" / "busybox").is_file():
            return "no rootfs/bin/busybox after extraction"
        return None

    shown = _floor_script(kind, compression, Path("ACI"), Path("DIR")).replace("'", "")
    return Case(
        label=kind,
        argv=lambda: ["bash", "-c", _floor_script(kind, compression, aci, dirs.current)],
        prepare=dirs.prepare,
        cleanup=dirs.cleanup,
        check=check,
        description=f'`bash -c "{shown}"`',
    )


def _rkt_case(
    rkt: Path, aci: Path, target: Target, image_id: str, label: str = "rkt", src: Path | None = None
) -> Case:
    """rkt's fetch; with ``src``, the rkt package is imported from there (another revision)."""
    dirs = _FreshDirs(target, label, create=False)
    env = None
    if src is not None:
        env = {**os.environ, "PYTHONPATH": str(src)}

    def check(sample: Sample) -> str | None:
        if sample.stdout.decode(errors="replace").strip() != image_id:
            return f"printed {sample.stdout[:80]!r}, not {image_id[:20]}…"
        if not glob.glob(f"{dirs.current}/cas/tree/deps-*/rootfs/bin/busybox"):
            return "no rendered tree in the store (is this run as root?)"
        return None

    return Case(
        label=label,
        env=env,
        argv=lambda: [
            str(rkt),
            f"--dir={dirs.current}",
            "--insecure-options=image",
            "fetch",
            "--full",
            str(aci),
        ],
        prepare=dirs.prepare,
        cleanup=dirs.cleanup,
        check=check,
        description="`rkt --dir=DIR --insecure-options=image fetch --full ACI` (DIR fresh, absent)"
        + (f", package imported from `{src}`" if src is not None else ""),
    )


def fetch_render_cases(
    rkt: Path,
    aci: Path,
    compression: str,
    target: Target,
    digest: str,
    floors: Sequence[str],
    others: Sequence[tuple[str, Path]] = (),
) -> list[Case]:
    cases = [_rkt_case(rkt, aci, target, f"sha512-{digest}")]
    cases.extend(
        _rkt_case(rkt, aci, target, f"sha512-{digest}", label, src) for label, src in others
    )
    cases.extend(_floor_case(kind, compression, aci, target, digest) for kind in floors)
    return cases


def run(
    *,
    rkt: Path,
    workdir: Path,
    targets: Sequence[tuple[str, Path]],
    compressions: Sequence[str],
    floors: Sequence[str],
    rounds: int,
    warmup: int,
    size_mb: int,
    small_files: int,
    seed: int,
    others: Sequence[tuple[str, Path]] = (),
    log: Callable[[str], None] = print,
) -> tuple[Corpus, list[Comparison]]:
    if os.geteuid() != 0:
        raise BenchError("fetch-render needs root: rkt renders trees at fetch time only as root")
    corpus = ensure_corpus(
        workdir,
        rkt,
        size_mb=size_mb,
        small_files=small_files,
        compressions=tuple(compressions),
        log=log,
    )
    log(f"corpus: {corpus.describe()}")
    digest = sha512_file(corpus.images["none"]) if "none" in corpus.images else None
    if digest is None:
        out = subprocess.run(
            f"zcat '{corpus.images['gzip']}' | sha512sum",
            shell=True,
            check=True,
            capture_output=True,
            text=True,
        )
        digest = out.stdout.split()[0]
    results = []
    for name, path in targets:
        target = make_target(name, path)
        syncfs(target.path)
        for compression in compressions:
            aci = corpus.images[compression]
            cases = fetch_render_cases(rkt, aci, compression, target, digest, floors, others)
            title = (
                f"fetch+render, {compression} ACI ({aci.stat().st_size / 1e6:.0f} MB), "
                f"{name} ({target.fstype}, {target.path})"
            )
            results.append(
                compare(
                    title,
                    cases,
                    rounds=rounds,
                    warmup=warmup,
                    baselines=[*floors, *(label for label, _ in others)],
                    log=log,
                )
            )
        shutil.rmtree(target.path / "runs", ignore_errors=True)
    return corpus, results
