"""``LinuxHost``: the real ``rkt.host.api.Host`` over ctypes (``rkt.host.libc``).

``rkt.host.libc`` (ctypes, ~3 ms) is imported by the first call that needs it, not with this
module: an ordinary ``--net=none`` pod start never needs it.

Imports only the standard library and ``rkt.host``.
"""

from __future__ import annotations

import os

from rkt.host.flags import O_PATH, PR_SET_DUMPABLE, RESOLVE_IN_ROOT


class LinuxHost:
    """The running kernel."""

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        from rkt.host import libc

        libc.mount(source, target, fstype, flags, data)

    def umount(self, target: str, flags: int = 0) -> None:
        from rkt.host import libc

        libc.umount2(target, flags)

    def unshare(self, flags: int) -> None:
        from rkt.host import libc

        libc.unshare(flags)

    def setns(self, fd: int, nstype: int) -> None:
        from rkt.host import libc

        libc.setns(fd, nstype)

    def sethostname(self, name: str) -> None:
        from rkt.host import libc

        libc.sethostname(name)

    def set_dumpable(self, dumpable: bool) -> None:
        from rkt.host import libc

        libc.prctl(PR_SET_DUMPABLE, int(dumpable))

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"write: {exc.strerror}", path) from exc
        finally:
            os.close(fd)


def read_file_in_root(root: str, path: str) -> bytes:
    """The contents of ``path`` inside the tree ``root``, symlinks confined to it."""
    from rkt.host import libc

    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = libc.openat2(root_fd, path, os.O_RDONLY, RESOLVE_IN_ROOT)
    finally:
        os.close(root_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def stat_in_root(root: str, path: str) -> os.stat_result:
    """``stat`` of ``path`` inside the tree ``root`` (following symlinks, confined to it)."""
    from rkt.host import libc

    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = libc.openat2(root_fd, path, O_PATH, RESOLVE_IN_ROOT)
    finally:
        os.close(root_fd)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)
