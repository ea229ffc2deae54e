"""Raw ctypes bindings to libc.so.6: the kernel calls Python 3.11's ``os`` module lacks.

Owns: the libc handle (loaded by soname: ``ctypes.util.find_library`` forks ldconfig, 10-20 ms)
and thin wrappers that raise ``OSError`` with the errno and the call's name.

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
