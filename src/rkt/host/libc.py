"""Raw ctypes bindings to libc.so.6: the kernel calls Python 3.11's ``os`` module lacks.

Owns: the libc handle (loaded by soname: ``ctypes.util.find_library`` forks ldconfig, 10-20 ms),
the flag constants of mount(2), unshare(2), prctl(2) and openat2(2) for x86_64 and
aarch64, and thin wrappers that raise ``OSError`` with the errno and the call's name.

Imports only the standard library (ctypes, os, platform-free). Used only by ``rkt.host``.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# Syscall numbers (x86_64, aarch64); os.uname is cheap and needs no import.
_MACHINE = os.uname().machine
_SYSCALLS = {
    "x86_64": {"openat2": 437},
    "aarch64": {"openat2": 437},
}[_MACHINE if _MACHINE in ("x86_64", "aarch64") else "x86_64"]

# unshare(2) / setns(2)
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000

# mount(2)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4

# openat2(2)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _check(result: int, call: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}", path)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        "mount",
        target,
    )


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def socket(family: int, kind: int) -> int:
    """socket(2) as a bare descriptor (close-on-exec): for an ioctl, without importing the
    ``socket`` module (~2 ms on every pod start)."""
    return _check(_libc.socket(family, kind | 0o2000000, 0), "socket")  # SOCK_CLOEXEC


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(
        _libc.prctl(
            option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        "prctl",
    )


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(
        _libc.syscall(_SYSCALLS["openat2"], dirfd, _b(path), ctypes.byref(how), ctypes.sizeof(how)),
        "openat2",
        path,
    )


def raw_syscall(call: str, number: int, *args: object) -> int:
    """``syscall(number, args...)``; raises ``OSError`` naming ``call`` on failure."""
    return _check(_libc.syscall(number, *args), call)
