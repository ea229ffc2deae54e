"""The name files: the image index's rows for one image name, in a small JSON file, so a pod
start finds its images without loading sqlite (~4.5 ms of imports, connection and queries).

Layout: ``cas/db/names/<escaped name>.rows``: one line of JSON, ``{"v": 2, "name": ..., "rows":
[...]}``, the name's images newest import first, each row the ``images`` columns in
``ImageRecord`` order followed by the image's layer digests; the manifests follow the line as
they are, each row giving its manifest's offset and length there. So a reader parses only the
small part (a store that kept every stage1 image rkt generated has dozens under one name) and
a manifest is bytes as the index holds it. Names that cannot be files (too long) have none.
A file whose rows name an image ID, tree ID or layer digest not in the form the store makes
them (they become paths in the store) is not used, like a torn one.

The index stays the truth; a name file is either absent or equal to what the index holds,
because every write to the index goes through one protocol (``rkt.store.db``'s transactions):

1. take ``cas/db/names.lock`` (an exclusive flock), then the index's write lock;
2. the index's temporary triggers collect the names whose rows the transaction changes
   (``images`` and ``image_layers``);
3. before COMMIT those names' files are removed and the directory fsynced: a crash from here on
   leaves them absent, never stale;
4. after COMMIT they are written again from the index (temporary file, fsync, rename), and
   only then is the flock released.

A reader takes no lock: a file it finds is current (a write in progress has removed it first).
A reader that finds none reads the index and writes the file under the same flock (``repair``),
so a store made before name files existed, or one a crash left without them, gets them back.
An rkt that predates name files would write the index without them and leave them stale: the
index's schema version 3 makes it refuse the store instead.

Imports only ``os``, ``fcntl`` and rkt's leaves.
"""

from __future__ import annotations

import fcntl
import os

from rkt import jsonio
from rkt.store.records import ImageRecord
from rkt.textcheck import is_lower_hex

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable

    from rkt.paths import Path

FORMAT = 2
DIR_NAME = "names"
LOCK_NAME = "names.lock"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_MAX_FILE_NAME = 240  # NAME_MAX is 255: room for ".rows" and a temporary suffix
_ROW_LENGTH = len(ImageRecord._fields) + 1
_MANIFEST = ImageRecord._fields.index("manifest")

# one image: its ImageRecord and the digests of its Docker/OCI layers ([] for an ACI)
Entry = tuple[ImageRecord, list[str]]


def file_name(name: str) -> str | None:
    """``name``'s file in the names directory, or None when it cannot have one. Every byte
    outside ``[a-z0-9-_.]``, and a leading ``.``, is ``%xx``: different names never share a
    file, and none is hidden or a directory's name."""
    out = "".join(
        c if c in _SAFE and (i or c != ".") else "".join(f"%{b:02x}" for b in c.encode())
        for i, c in enumerate(name)
    )
    if not out or len(out) > _MAX_FILE_NAME:
        return None
    return out + ".rows"


def read(names_dir: Path | str, name: str) -> list[Entry] | None:
    """The name's images from its file, newest import first; None when there is no usable file
    (absent, torn, another format, another name's)."""
    fname = file_name(name)
    if fname is None:
        return None
    try:
        fd = os.open(os.path.join(names_dir, fname), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 1 << 20)
        while True:
            more = os.read(fd, 1 << 20)
            if not more:
                break
            data += more
    except OSError:
        return None
    finally:
        os.close(fd)
    header, newline, blobs = data.partition(b"\n")
    try:
        doc = jsonio.loads(header)
        if not newline or not isinstance(doc, dict):
            return None
        if doc.get("v") != FORMAT or doc.get("name") != name:
            return None
        return [_entry(row, blobs) for row in doc["rows"]]
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None


def _entry(row: list[object], blobs: bytes) -> Entry:
    if not isinstance(row, list) or len(row) != _ROW_LENGTH:
        raise ValueError("bad row")
    (id_, name, labels, manifest, import_time, last_used, size, usize, comp, source, tree_id,
     tree_size, layers) = row  # fmt: skip
    if not isinstance(labels, dict) or not isinstance(layers, list):
        raise ValueError("bad row")
    if not isinstance(manifest, list) or len(manifest) != 2:
        raise ValueError("bad row")
    offset, length = (int(n) for n in manifest)
    if offset < 0 or length < 0 or offset + length > len(blobs):
        raise ValueError("bad row")
    # what becomes a path in the store: the forms the store gives them, nothing else
    if not _digest(id_, "sha512-", 128) or (
        tree_id is not None and not _digest(tree_id, "deps-", 64)
    ):
        raise ValueError("bad row")
    if not all(_digest(d, "sha256:", 64) for d in layers):
        raise ValueError("bad row")
    rec = ImageRecord(
        id=str(id_),
        name=str(name),
        labels={str(k): str(v) for k, v in labels.items()},
        manifest=blobs[offset : offset + length],
        import_time=float(import_time),  # type: ignore[arg-type]
        last_used=float(last_used),  # type: ignore[arg-type]
        size=int(size),  # type: ignore[call-overload]
        uncompressed_size=int(usize),  # type: ignore[call-overload]
        compression=str(comp),
        source=str(source),
        tree_id=None if tree_id is None else str(tree_id),
        tree_size=int(tree_size),  # type: ignore[call-overload]
    )
    return rec, [str(d) for d in layers]


def _digest(value: object, prefix: str, length: int) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(prefix)
        and len(value) == len(prefix) + length
        and is_lower_hex(value[len(prefix) :])
    )


def _row(entry: Entry, offset: int) -> list[object]:
    """The record's fields in order, its manifest as (offset, length), then its layers."""
    rec, layers = entry
    row: list[object] = list(rec)
    row[_MANIFEST] = [offset, len(rec.manifest)]
    return [*row, list(layers)]


def write(names_dir: Path | str, name: str, entries: list[Entry]) -> None:
    """Write the name's file (``entries``: what the index holds now); none when the name has no
    images or cannot have a file. The caller holds the names lock."""
    fname = file_name(name)
    if fname is None:
        return
    path = os.path.join(names_dir, fname)
    if not entries:
        _unlink(path)
        return
    rows = []
    offset = 0
    for entry in entries:
        rows.append(_row(entry, offset))
        offset += len(entry[0].manifest)
    header = jsonio.dumps({"v": FORMAT, "name": name, "rows": rows}).encode()
    assert b"\n" not in header  # compact JSON: a newline in a string is escaped
    data = b"".join([header, b"\n", *(rec.manifest for rec, _layers in entries)])
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o664)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def invalidate(names_dir: Path | str, names: Iterable[str]) -> None:
    """Remove the names' files, durably (before the index commits a change to them). Raises
    OSError when one cannot be removed: the change must then not be committed."""
    removed = False
    for name in names:
        fname = file_name(name)
        if fname is not None:
            try:
                os.unlink(os.path.join(names_dir, fname))
                removed = True
            except FileNotFoundError:
                pass
    if removed:
        fd = os.open(names_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class NamesLock:
    """The exclusive flock on ``cas/db/names.lock`` that orders the name files' writers (never
    deleted; opened once per index, taken per transaction)."""

    def __init__(self, db_dir: Path | str) -> None:
        self.path = os.path.join(db_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
