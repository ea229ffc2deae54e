"""rkt.formats.compression: magic detection, streaming decompression, deterministic compressors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os

import pytest
import zstandard

from rkt.errors import ArchiveError
from rkt.formats.compression import (
    COMPRESSIONS,
    detect_compression,
    detected,
    open_compressor,
    open_decompressed,
)

PAYLOAD = os.urandom(300_000) + b"tar" * 100_000

COMPRESS = {
    "none": lambda data: data,
    "gzip": lambda data: gzip.compress(data),
    "bzip2": lambda data: bz2.compress(data),
    "xz": lambda data: lzma.compress(data),
    "zstd": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}


class Unseekable:
    """A pipe-like stream: read() only, short reads."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 4099) if size and size > 0 else size)


def _read_all(stream: io.BufferedIOBase | object) -> bytes:
    out = []
    while chunk := stream.read(1 << 16):  # type: ignore[attr-defined]
        out.append(chunk)
    return b"".join(out)


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_detect_compression_names_each_kind(kind: str) -> None:
    assert detect_compression(COMPRESS[kind](PAYLOAD)[:6]) == kind


def test_detect_compression_of_plain_tar_is_none() -> None:
    assert detect_compression(b"manifest\0\0\0") == "none"
    assert detect_compression(b"") == "none"


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_open_decompressed_streams_without_seek(kind: str) -> None:
    reader = open_decompressed(Unseekable(COMPRESS[kind](PAYLOAD)))  # type: ignore[arg-type]
    assert detected(reader) == kind
    assert _read_all(reader) == PAYLOAD


def test_open_decompressed_reads_concatenated_zstd_frames() -> None:
    compressor = zstandard.ZstdCompressor()
    data = compressor.compress(b"one ") + compressor.compress(b"two")
    assert _read_all(open_decompressed(io.BytesIO(data))) == b"one two"


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_truncated_stream_is_an_archive_error(kind: str) -> None:
    data = COMPRESS[kind](PAYLOAD)
    reader = open_decompressed(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(ArchiveError, match=f"truncated {kind} stream"):
        _read_all(reader)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
def test_corrupt_stream_is_an_archive_error(kind: str) -> None:
    data = bytearray(COMPRESS[kind](PAYLOAD))
    for i in range(40, 80):
        data[i] ^= 0x5A
    with pytest.raises(ArchiveError, match=kind):
        _read_all(open_decompressed(io.BytesIO(bytes(data))))


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_open_compressor_round_trips_and_leaves_out_open(kind: str) -> None:
    out = io.BytesIO()
    writer = open_compressor(kind, out)
    writer.write(PAYLOAD)
    writer.close()
    assert not out.closed
    assert detect_compression(out.getvalue()[:6]) == kind
    assert _read_all(open_decompressed(io.BytesIO(out.getvalue()))) == PAYLOAD


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_open_compressor_is_deterministic(kind: str) -> None:
    results = []
    for _ in range(2):
        out = io.BytesIO()
        with open_compressor(kind, out) as writer:
            writer.write(PAYLOAD)
        results.append(out.getvalue())
    assert results[0] == results[1]


def test_open_compressor_refuses_unknown_names() -> None:
    with pytest.raises(ArchiveError, match='unknown compression "lz4"'):
        open_compressor("lz4", io.BytesIO())
