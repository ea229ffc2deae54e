"""Safe streaming extraction of tar archives into a directory: the security core of image rendering.

Rules (each pinned by a test in ``tests/unit/test_formats_safetar.py``):

- Member names with ``..`` components, absolute names and names over 4096 bytes are refused.
- Nothing is ever written through a symlink. Every parent of a member must be a real directory
  inside the destination: each component is checked with ``lstat`` relative to a descriptor of the
  destination the first time it is met, then remembered; whatever replaces a remembered directory
  drops it (and everything below it) from that cache. Missing parents are created (0755).
  This relies on the destination being private to the extractor while it runs (a tree-store temp
  directory): nobody else swaps components between the check and the use.
- Symlinks may have any target (``/bin/busybox`` is normal in a rootfs); they are created, never
  followed. Hard links must name a regular file already inside the destination; the link is made
  with ``linkat`` without following symlinks. Character and block devices are refused.
- Later members replace earlier ones (appc ace.md "Filesystem Setup"): a directory, even a
  non-empty one, replaced by a non-directory is removed; a symlink to a directory replaced by a
  directory is replaced, never followed; a file is unlinked, never rewritten in place (it could be
  a hard link to another path).
- Modes are kept exactly as stored, setuid/setgid/sticky included, applied after ``chown`` (which
  clears setuid). Owners are kept when ``same_owner`` (root). Mtimes are kept, symlinks' included;
  directories get their mode and mtime at the end, deepest first, after their contents are written.
  pax ``SCHILY.xattr.*`` records become xattrs where the kernel permits.

May import ``rkt.errors`` and ``rkt.formats``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType

from rkt.errors import ArchiveError
from rkt.formats.background import Worker
from rkt.formats.tarstream import TarEntry, TarReader
from rkt.formats.treehash import PendingDigest, TreeHashBuilder
from rkt.paths import Path

OVERLAY_XATTRS = "trusted.overlay."  # (and oci_layer's whiteouts write opaque itself)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

_XATTR_NOT_PERMITTED = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP}
# With background digests, bodies at least this large are hashed on the digest worker; smaller
# ones are hashed inline, where a queue hand-over would cost more than the hashing.
BACKGROUND_DIGEST_MIN = 64 * 1024

OnEntry = Callable[[TarEntry, TarReader], bool]
PathFilter = Callable[[str], bool]


@dataclass(frozen=True)
class ExtractStats:
    """What an extraction did: members extracted, file bytes written, members skipped."""

    entries: int
    bytes_written: int
    skipped: int = 0


def member_path(name: str) -> str:
    """Normalise a member name to a relative "/"-joined path ("" for the archive root).

    Refuses absolute names, ``..`` components and NUL bytes (ArchiveError naming the member).
    """
    if name.startswith("/"):
        raise ArchiveError(f'"{name}": absolute member names are not allowed')
    if "\0" in name:
        raise ArchiveError(f'"{name}": NUL in member names is not allowed')
    parts = [part for part in name.split("/") if part and part != "."]
    if ".." in parts:
        raise ArchiveError(f'"{name}": ".." in member names is not allowed')
    return "/".join(parts)


def strip_path(path: str, prefix: str) -> str | None:
    """``path`` relative to ``prefix`` ("" for the prefix itself), or None when outside it."""
    if not prefix:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix) and path[len(prefix)] == "/":
        return path[len(prefix) + 1 :]
    return None


class Extractor:
    """Applies tar members to ``dest`` one by one; :meth:`finish` fixes directories up.

    Use as a context manager (it holds a descriptor of ``dest``). With a ``digest_worker`` (and
    a ``hasher``), the tree-hash digests of large files are computed on that worker's thread
    while extraction goes on: the caller must ``close()`` the worker before asking the hasher
    for its digest.
    """

    def __init__(
        self,
        dest: Path,
        *,
        strip_prefix: str = "",
        path_filter: PathFilter | None = None,
        hasher: TreeHashBuilder | None = None,
        same_owner: bool | None = None,
        digest_worker: Worker | None = None,
    ) -> None:
        self._prefix = member_path(strip_prefix)
        os.makedirs(dest, exist_ok=True)
        self._dest = os.fspath(dest)
        self._root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._filter = path_filter
        self._hasher = hasher
        self._same_owner = os.geteuid() == 0 if same_owner is None else same_owner
        self._dirs: set[str] = {""}  # verified real directories, relative to dest
        self._dir_meta: dict[str, TarEntry] = {}  # deferred chmod + utime
        self.entries = 0
        self.bytes_written = 0
        self.skipped = 0
        self._digests = digest_worker if hasher is not None else None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._root >= 0:
            os.close(self._root)
            self._root = -1

    def extract(self, entry: TarEntry, reader: TarReader) -> bool:
        """Apply one member (its body is read from ``reader``); False if it was skipped."""
        if entry.kind in ("char", "block"):
            raise ArchiveError(f'"{entry.name}": device nodes are not allowed')
        if any(name.startswith(OVERLAY_XATTRS) for name, _ in entry.xattrs):
            # overlayfs's own metadata (opaque, redirect, ...): every tree rkt writes may be an
            # overlay's lower dir, and an archive must not forge what the kernel follows there
            kept = tuple(x for x in entry.xattrs if not x[0].startswith(OVERLAY_XATTRS))
            entry = replace(entry, xattrs=kept)
        rel = strip_path(member_path(entry.name), self._prefix)
        if rel is None or (rel and self._filter is not None and not self._filter(rel)):
            self.skipped += 1
            return False
        try:
            if not rel:
                self._root_dir(entry)
            elif entry.kind == "file":
                self._file(entry, rel, reader)
            elif entry.kind == "dir":
                self._dir(entry, rel)
            elif entry.kind == "symlink":
                self._symlink(entry, rel)
            elif entry.kind == "hardlink":
                self._hardlink(entry, rel)
            else:
                self._fifo(entry, rel)
        except OSError as exc:
            raise ArchiveError(f'"{entry.name}": {exc.strerror or exc}') from exc
        except ValueError as exc:  # e.g. a NUL byte in a symlink target
            raise ArchiveError(f'"{entry.name}": {exc}') from exc
        self.entries += 1
        return True

    def finish(self) -> ExtractStats:
        """Give directories their modes and mtimes, deepest first; return the stats."""
        for rel in sorted(self._dir_meta, reverse=True):
            entry = self._dir_meta[rel]
            try:
                if not rel:
                    os.chmod(self._root, entry.mode)
                    os.utime(self._root, ns=(entry.mtime_ns, entry.mtime_ns))
                    continue
                os.chmod(rel, entry.mode, dir_fd=self._root)
                os.utime(rel, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=self._root)
                self._record(rel, "d", entry, None)
            except OSError as exc:
                raise ArchiveError(f'"{entry.name}": {exc.strerror or exc}') from exc
        self._dir_meta.clear()
        return ExtractStats(self.entries, self.bytes_written, self.skipped)

    # -- members -------------------------------------------------------------------------------

    def _root_dir(self, entry: TarEntry) -> None:
        if entry.kind != "dir":
            raise ArchiveError(f'"{entry.name}": the top of the extracted tree must be a directory')
        if self._same_owner:
            os.fchown(self._root, entry.uid, entry.gid)
        self._dir_meta[""] = entry

    def _file(self, entry: TarEntry, rel: str, reader: TarReader) -> None:
        self._ensure_parent(rel, entry.name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(rel, flags, 0o600, dir_fd=self._root)
        except FileExistsError:
            self._remove(rel)
            fd = os.open(rel, flags, 0o600, dir_fd=self._root)
        try:
            digest = hashlib.sha512() if self._hasher is not None else None
            worker = self._digests if entry.size >= BACKGROUND_DIGEST_MIN else None
            for chunk in reader.body_chunks():
                if worker is not None:
                    worker.submit(digest.update, chunk)  # type: ignore[union-attr]
                elif digest is not None:
                    digest.update(chunk)
                done = os.write(fd, chunk)
                while done < len(chunk):
                    done += os.write(fd, chunk[done:])
            self.bytes_written += entry.size
            if self._same_owner:
                os.fchown(fd, entry.uid, entry.gid)
            os.fchmod(fd, entry.mode)
            if entry.xattrs:
                self._set_xattrs(fd, entry.xattrs)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            if digest is not None:
                st = None if self._same_owner else os.fstat(fd)
                if worker is not None:
                    self._record_pending(rel, entry, st, digest)
                else:
                    self._record(rel, "f", entry, st, entry.size, digest.hexdigest())
        finally:
            os.close(fd)

    def _dir(self, entry: TarEntry, rel: str) -> None:
        self._ensure_parent(rel, entry.name)
        if rel not in self._dirs:
            try:
                os.mkdir(rel, 0o700, dir_fd=self._root)
            except FileExistsError:
                st = os.lstat(rel, dir_fd=self._root)
                if not stat.S_ISDIR(st.st_mode):
                    self._remove(rel, st)
                    os.mkdir(rel, 0o700, dir_fd=self._root)
            self._dirs.add(rel)
        if self._same_owner:
            os.chown(rel, entry.uid, entry.gid, dir_fd=self._root, follow_symlinks=False)
        if entry.xattrs:
            self._set_xattrs(f"{self._dest}/{rel}", entry.xattrs)
        self._dir_meta[rel] = entry

    def _symlink(self, entry: TarEntry, rel: str) -> None:
        self._ensure_parent(rel, entry.name)
        try:
            os.symlink(entry.linkname, rel, dir_fd=self._root)
        except FileExistsError:
            self._remove(rel)
            os.symlink(entry.linkname, rel, dir_fd=self._root)
        if self._same_owner:
            os.chown(rel, entry.uid, entry.gid, dir_fd=self._root, follow_symlinks=False)
        if entry.xattrs:
            self._set_xattrs(f"{self._dest}/{rel}", entry.xattrs)
        times = (entry.mtime_ns, entry.mtime_ns)
        os.utime(rel, ns=times, dir_fd=self._root, follow_symlinks=False)
        if self._hasher is not None:
            st = None if self._same_owner else os.lstat(rel, dir_fd=self._root)
            uid, gid = (entry.uid, entry.gid) if st is None else (st.st_uid, st.st_gid)
            self._hasher.add_symlink(rel, entry.linkname, 0o777, uid, gid)

    def _hardlink(self, entry: TarEntry, rel: str) -> None:
        target = strip_path(member_path(entry.linkname), self._prefix)
        if not target:
            raise ArchiveError(
                f'"{entry.name}": hard link target "{entry.linkname}" is outside the extracted tree'
            )
        st = self._lstat_inside(target)
        if st is None or not stat.S_ISREG(st.st_mode):
            raise ArchiveError(
                f'"{entry.name}": hard link target "{entry.linkname}" is not an extracted file'
            )
        if target == rel:
            return
        self._ensure_parent(rel, entry.name)
        link = {"src_dir_fd": self._root, "dst_dir_fd": self._root, "follow_symlinks": False}
        try:
            os.link(target, rel, **link)  # type: ignore[arg-type]
        except FileExistsError:
            self._remove(rel)
            os.link(target, rel, **link)  # type: ignore[arg-type]
        if self._hasher is not None and not self._hasher.copy(target, rel):
            # The target came from an earlier extraction into the same tree: hash it now.
            size, digest = _digest_at(self._root, target)
            self._hasher.add(rel, "f", st.st_mode, st.st_uid, st.st_gid, size, digest)

    def _fifo(self, entry: TarEntry, rel: str) -> None:
        self._ensure_parent(rel, entry.name)
        try:
            os.mkfifo(rel, 0o600, dir_fd=self._root)
        except FileExistsError:
            self._remove(rel)
            os.mkfifo(rel, 0o600, dir_fd=self._root)
        if self._same_owner:
            os.chown(rel, entry.uid, entry.gid, dir_fd=self._root, follow_symlinks=False)
        os.chmod(rel, entry.mode, dir_fd=self._root)  # just made by us: not a symlink
        if entry.xattrs:
            self._set_xattrs(f"{self._dest}/{rel}", entry.xattrs)
        os.utime(rel, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=self._root)
        st = None if self._same_owner else os.lstat(rel, dir_fd=self._root)
        self._record(rel, "p", entry, st)

    # -- helpers -------------------------------------------------------------------------------

    def _record(
        self,
        rel: str,
        kind: str,
        entry: TarEntry,
        st: os.stat_result | None,
        size: int = 0,
        digest: str = "-",
    ) -> None:
        if self._hasher is None:
            return
        if st is None and not self._same_owner:
            st = os.lstat(rel, dir_fd=self._root)
        if st is None:
            self._hasher.add(rel, kind, entry.mode, entry.uid, entry.gid, size, digest)
        else:
            self._hasher.add(rel, kind, st.st_mode, st.st_uid, st.st_gid, size, digest)

    def _record_pending(
        self, rel: str, entry: TarEntry, st: os.stat_result | None, digest: hashlib._Hash
    ) -> None:
        assert self._hasher is not None
        if st is None:
            mode, uid, gid = entry.mode, entry.uid, entry.gid
        else:
            mode, uid, gid = st.st_mode, st.st_uid, st.st_gid
        self._hasher.add_pending(rel, PendingDigest("f", mode, uid, gid, entry.size, digest))

    def _ensure_parent(self, rel: str, name: str) -> None:
        """Make every parent of ``rel`` a verified real directory, creating missing ones."""
        parent = rel.rpartition("/")[0]
        if parent in self._dirs:
            return
        current = ""
        for part in parent.split("/"):
            current = f"{current}/{part}" if current else part
            if current in self._dirs:
                continue
            try:
                st = os.lstat(current, dir_fd=self._root)
            except FileNotFoundError:
                os.mkdir(current, 0o755, dir_fd=self._root)
                st = os.lstat(current, dir_fd=self._root)
                if self._hasher is not None:
                    self._hasher.add(current, "d", st.st_mode, st.st_uid, st.st_gid, 0)
            if not stat.S_ISDIR(st.st_mode):
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise ArchiveError(
                    f'"{name}": parent "{current}" is {what}; refusing to write through it'
                )
            self._dirs.add(current)

    def _lstat_inside(self, rel: str) -> os.stat_result | None:
        """lstat ``rel`` if all its parents are real directories inside dest, else None."""
        parent = rel.rpartition("/")[0]
        current = ""
        for part in parent.split("/") if parent else ():
            current = f"{current}/{part}" if current else part
            if current in self._dirs:
                continue
            try:
                st = os.lstat(current, dir_fd=self._root)
            except FileNotFoundError:
                return None
            if not stat.S_ISDIR(st.st_mode):
                return None
            self._dirs.add(current)
        try:
            return os.lstat(rel, dir_fd=self._root)
        except FileNotFoundError:
            return None

    def _remove(self, rel: str, st: os.stat_result | None = None) -> None:
        """Remove whatever is at ``rel`` (a directory with all its contents), without following."""
        if st is None:
            st = os.lstat(rel, dir_fd=self._root)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(rel, dir_fd=self._root)
            prefix = rel + "/"
            self._dirs = {d for d in self._dirs if d != rel and not d.startswith(prefix)}
            for key in [k for k in self._dir_meta if k == rel or k.startswith(prefix)]:
                del self._dir_meta[key]
        else:
            os.unlink(rel, dir_fd=self._root)
        if self._hasher is not None:
            self._hasher.remove(rel)

    def _set_xattrs(self, target: int | str, xattrs: tuple[tuple[str, bytes], ...]) -> None:
        for name, value in xattrs:
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _XATTR_NOT_PERMITTED:
                    raise


def _digest_at(root: int, rel: str) -> tuple[int, str]:
    digest = hashlib.sha512()
    size = 0
    fd = os.open(rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root)
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def extract_tar(
    stream: BinaryIO,
    dest: Path,
    *,
    strip_prefix: str = "",
    on_entry: OnEntry | None = None,
    path_filter: PathFilter | None = None,
    hasher: TreeHashBuilder | None = None,
    same_owner: bool | None = None,
) -> ExtractStats:
    """Extract the (uncompressed) tar ``stream`` into ``dest`` under the rules of this module.

    - ``strip_prefix``: only members under this path are extracted, relative to it ("rootfs" for
      an ACI); the prefix itself maps to ``dest``. Members outside it are skipped.
    - ``on_entry(entry, reader)``: called first for every member; returning True means the caller
      consumed it (it may read the body with ``reader.read_body()``) and it is not extracted.
    - ``path_filter(relpath)``: False skips the member (appc ``pathWhitelist``).
    - ``hasher``: a TreeHashBuilder fed with what is written (see ``rkt.formats.treehash``).
    - ``same_owner``: chown to the stored owners; defaults to running as root.
    """
    reader = TarReader(stream)
    with Extractor(
        dest,
        strip_prefix=strip_prefix,
        path_filter=path_filter,
        hasher=hasher,
        same_owner=same_owner,
    ) as extractor:
        for entry in reader:
            if on_entry is not None and on_entry(entry, reader):
                continue
            extractor.extract(entry, reader)
        return extractor.finish()
