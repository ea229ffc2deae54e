"""The benchmark image: a busybox rootfs plus a realistic, deterministic file mix, as ACIs.

The tree is generated from a seed, so every machine builds the same bytes (and the same image
IDs, since ``rkt image build --mtime`` fixes the mtimes). Content mixes incompressible bytes
(think shared objects and compressed assets), text drawn from a word pool (configs, scripts,
docs) and blends of both, so gzip neither trivialises the data nor is useless on it (it shrinks
the tar to about 60%).

Layout under ``rootfs/`` (about 200 MB with the default ``--size-mb``):

- busybox-static as ``bin/busybox`` with a symlink per applet (``busybox --list-full``);
- ``etc/``: passwd, group, hostname, a few config files;
- ``usr/lib/pkgNN/subMM/file-KKKK.{so,txt,dat}``: ``small_files`` files, sizes log-uniform
  between 64 B and 256 KiB, modes 0644 or 0755, a few hard links and symlinks among them;
- ``var/lib/blobs/``: three large files (random, text, mixed) that take the rest of the budget.

The built tree and images are cached in the work directory under a name that carries
``CORPUS_VERSION``, the seed and the size; change any of them and it is rebuilt.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CORPUS_VERSION = 1
BUSYBOX = Path("/bin/busybox")
MTIME = 1_700_000_000  # fixed member mtime: the same tree always gives the same image IDs
_WORD_TEXT = (
    "the of and to in is for on that with as by at from this be are or an it not which have "
    "container pod image manifest rootfs stage1 stage0 network volume mount cgroup namespace "
    "kernel process signal exit status socket file directory symlink hardlink tar gzip "
    "sha512 config option value default error warning info debug trace lib usr bin etc var "
    "tmp run return if else for while def class import from self none true false int str "
    "bytes list"
)
_WORDS = _WORD_TEXT.split()


@dataclass(frozen=True)
class Corpus:
    """Where the generated tree and its images are; ``images`` maps compression to ACI path."""

    root: Path
    tree: Path
    images: dict[str, Path]
    files: int
    tree_bytes: int

    def describe(self) -> str:
        sizes = ", ".join(
            f"{name} {path.stat().st_size / 1e6:.0f} MB" for name, path in self.images.items()
        )
        return f"{self.files} files, {self.tree_bytes / 1e6:.0f} MB of file data; ACIs: {sizes}"


class _Content:
    """Deterministic file bodies: random, text-like, or blocks of both."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        words = [rng.choice(_WORDS) for _ in range(800_000)]
        lines = []
        for start in range(0, len(words), 12):
            lines.append(" ".join(words[start : start + rng.randint(4, 12)]))
        self._text = ("\n".join(lines) + "\n").encode()

    def random(self, size: int) -> bytes:
        return self._rng.randbytes(size)

    def text(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            start = self._rng.randrange(len(self._text) - 4096)
            out += self._text[start : start + self._rng.randint(512, 4096)]
        return bytes(out[:size])

    def mixed(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            block = self._rng.randint(1024, 64 * 1024)
            out += self.random(block) if self._rng.random() < 0.5 else self.text(block)
        return bytes(out[:size])

    def body(self, kind: str, size: int) -> bytes:
        return {"random": self.random, "text": self.text, "mixed": self.mixed}[kind](size)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def _busybox_rootfs(rootfs: Path) -> int:
    _write(rootfs / "bin" / "busybox", BUSYBOX.read_bytes(), 0o755)
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    count = 1
    for applet in applets:
        link = rootfs / applet
        if applet == "bin/busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = applet.count("/")
        os.symlink("../" * depth + "bin/busybox", link)
        count += 1
    etc = rootfs / "etc"
    _write(
        etc / "passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        0o644,
    )
    _write(etc / "group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    _write(etc / "hostname", b"bench\n", 0o644)
    for sub in ("tmp", "root", "proc", "sys", "dev", "run", "var/tmp"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    return count + 3


def generate_tree(tree: Path, *, size_mb: int, small_files: int, seed: int) -> int:
    """Write ``tree/manifest`` and ``tree/rootfs``; return the number of rootfs entries."""
    rng = random.Random(seed)
    content = _Content(rng)
    rootfs = tree / "rootfs"
    rootfs.mkdir(parents=True)
    entries = _busybox_rootfs(rootfs)
    budget = size_mb * 1_000_000 - BUSYBOX.stat().st_size
    lo, hi = math.log(64), math.log(256 * 1024)
    written: list[Path] = []
    for index in range(small_files):
        size = int(math.exp(rng.uniform(lo, hi)))
        kind = rng.choices(("random", "text", "mixed"), weights=(4, 4, 2))[0]
        suffix = {"random": "so", "text": "txt", "mixed": "dat"}[kind]
        path = (
            rootfs
            / "usr/lib"
            / f"pkg{index % 40:02d}"
            / f"sub{index % 7}"
            / f"f{index:04d}.{suffix}"
        )
        _write(path, content.body(kind, size), 0o755 if kind == "random" else 0o644)
        written.append(path)
        budget -= size
    for index in range(0, len(written), max(1, len(written) // 25)):
        source = written[index]
        os.link(source, source.with_name(source.name + ".hardlink"))
        os.symlink(source.name, source.with_name(source.name + ".symlink"))
        entries += 2
    big = max(budget, 3_000_000) // 3
    for kind in ("random", "text", "mixed"):
        _write(rootfs / "var/lib/blobs" / f"{kind}.bin", content.body(kind, big), 0o644)
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "bench.rkt.local/fetch-render",
        "labels": [
            {"name": "version", "value": f"{CORPUS_VERSION}.{seed}.{size_mb}"},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "app": {"exec": ["/bin/sh"], "user": "0", "group": "0"},
    }
    (tree / "manifest").write_text(json.dumps(manifest, indent=2) + "\n")
    return entries + small_files + 3


def _tree_stats(rootfs: Path) -> tuple[int, int]:
    files = size = 0
    for directory, dirs, names in os.walk(rootfs):
        files += len(names) + len(dirs)
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            size += st.st_size
    return files, size


def ensure_corpus(
    workdir: Path,
    rkt: Path,
    *,
    size_mb: int = 200,
    small_files: int = 3500,
    seed: int = 7,
    compressions: tuple[str, ...] = ("none", "gzip"),
    log: object = print,
) -> Corpus:
    """Build (or reuse) the tree and its ACIs under ``workdir``."""
    root = workdir / f"corpus-v{CORPUS_VERSION}-s{seed}-{size_mb}mb-{small_files}f"
    tree = root / "image"
    stamp = root / "tree.done"
    if not stamp.exists():
        if root.exists():
            shutil.rmtree(root)
        log(f"generating the benchmark tree in {tree} ...")  # type: ignore[operator]
        generate_tree(tree, size_mb=size_mb, small_files=small_files, seed=seed)
        stamp.write_text("ok\n")
    images = {}
    for compression in compressions:
        aci = root / f"fetch-render-{compression}.aci"
        if not aci.exists():
            log(f"building {aci.name} with rkt image build ...")  # type: ignore[operator]
            subprocess.run(
                [
                    str(rkt),
                    "image",
                    "build",
                    f"--mtime={MTIME}",
                    f"--compression={compression}",
                    str(tree),
                    str(aci),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        images[compression] = aci
    files, tree_bytes = _tree_stats(tree / "rootfs")
    return Corpus(root=root, tree=tree, images=images, files=files, tree_bytes=tree_bytes)
