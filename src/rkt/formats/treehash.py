"""Tree digests of rendered image trees, the check behind ``rkt image verify``.

Two ways to the same digest: :class:`TreeHashBuilder`, fed by the extractor as it writes (so the
file data is hashed from the buffers being written, in the one pass over the archive), and
:func:`compute_tree_hash`, a walk of the tree on disk. A stored digest that differs from a fresh
walk means the rendered tree was changed after extraction.

Format, version 1. The digest is the sha512 (hex) of::

    "rkt-treehash-v1\\n" + one record per entry, sorted by the bytes of its path

and a record is::

    PATH NUL KIND SP MODE SP UID SP GID SP SIZE SP DIGEST LF

- PATH: relative to the tree root, components joined by "/", no leading "./", as raw bytes
  (``os.fsencode``); the root itself is not listed. A path cannot hold NUL, so the record is
  unambiguous even for names containing newlines.
- KIND: ``f`` regular file, ``d`` directory, ``l`` symlink, ``p`` FIFO; ``c``, ``b``, ``s`` (device
  nodes, sockets) only ever come from a walk, since extraction never creates them.
- MODE: the permission bits including setuid, setgid and sticky, as 4 octal digits.
- UID, GID: decimal numeric owner.
- SIZE: decimal; content length for files, target length for symlinks, 0 otherwise.
- DIGEST: sha512 hex of the content (files) or of the target bytes (symlinks); ``-`` otherwise.
  Hard links are plain files here: each path lists the content it shares.

Mtimes are left out on purpose: directory mtimes move whenever an entry inside is created or
removed (so they depend on extraction order and on later layers), filesystems round them
differently, and copying a tree changes them; while anyone able to alter content can also reset
them. They would cause false alarms without catching any tampering. Xattrs are left out because
which ones survive depends on the filesystem and on privileges (``security.*``, ``trusted.*``).

May import ``rkt.errors`` only.
"""

from __future__ import annotations

import hashlib
import os
import stat

from rkt.paths import Path

HEADER = b"rkt-treehash-v1\n"
_CHUNK = 1 << 20
_KIND_BY_FMT = {
    stat.S_IFREG: "f",
    stat.S_IFDIR: "d",
    stat.S_IFLNK: "l",
    stat.S_IFIFO: "p",
    stat.S_IFCHR: "c",
    stat.S_IFBLK: "b",
    stat.S_IFSOCK: "s",
}


def _record(kind: str, mode: int, uid: int, gid: int, size: int, digest: str) -> bytes:
    return f"{kind} {mode & 0o7777:04o} {uid} {gid} {size} {digest}\n".encode("ascii")


class PendingDigest:
    """A file record whose content digest is still being fed (on another thread).

    The builder turns it into the record when :meth:`TreeHashBuilder.hexdigest` runs; whoever
    feeds ``digest`` must have finished by then (``rkt.formats.aci.import_aci`` closes the
    extractor's digest worker first).
    """

    __slots__ = ("digest", "gid", "kind", "mode", "size", "uid")

    def __init__(
        self, kind: str, mode: int, uid: int, gid: int, size: int, digest: hashlib._Hash
    ) -> None:
        self.kind, self.mode, self.uid, self.gid, self.size = kind, mode, uid, gid, size
        self.digest = digest

    def record(self) -> bytes:
        return _record(self.kind, self.mode, self.uid, self.gid, self.size, self.digest.hexdigest())


class TreeHashBuilder:
    """Collects one record per path; later records for a path replace earlier ones."""

    def __init__(self) -> None:
        self._records: dict[bytes, bytes | PendingDigest] = {}

    def add(
        self, path: str, kind: str, mode: int, uid: int, gid: int, size: int, digest: str = "-"
    ) -> None:
        """Record ``path`` (relative, "/"-separated) with the given attributes."""
        self._records[os.fsencode(path)] = _record(kind, mode, uid, gid, size, digest)

    def add_pending(self, path: str, pending: PendingDigest) -> None:
        """Record ``path`` with a content digest that is completed later (see PendingDigest)."""
        self._records[os.fsencode(path)] = pending

    def add_symlink(self, path: str, target: str, mode: int, uid: int, gid: int) -> None:
        raw = os.fsencode(target)
        self.add(path, "l", mode, uid, gid, len(raw), hashlib.sha512(raw).hexdigest())

    def copy(self, source: str, path: str) -> bool:
        """Record ``path`` as a hard link of ``source``; False if ``source`` is not recorded."""
        record = self._records.get(os.fsencode(source))
        if record is None:
            return False
        self._records[os.fsencode(path)] = record
        return True

    def remove(self, path: str) -> None:
        """Forget ``path`` and, if it was a directory, everything below it."""
        key = os.fsencode(path)
        record = self._records.pop(key, None)
        if isinstance(record, bytes) and record.startswith(b"d "):
            prefix = key + b"/"
            for child in [k for k in self._records if k.startswith(prefix)]:
                del self._records[child]

    def __len__(self) -> int:
        return len(self._records)

    def hexdigest(self) -> str:
        digest = hashlib.sha512(HEADER)
        for key in sorted(self._records):
            record = self._records[key]
            if not isinstance(record, bytes):
                record = self._records[key] = record.record()
            digest.update(key + b"\0" + record)
        return digest.hexdigest()


def _file_digest(path: str) -> tuple[int, str]:
    digest = hashlib.sha512()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while count := os.readv(fd, [buffer]):
            digest.update(view[:count])
            size += count
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def compute_tree_hash(root: Path) -> str:
    """Walk ``root`` without following symlinks and return its tree digest (see module doc)."""
    builder = TreeHashBuilder()
    pending = [("", os.fspath(root))]
    while pending:
        relative, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                path = f"{relative}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                kind = _KIND_BY_FMT.get(stat.S_IFMT(st.st_mode), "?")
                if kind == "f":
                    size, digest = _file_digest(entry.path)
                    builder.add(path, kind, st.st_mode, st.st_uid, st.st_gid, size, digest)
                elif kind == "l":
                    target = os.readlink(entry.path)
                    builder.add_symlink(path, target, st.st_mode, st.st_uid, st.st_gid)
                else:
                    builder.add(path, kind, st.st_mode, st.st_uid, st.st_gid, 0)
                    if kind == "d":
                        pending.append((path + "/", entry.path))
    return builder.hexdigest()
