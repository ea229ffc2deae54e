"""The background helpers of the one-pass import: ordered jobs, first error re-raised, read-ahead
returning exactly the source's bytes."""

from __future__ import annotations

import io
import os

import pytest

from rkt.formats.background import ReadAhead, Worker


def test_worker_runs_jobs_in_submission_order() -> None:
    seen: list[int] = []
    worker = Worker("test")
    for n in range(100):
        worker.submit(seen.append, n)
    worker.close()
    assert seen == list(range(100))


def test_worker_reraises_the_first_error_and_skips_later_jobs() -> None:
    seen: list[int] = []

    def job(n: int) -> None:
        if n == 3:
            raise ValueError("job 3 failed")
        seen.append(n)

    worker = Worker("test")
    for n in range(10):
        worker.submit(job, n)
    with pytest.raises(ValueError, match="job 3 failed"):
        worker.close()
    assert seen == [0, 1, 2]


def test_worker_abort_never_raises_and_refuses_new_jobs() -> None:
    worker = Worker("test")
    worker.submit(lambda _n: 1 / 0, 0)
    worker.abort()
    with pytest.raises(RuntimeError):
        worker.submit(print, 1)


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (3 << 20) + 17])
def test_read_ahead_returns_exactly_the_source_bytes(size: int) -> None:
    data = os.urandom(size)
    with ReadAhead(io.BytesIO(data), chunk=64 << 10, depth=4) as reader:
        parts = []
        while chunk := reader.read(50_000):
            parts.append(chunk)
    assert b"".join(parts) == data


def test_read_ahead_passes_on_a_read_error() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"), ReadAhead(Broken()) as reader:  # type: ignore[arg-type]
        reader.read(10)
