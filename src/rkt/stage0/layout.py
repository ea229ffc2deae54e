"""A prepared pod's directory as a list of steps: ``prepare_pod`` decides them, ``apply`` carries
them out, and ``rkt run`` can carry out the same steps again from its memo (rkt.stage0.runmemo)
without deciding them. Only the steps are written here; what they are is prepare's business
(docs/stage1-abi.md §2 lists the result).

A step is a list of JSON values, so that a memo holds it as it is:

- ``["link-tree", REL, SOURCE]``: REL as a copy of the directory tree SOURCE (``link_tree``);
- ``["write", REL, DATA]``: a new file with DATA (bytes as latin-1 text, one character a byte);
- ``["mkdir", REL, EXIST_OK, MODE, UID, GID]``: a directory and its parents; MODE (an integer),
  UID and GID, when not null, are set on REL afterwards;
- ``["symlink", REL, TARGET]``.

REL is relative to the pod directory and never has a ``..`` part. Imports only the standard
library, ``rkt.pod.pod`` and ``rkt.records``.
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.pod.pod import PREPARED, Pod, PodLock, write_atomic
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from rkt.stage0.stage1_image import Stage1

LINK_TREE, WRITE, MKDIR, SYMLINK = "link-tree", "write", "mkdir", "symlink"


class PreparedPod(NamedTuple):
    """What ``prepare_pod`` leaves: a pod in ``prepared``."""

    pod: Pod
    stage1: Stage1 | None  # None: laid out again from rkt run's memo (rkt.stage0.runmemo)
    lock: PodLock | None = None  # still held (``keep_lock``): the caller runs the pod next
    layout: Layout | None = None  # the steps that laid the pod out, and the manifest written
    manifest: bytes = b""
    memoisable: Memoisable | None = None  # rkt run may memoise it (stage0/runmemo.py)


class Memoisable(NamedTuple):
    """What the memo of a pod prepared by ``rkt run`` depends on besides its layout."""

    name_files: tuple[str, ...]  # the store's name files its images were found by
    flavor: str  # the built-in stage1's
    used: tuple[float, float]  # while its images' recorded last uses need no new record
    early: bool  # whether the request and configuration allow its networks a head start
    not_files: tuple[str, ...]  # image arguments that would be files if these existed


class Layout:
    """The steps of one pod's layout, and how many of them are carried out already."""

    def __init__(self, steps: list[list[Any]] | None = None) -> None:
        self.steps: list[list[Any]] = list(steps or [])
        self.applied = 0
        self.sources: list[str] = []  # the store's trees the steps refer to (runmemo's checks)
        self.last_used: list[float] = []  # when the images laid out were last used, as recorded

    def used(self, last_used: float) -> None:
        self.last_used.append(last_used)

    def link_tree(self, rel: str, source: str) -> None:
        self.steps.append([LINK_TREE, rel, source])
        self.sources.append(source)

    def write(self, rel: str, data: bytes) -> None:
        self.steps.append([WRITE, rel, data.decode("latin-1")])

    def mkdir(
        self,
        rel: str,
        *,
        exist_ok: bool = False,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.steps.append([MKDIR, rel, exist_ok, mode, uid, gid])

    def symlink(self, rel: str, target: str) -> None:
        self.steps.append([SYMLINK, rel, target])

    def apply(self, pod_dir: str) -> None:
        """Carry out the steps not carried out yet, in order."""
        while self.applied < len(self.steps):
            apply_step(pod_dir, self.steps[self.applied])
            self.applied += 1


def finish_layout(pod: Pod, layout: Layout, manifest: bytes) -> None:
    """The rest of the steps, then the pod manifest; the pod moves on to ``prepared``."""
    layout.apply(str(pod.path))
    write_atomic(pod.file(abi.POD_MANIFEST), manifest, durable=False)
    pod.move_to(PREPARED)


def apply_step(pod_dir: str, step: list[Any]) -> None:
    kind, rel = step[0], step[1]
    if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
        raise ValueError(f"layout step {kind}: bad path {rel!r}")
    path = os.path.join(pod_dir, rel)
    if kind == LINK_TREE:
        link_tree(step[2], path)
    elif kind == WRITE:
        with open(path, "wb") as f:
            f.write(step[2].encode("latin-1"))
    elif kind == MKDIR:
        _, _, exist_ok, mode, uid, gid = step
        os.makedirs(path, exist_ok=exist_ok)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        if mode is not None:
            os.chmod(path, mode)
    elif kind == SYMLINK:
        os.symlink(step[2], path)
    else:
        raise ValueError(f"unknown layout step {kind!r}")


def link_tree(source: str, target: str) -> None:
    """``target`` as a copy of the tree ``source``: directories made with their modes, files
    hard-linked (copied only across filesystems), symlinks recreated. The stage1 tree is a
    dozen entries; shutil.copytree would cost its import (~2.5 ms) on every pod. Directories
    that exist are merged into (a network started early keeps its journal in the stage1's
    private directory: stage0/headstart.py)."""
    os.makedirs(target, exist_ok=True)
    os.chmod(target, os.stat(source).st_mode & 0o7777)
    for entry in os.scandir(source):
        src, dst = entry.path, os.path.join(target, entry.name)
        if entry.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif entry.is_dir():
            link_tree(src, dst)
        else:
            try:
                os.link(src, dst)
            except OSError:
                import shutil

                shutil.copy2(src, dst)
