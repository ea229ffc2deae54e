"""One Docker/OCI layer, from its compressed bytes to a tree overlayfs can stack.

A layer is extracted on its own into an empty directory (never onto the layers below it), so its
whiteouts cannot act on the extraction itself; they are translated into overlayfs's own format
(kernel Documentation/filesystems/overlayfs.rst "whiteouts and opaque directories"), and the
stage1 stacks the layer trees as overlay lower dirs:

- ``dir/.wh.NAME`` (OCI image-spec layer.md "Whiteouts") -> a character device 0/0 ``dir/NAME``,
  unless this layer itself has ``dir/NAME`` (a whiteout only hides lower layers);
- ``dir/.wh..wh..opq`` -> xattr ``trusted.overlay.opaque=y`` on ``dir``;
- other ``.wh..wh.*`` names (aufs bookkeeping) are ignored;
- ``trusted.overlay.*`` xattrs from the archive are dropped (a layer must not forge them), and
  device nodes in a layer are skipped (the stage1 provides /dev).

Everything else follows ``rkt.formats.safetar``. While the bytes go by, the compressed stream is
hashed (the blob digest, checked at EOF by :class:`DigestReader`) and so is the uncompressed tar
(the ``diff_id`` of the image config).

May import ``rkt.errors`` and ``rkt.formats``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from rkt.errors import ArchiveError
from rkt.formats.safetar import Extractor, member_path
from rkt.formats.tarstream import TarEntry, TarReader
from rkt.paths import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class DigestReader:
    """Reads ``raw`` while hashing it; at EOF the size and sha256 digest must match.

    ``sink`` receives every byte too (the blob file of the store).
    """

    def __init__(
        self,
        raw: BinaryIO,
        digest: str,
        size: int,
        *,
        sink: BinaryIO | None = None,
        progress: Callable[[int], None] | None = None,
        what: str = "blob",
    ) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._sink = sink
        self._progress = progress
        self._what = what
        self._hash = hashlib.sha256()
        self.count = 0
        self.verified = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        if data:
            self._hash.update(data)
            self.count += len(data)
            if self._sink is not None:
                self._sink.write(data)
            if self._progress is not None:
                self._progress(len(data))
            if 0 <= self._size < self.count:
                raise ArchiveError(f"{self._what}: more than the {self._size} bytes announced")
        elif not self.verified:
            self.verify()
        return data

    def verify(self) -> None:
        """Check what was read so far is all of it, with the announced digest."""
        got = "sha256:" + self._hash.hexdigest()
        if self._size >= 0 and self.count != self._size:
            raise ArchiveError(f"{self._what}: got {self.count} of {self._size} bytes")
        if got != self._digest:
            raise ArchiveError(f"{self._what}: digest mismatch (content is {got})")
        self.verified = True

    def finish(self) -> None:
        """Read to EOF (trailing bytes after the tar end are part of the digest), then verify."""
        while self.read(1 << 20):
            pass
        if not self.verified:
            self.verify()


class LayerExtractor(Extractor):
    """The safe extractor, plus whiteouts turned into overlayfs's (see the module docstring)."""

    whiteouts = 0
    opaque_dirs = 0
    devices_skipped = 0

    def extract(self, entry: TarEntry, reader: TarReader) -> bool:
        if entry.kind in ("char", "block"):
            self.devices_skipped += 1
            self.skipped += 1
            return False
        rel = member_path(entry.name)
        base = rel.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(rel, base, entry.name)
            return True
        return super().extract(entry, reader)  # (which drops trusted.overlay.* xattrs)

    def _whiteout(self, rel: str, base: str, name: str) -> None:
        parent = rel.rpartition("/")[0]
        try:
            if base == OPAQUE_MARKER:
                self._ensure_parent(rel, name)
                target: int | str = self._root if not parent else f"{self._dest}/{parent}"
                if isinstance(target, int):
                    os.setxattr(target, OPAQUE_XATTR, b"y")
                else:
                    os.setxattr(target, OPAQUE_XATTR, b"y", follow_symlinks=False)
                self.opaque_dirs += 1
                return
            if base.startswith(WHITEOUT_PREFIX * 2):
                return  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content
            hidden = base[len(WHITEOUT_PREFIX) :]
            if hidden in ("", ".", ".."):
                raise ArchiveError(f'"{name}": not a valid whiteout')
            path = f"{parent}/{hidden}" if parent else hidden
            self._ensure_parent(path, name)
            try:
                os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=self._root)
            except FileExistsError:
                return  # this layer has the file itself: the whiteout hides only lower ones
            self.whiteouts += 1
        except OSError as exc:
            raise ArchiveError(f'"{name}": whiteout: {exc.strerror or exc}') from exc


@dataclass(frozen=True)
class LayerStats:
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int
    entries: int
    bytes_written: int
    whiteouts: int
    opaque_dirs: int


def extract_layer(stream: BinaryIO, dest: Path, *, same_owner: bool | None = None) -> LayerStats:
    """Extract one (already decompressed) layer tar into the empty ``dest``."""
    diff = hashlib.sha256()
    reader = TarReader(stream, on_chunk=diff.update)
    extractor = LayerExtractor(dest, same_owner=same_owner)
    with extractor:
        for entry in reader:
            extractor.extract(entry, reader)
        stats = extractor.finish()
        reader.drain()
        return LayerStats(
            "sha256:" + diff.hexdigest(),
            reader.consumed,
            stats.entries,
            stats.bytes_written,
            extractor.whiteouts,
            extractor.opaque_dirs,
        )


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def lookup_in_layers(trees: list[Path], rel: str) -> Path | None:
    """The file ``rel`` as the stacked ``trees`` (top-most first) show it, without a mount.

    Follows whiteouts and opaque directories; does not follow symlinks (enough for /etc/passwd).
    """
    parts = rel.strip("/").split("/")
    for tree in trees:
        current = tree
        for i, part in enumerate(parts):
            current = current / part
            try:
                st = os.lstat(current)
            except (FileNotFoundError, NotADirectoryError):
                break
            if is_whiteout(st):
                return None
            if i == len(parts) - 1:
                return current if stat.S_ISREG(st.st_mode) else None
            if not stat.S_ISDIR(st.st_mode):
                return None
            try:
                opaque = os.getxattr(current, OPAQUE_XATTR) == b"y"
            except OSError:
                opaque = False
            if opaque and _rest_missing(current, parts[i + 1 :]):
                return None
    return None


def _rest_missing(base: Path, rest: list[str]) -> bool:
    return not os.path.lexists(base.joinpath(*rest))
