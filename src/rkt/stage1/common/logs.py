"""App logs in the CRI log format (docs/stage1-abi.md §2, Kubernetes CRI "container logs"):
one entry per line, ``<RFC3339 time, 9 fraction digits, Z> <stdout|stderr> <P|F> <text>``.

``F`` ends a line; a chunk that ends mid-line is written at once as ``P`` (partial) so nothing
waits in memory, and readers join partial entries up to the next ``F``.
Imports only the standard library.
"""

from __future__ import annotations

import os
import time


def rfc3339_nano(ns: int) -> bytes:
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%09dZ" % frac


def format_cri(stream: bytes, data: bytes, ns: int) -> bytes:
    """The CRI entries for one chunk read from ``stream`` (b"stdout" or b"stderr")."""
    stamp = rfc3339_nano(ns)
    lines = data.split(b"\n")
    out = []
    for line in lines[:-1]:
        out.append(b"%s %s F %s\n" % (stamp, stream, line))
    if lines[-1]:
        out.append(b"%s %s P %s\n" % (stamp, stream, lines[-1]))
    return b"".join(out)


class CriLogWriter:
    """Appends CRI entries to one app's log file."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def write(self, stream: bytes, data: bytes) -> None:
        entry = format_cri(stream, data, time.time_ns())
        try:
            os.write(self.fd, entry)
        except OSError:
            pass  # a full disk must not stop the pod; the terminal copy still flows

    def close(self) -> None:
        os.close(self.fd)
