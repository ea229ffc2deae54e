"""``LinuxHost``: the real ``rkt.host.api.Host`` over ctypes (``rkt.host.libc``).

Imports only the standard library and ``rkt.host``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from rkt.host import libc
from rkt.host.api import TargetKind

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def cap_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def open_in_root(root_fd: int, path: str, create: TargetKind | None = None) -> int:
    """An O_PATH descriptor of ``path`` resolved inside ``root_fd`` (which acts as ``/``).

    With ``create``, missing directories are made (mode 0755) and a missing last component is
    made as a directory or an empty file; symlinks still resolve inside the root.
    """
    resolve = libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS
    parts = [p for p in path.split("/") if p and p != "."]
    try:
        return libc.openat2(root_fd, "/" + "/".join(parts), libc.O_PATH, resolve)
    except FileNotFoundError:
        if create is None:
            raise
    # Walk from the root, creating what is missing; every lookup starts again at root_fd so that
    # symlinks resolve exactly as they would inside the root, and can never leave it.
    for i, name in enumerate(parts):
        prefix = "/" + "/".join(parts[: i + 1])
        try:
            os.close(libc.openat2(root_fd, prefix, libc.O_PATH, resolve))
            continue
        except FileNotFoundError:
            pass
        parent = libc.openat2(
            root_fd, "/" + "/".join(parts[:i]), os.O_RDONLY | os.O_DIRECTORY, resolve
        )
        try:
            _create(parent, name, "file" if i == len(parts) - 1 and create == "file" else "dir")
        finally:
            os.close(parent)
    return libc.openat2(root_fd, "/" + "/".join(parts), libc.O_PATH, resolve)


def _create(dir_fd: int, name: str, kind: TargetKind) -> None:
    try:
        if kind == "dir":
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        else:
            os.close(
                os.open(
                    name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
                )
            )
    except FileExistsError:
        pass


class LinuxHost:
    """The running kernel."""

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        libc.mount(source, target, fstype, flags, data)

    def mount_in_root(
        self,
        root_fd: int,
        target: str,
        source: str | None,
        fstype: str | None,
        flags: int,
        data: str | None = None,
        *,
        create: TargetKind | None = "dir",
    ) -> None:
        fd = open_in_root(root_fd, target, create)
        try:
            # The magic link names exactly the inode we resolved: no second path walk to race.
            libc.mount(source, f"/proc/self/fd/{fd}", fstype, flags, data)
        finally:
            os.close(fd)

    def symlink_in_root(self, root_fd: int, path: str, target: str) -> None:
        parent, _, name = path.rstrip("/").rpartition("/")
        dir_fd = libc.openat2(
            root_fd, parent or "/", os.O_RDONLY | os.O_DIRECTORY, libc.RESOLVE_IN_ROOT
        )
        try:
            os.symlink(target, name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def umount(self, target: str, flags: int = 0) -> None:
        libc.umount2(target, flags)

    def unshare(self, flags: int) -> None:
        libc.unshare(flags)

    def setns(self, fd: int, nstype: int) -> None:
        libc.setns(fd, nstype)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        libc.pivot_root(new_root, put_old)

    def sethostname(self, name: str) -> None:
        libc.sethostname(name)

    def set_pdeathsig(self, signum: int) -> None:
        libc.prctl(libc.PR_SET_PDEATHSIG, signum)

    def set_no_new_privs(self) -> None:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)

    def set_dumpable(self, dumpable: bool) -> None:
        libc.prctl(libc.PR_SET_DUMPABLE, int(dumpable))

    def set_identity(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        os.setgroups(list(groups))
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    def drop_bounding_set(self, keep: Iterable[int]) -> None:
        kept = set(keep)
        for cap in range(cap_last_cap() + 1):
            if cap not in kept:
                libc.prctl(libc.PR_CAPBSET_DROP, cap)

    def limit_capabilities(self, keep: Iterable[int]) -> None:
        mask = 0
        for cap in keep:
            mask |= 1 << cap
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
        effective, permitted, inheritable = libc.capget()
        libc.capset(effective & mask, permitted & mask, inheritable & mask)

    def keep_capabilities(self) -> None:
        libc.prctl(libc.PR_SET_KEEPCAPS, 1)

    def raise_ambient(self, caps: Iterable[int]) -> None:
        wanted = list(caps)
        mask = 0
        for cap in wanted:
            mask |= 1 << cap
        _, permitted, _ = libc.capget()
        mask &= permitted
        libc.capset(mask, permitted, mask)
        for cap in wanted:
            if mask & (1 << cap):
                libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, cap)

    def load_seccomp(self, retain: bool, syscalls: Iterable[str], errno_value: int) -> None:
        from rkt.host.seccomp import load_seccomp

        load_seccomp(retain, syscalls, errno_value)

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"write: {exc.strerror}", path) from exc
        finally:
            os.close(fd)

    def bring_up_loopback(self) -> None:
        import fcntl
        import struct

        sock = libc.socket(2, 2)  # AF_INET, SOCK_DGRAM
        try:
            ifreq = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, ifreq))[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
        finally:
            os.close(sock)


def read_file_in_root(root: str, path: str) -> bytes:
    """The contents of ``path`` inside the tree ``root``, symlinks confined to it."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = libc.openat2(root_fd, path, os.O_RDONLY, libc.RESOLVE_IN_ROOT)
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
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = libc.openat2(root_fd, path, libc.O_PATH, libc.RESOLVE_IN_ROOT)
    finally:
        os.close(root_fd)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)
