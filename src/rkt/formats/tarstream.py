"""A streaming reader of tar archives: headers (ustar, pax, GNU long names) and member bodies.

Owns parsing only; what is done with a member (and whether it is safe) is ``rkt.formats.safetar``'s
job. The reader pulls the underlying stream in large chunks and hands body data out as memoryviews
of those chunks, so extraction costs one copy (the kernel's) per byte. Every byte pulled from the
stream passes ``on_chunk`` (used to hash the uncompressed tar for the image ID, appc aci.md
"Image ID"), and :meth:`TarReader.drain` reads to EOF so trailing zero records are counted too.

Formats: POSIX.1-1988 ustar (with ``prefix``), POSIX.1-2001 pax (``x`` and ``g`` headers; the keys
path, linkpath, size, uid, gid, mtime and SCHILY.xattr.*), GNU ``L``/``K`` long names and base-256
numbers, V7. GNU sparse files and multi-volume parts are refused.

May import ``rkt.errors`` only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rkt.errors import ArchiveError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

BLOCK = 512
MAX_NAME = 4096  # PATH_MAX: longer member names are refused as absurd
MAX_ID = 0xFFFFFFFE  # the largest uid/gid (2**32 - 1 is "no id")
MAX_MTIME_NS = 2**63 - 1  # what the kernel's timestamps hold (utimensat), ~ year 2262
MAX_PAX = 1 << 20  # an extended header above this is hostile (xattr values are <= 64 KiB)
_CHUNK = 1 << 20
_ZERO = bytes(BLOCK)

_KINDS = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",  # contiguous file: a regular file everywhere that matters
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char",
    b"4": "block",
    b"5": "dir",
    b"6": "fifo",
    b"D": "dir",  # GNU dumpdir: a directory whose body lists its contents
}


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member header, with pax and GNU long-name records already applied.

    ``name`` and ``linkname`` are as stored (decoded with surrogateescape), not yet normalised.
    """

    name: str
    kind: str  # file, dir, symlink, hardlink, fifo, char, block
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()
    devmajor: int = 0
    devminor: int = 0


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256: 0x80 positive, 0xff negative
        if field[0] == 0xFF:
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ArchiveError(f"corrupt tar header: bad {what} field {text!r}") from None


def _text(field: bytes) -> str:
    return os.fsdecode(field.split(b"\0", 1)[0])


def _mtime_ns(value: bytes) -> int:
    """A pax ``mtime`` ("1234", "-5.25", "1234.000000001") in nanoseconds."""
    text = value.decode("ascii", "replace")
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("-+").partition(".")
    try:
        return sign * (int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9]))
    except ValueError:
        raise ArchiveError(f"corrupt pax header: bad mtime {text!r}") from None


def _pax_int(pax: dict[str, bytes], key: str) -> int:
    try:
        value = int(pax[key])
    except ValueError:
        value = -1
    if value < 0:
        raise ArchiveError(f"corrupt pax header: bad {key} {pax[key]!r}")
    return value


def parse_pax(data: bytes) -> dict[str, bytes]:
    """Parse pax extended header records ("LEN KEY=VALUE\\n"); values stay bytes."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 20)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        end = pos + length
        if length <= space - pos or end > len(data) or data[end - 1] != 0x0A:
            raise ArchiveError("corrupt pax header: bad record length")
        key, sep, value = data[space + 1 : end - 1].partition(b"=")
        if not sep:
            raise ArchiveError("corrupt pax header: record without '='")
        records[key.decode("utf-8", "surrogateescape")] = value
        pos = end
    return records


class TarReader:
    """Iterates the members of a tar stream; a member's body may be read until the next step."""

    def __init__(self, stream: BinaryIO, *, on_chunk: Callable[[bytes], object] | None = None):
        self._stream = stream
        self._on_chunk = on_chunk
        self._buf = b""
        self._pos = 0
        self._body_left = 0
        self._pad = 0
        self.consumed = 0  # bytes pulled from the stream so far

    def _pull(self) -> bytes:
        chunk = self._stream.read(_CHUNK)
        if chunk:
            self.consumed += len(chunk)
            if self._on_chunk is not None:
                self._on_chunk(chunk)
        return chunk

    def _read_exact(self, size: int) -> bytes:
        while len(self._buf) - self._pos < size:
            chunk = self._pull()
            if not chunk:
                raise ArchiveError("truncated tar archive")
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        data = self._buf[self._pos : self._pos + size]
        self._pos += size
        return data

    def _skip(self, size: int) -> None:
        while size:
            available = len(self._buf) - self._pos
            if available >= size:
                self._pos += size
                return
            size -= available
            self._buf = self._pull()
            self._pos = 0
            if not self._buf:
                raise ArchiveError("truncated tar archive")

    def body_chunks(self) -> Iterator[memoryview]:
        """The unread rest of the current member's body, as views of the read buffer.

        The buffer is immutable ``bytes``: a view stays valid after the reader moves on, so it
        may be handed to another thread (the extractor's background digests rely on this).
        """
        while self._body_left:
            if self._pos == len(self._buf):
                self._buf = self._pull()
                self._pos = 0
                if not self._buf:
                    raise ArchiveError("truncated tar archive")
            take = min(self._body_left, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos : self._pos + take]
            self._pos += take
            self._body_left -= take
            yield view

    def read_body(self) -> bytes:
        """The unread rest of the current member's body (callers check the size first)."""
        data = self._read_exact(self._body_left)
        self._body_left = 0
        return data

    def drain(self) -> None:
        """Read the stream to EOF (the end-of-archive records and any padding after them)."""
        self._skip(self._body_left + self._pad)
        self._body_left = self._pad = 0
        self._buf, self._pos = b"", 0
        while self._pull():
            pass

    def _next_header(self) -> bytes | None:
        self._skip(self._body_left + self._pad)
        self._body_left = self._pad = 0
        if len(self._buf) - self._pos < BLOCK:
            chunk = self._pull()
            if not chunk and self._pos == len(self._buf):
                return None  # EOF at a member boundary without end records: tolerated, as tar does
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        block = self._read_exact(BLOCK)
        return None if block == _ZERO else block

    def _start_body(self, size: int) -> None:
        self._body_left = size
        self._pad = -size % BLOCK

    def _special_body(self, size: int, limit: int, what: str) -> bytes:
        if size > limit:
            raise ArchiveError(f"tar {what} header of {size} bytes is too large")
        self._start_body(size)
        return self.read_body()

    def __iter__(self) -> Iterator[TarEntry]:
        global_pax: dict[str, bytes] = {}
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while (block := self._next_header()) is not None:
            stored = _number(block[148:156], "checksum")
            unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20
            if stored != unsigned:
                signed = unsigned - 2 * sum(b for b in block if b >= 0x80)
                if stored != signed:
                    raise ArchiveError("corrupt tar header: checksum mismatch")
            typeflag = block[156:157]
            size = _number(block[124:136], "size")
            if size < 0:
                raise ArchiveError("corrupt tar header: negative size")
            if typeflag in (b"x", b"g"):
                records = parse_pax(self._special_body(size, MAX_PAX, "pax"))
                (pax if typeflag == b"x" else global_pax).update(records)
                continue
            if typeflag in (b"L", b"K"):
                value = self._special_body(size, MAX_NAME + BLOCK, "long name").split(b"\0", 1)[0]
                if typeflag == b"L":
                    long_name = value
                else:
                    long_link = value
                continue
            entry = self._entry(block, typeflag, size, {**global_pax, **pax}, long_name, long_link)
            pax, long_name, long_link = {}, None, None
            self._start_body(entry.size)
            yield entry

    def _entry(
        self,
        block: bytes,
        typeflag: bytes,
        size: int,
        pax: dict[str, bytes],
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> TarEntry:
        raw_name = block[0:100].split(b"\0", 1)[0]
        if block[257:263] == b"ustar\0" and block[345] != 0:
            raw_name = block[345:500].split(b"\0", 1)[0] + b"/" + raw_name
        raw_name = pax.get("path", long_name if long_name is not None else raw_name)
        raw_link = pax.get("linkpath", long_link)
        if raw_link is None:
            raw_link = block[157:257].split(b"\0", 1)[0]
        for value in (raw_name, raw_link):
            if len(value) > MAX_NAME:
                raise ArchiveError(f"tar member name of {len(value)} bytes is too long")
        name = os.fsdecode(raw_name)
        kind = _KINDS.get(typeflag)
        if kind is None:
            what = (
                "sparse files" if typeflag == b"S" else f"entry type {typeflag.decode('latin-1')!r}"
            )
            raise ArchiveError(f'"{name}": unsupported tar {what}')
        if kind == "file" and typeflag != b"7" and name.endswith("/"):
            kind = "dir"  # V7: a directory is a regular file whose name ends with a slash
        if any(key.startswith("GNU.sparse.") for key in pax):
            raise ArchiveError(f'"{name}": unsupported tar sparse files')
        mtime_ns = _number(block[136:148], "mtime") * 1_000_000_000
        if "mtime" in pax:
            mtime_ns = _mtime_ns(pax["mtime"])
        numbers: dict[str, int] = {}
        for key, field in (("uid", block[108:116]), ("gid", block[116:124])):
            numbers[key] = _pax_int(pax, key) if key in pax else _number(field, key)
        if "size" in pax:
            size = _pax_int(pax, "size")
        if numbers["uid"] < 0 or numbers["gid"] < 0:
            raise ArchiveError(f'"{name}": negative owner in tar header')
        if max(numbers["uid"], numbers["gid"]) > MAX_ID:
            raise ArchiveError(f'"{name}": owner beyond the largest uid/gid in tar header')
        if not -MAX_MTIME_NS <= mtime_ns <= MAX_MTIME_NS:
            raise ArchiveError(f'"{name}": modification time out of range in tar header')
        if kind != "file" and typeflag != b"D":
            size = 0  # as tarfile and GNU tar: only regular files (and GNU dumpdirs) have bodies
        xattrs = tuple(
            (key[len("SCHILY.xattr.") :], value)
            for key, value in sorted(pax.items())
            if key.startswith("SCHILY.xattr.")
        )
        return TarEntry(
            name=name,
            kind=kind,
            mode=_number(block[100:108], "mode") & 0o7777,
            uid=numbers["uid"],
            gid=numbers["gid"],
            size=size,
            mtime_ns=mtime_ns,
            linkname=os.fsdecode(raw_link),
            xattrs=xattrs,
            devmajor=_number(block[329:337], "devmajor") if kind in ("char", "block") else 0,
            devminor=_number(block[337:345], "devminor") if kind in ("char", "block") else 0,
        )
