"""Threads for the one-pass import: ordered jobs off the main thread, and read-ahead of a stream.

Importing an image is CPU work that releases the GIL (hashlib on buffers of 2 KiB and more;
zlib, bz2 and lzma decompression; ``os.write``) around extraction, which mostly waits in the
kernel. On a machine with two or more cores, running the image-ID digest, the tree-hash file
digests and read + blob copy + decompression on their own threads overlaps them with extraction
(measured in docs/benchmarks.md). On one core nothing is lost but a few queue hand-overs.

Both helpers bound their queues, so a slow consumer slows the producer instead of buffering the
image in memory, and both carry an exception from their thread to the caller's, unchanged.

May import nothing from rkt.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

_Job = tuple[Callable[[Any], object], Any]


class Worker:
    """Runs submitted ``fn(arg)`` calls in submission order on one daemon thread.

    The first exception a job raises stops the work (later jobs are skipped) and is re-raised
    by :meth:`close` in the caller's thread. :meth:`abort` is for error paths: it drops what is
    queued, waits for the running job and never raises.
    """

    def __init__(self, name: str, depth: int = 16) -> None:
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._skip = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._skip:
                continue
            fn, arg = job
            try:
                fn(arg)
            except BaseException as exc:  # carried to the caller by close()
                self._error = exc
                self._skip = True

    def submit(self, fn: Callable[[Any], object], arg: Any) -> None:
        """Queue ``fn(arg)``; blocks while ``depth`` jobs are waiting."""
        if self._closed:
            raise RuntimeError("job submitted to a closed worker")
        self._queue.put((fn, arg))

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def close(self) -> None:
        """Wait until every submitted job has run; re-raise the first error of one."""
        self._stop()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def abort(self) -> None:
        """Skip the jobs still queued, wait for the thread, forget any error."""
        self._skip = True
        self._stop()
        self._error = None


class ReadAhead:
    """A read-only stream that reads ``source`` on a thread, up to ``depth`` chunks ahead.

    ``read(size)`` returns at most ``size`` bytes and may return fewer before EOF, as a raw
    stream does; ``b""`` means EOF. An exception raised by ``source`` is raised by the ``read``
    that reaches it. :meth:`close` stops the thread (it finishes the read it is in) and waits
    for it, so nothing touches ``source`` after close returns; the caller still owns ``source``.
    """

    def __init__(self, source: BinaryIO, *, chunk: int = 1 << 20, depth: int = 8) -> None:
        self._source = source
        self._chunk = chunk
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stopping = False
        self._pending = b""
        self._done: BaseException | None = None
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="rkt-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                data = self._source.read(self._chunk)
                self._queue.put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the reader, raised there
            self._queue.put(exc)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read(self._chunk):
                parts.append(part)
            return b"".join(parts)
        if not self._pending:
            if self._done is not None:
                raise self._done
            if self._eof:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = item
                raise item
            if not item:
                self._eof = True
                return b""
            self._pending = item
        if size >= len(self._pending):
            data, self._pending = self._pending, b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        self._stopping = True
        while self._thread.is_alive():
            try:  # make room, so a thread blocked in put() can see the stop flag
                self._queue.get(timeout=0.01)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
