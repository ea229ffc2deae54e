"""Stream compression of image archives: detection by magic, decompressing readers, compressors.

appc aci.md allows gzip, bzip2 and xz around the tar; zstd is accepted too because OCI and Docker
layers use it. Everything streams: no reader needs ``seek``, so an HTTP body can be piped through.
``zstandard`` is imported only when a zstd stream is met. Decoder failures (a truncated or corrupt
stream) become :class:`rkt.errors.ArchiveError`.

May import ``rkt.errors`` only.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import cast

from rkt.errors import ArchiveError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

COMPRESSIONS = ("none", "gzip", "bzip2", "xz", "zstd")

# Longest magic below; detect_compression needs at most this many leading bytes.
MAGIC_LENGTH = 6
_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_READ_CHUNK = 1 << 20


def detect_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes ("none" when no magic matches)."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


class _PrefixedReader:
    """Hands out ``head`` and then the rest of ``raw``: a peek without seek, and without copies."""

    compression = "none"

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self._head:
            return self._raw.read(-1 if size is None else size)
        head, self._head = self._head, b""
        if size is None or size < 0:
            return head + self._raw.read()
        if size <= len(head):
            head, self._head = head[:size], head[size:]
            return head
        return head + self._raw.read(size - len(head))

    def close(self) -> None:
        """The caller owns ``raw``."""


class _CheckedReader(io.BufferedIOBase):
    """Wraps a decompressor; turns its decoder errors into ArchiveError naming the compression."""

    def __init__(self, inner: BinaryIO, compression: str) -> None:
        self._inner = inner
        self.compression = compression

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._inner.read(-1 if size is None else size)
        except EOFError as exc:
            raise ArchiveError(f"truncated {self.compression} stream") from exc
        except (OSError, zlib.error, lzma.LZMAError) as exc:
            raise ArchiveError(f"corrupt {self.compression} stream: {exc}") from exc
        except Exception as exc:  # zstandard.ZstdError is not importable without zstandard
            if type(exc).__name__ == "ZstdError":
                raise ArchiveError(f"corrupt {self.compression} stream: {exc}") from exc
            raise

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def _read_head(raw: BinaryIO) -> bytes:
    head = b""
    while len(head) < MAGIC_LENGTH:
        chunk = raw.read(MAGIC_LENGTH - len(head))
        if not chunk:
            break
        head += chunk
    return head


class _ZstdReader(io.RawIOBase):
    """Decodes concatenated zstd frames; unlike zstandard's stream_reader, notices a cut-off one."""

    def __init__(self, source: BinaryIO) -> None:
        import zstandard

        self._new = zstandard.ZstdDecompressor().decompressobj
        self._decompressor = self._new()
        self._source = source
        self._pending = b""
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = self._source.read(_READ_CHUNK)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd frame cut off")
                return 0
            self._pending = self._feed(chunk)
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            self._in_frame = True
            out.append(self._decompressor.decompress(chunk))
            if not self._decompressor.eof:
                break
            # End of one frame; any bytes after it start the next one.
            self._in_frame = False
            chunk = self._decompressor.unused_data
            self._decompressor = self._new()
        return b"".join(out)


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """Return a streaming reader of the decompressed bytes of ``raw``; see :func:`detected`."""
    head = _read_head(raw)
    compression = detect_compression(head)
    source = cast("BinaryIO", _PrefixedReader(head, raw))
    inner: BinaryIO
    if compression == "none":
        return source
    if compression == "gzip":
        inner = cast("BinaryIO", gzip.GzipFile(fileobj=source, mode="rb"))
    elif compression == "bzip2":
        inner = cast("BinaryIO", bz2.BZ2File(source, "rb"))
    elif compression == "xz":
        inner = cast("BinaryIO", lzma.LZMAFile(source, "rb"))  # noqa: SIM115
    else:
        zstd = _ZstdReader(source)
        inner = cast("BinaryIO", io.BufferedReader(zstd, _READ_CHUNK))
    return cast("BinaryIO", _CheckedReader(inner, compression))


def detected(reader: BinaryIO) -> str:
    """The compression that :func:`open_decompressed` found for the reader it returned."""
    return str(getattr(reader, "compression", "none"))


class _KeepOpenWriter(io.BufferedIOBase):
    """The "none" compressor: closing it flushes but leaves ``out`` open, like the others."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._out.write(data)

    def flush(self) -> None:
        if not self.closed:
            self._out.flush()


def open_compressor(name: str, out: BinaryIO) -> BinaryIO:
    """A writer compressing into ``out``; closing it ends the stream but leaves ``out`` open.

    Output is deterministic: gzip headers carry no name and a zero mtime; zstd is single-threaded.
    """
    if name == "none":
        return cast("BinaryIO", _KeepOpenWriter(out))
    if name == "gzip":
        return cast("BinaryIO", gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0))
    if name == "bzip2":
        return cast("BinaryIO", bz2.BZ2File(out, "wb"))
    if name == "xz":
        return cast("BinaryIO", lzma.LZMAFile(out, "wb", preset=6))
    if name == "zstd":
        import zstandard

        writer = zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(
            out, closefd=False
        )
        return cast("BinaryIO", writer)
    raise ArchiveError(f'unknown compression "{name}" (choose from {", ".join(COMPRESSIONS)})')
