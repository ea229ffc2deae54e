"""Loading a seccomp filter (pyseccomp over Debian's libseccomp2).

The filter is built for the native architecture only: libseccomp's arch check makes every other
ABI (i386 through ``int 0x80``, and x32, whose numbers carry bit 30 on the x86_64 audit arch)
hit the bad-arch action, which kills the process, so a blocklist cannot be sidestepped through
another syscall table. Names libseccomp does not know on this architecture are skipped.

Namespace creation through ``clone`` follows ``unshare``: when ``unshare`` is blocked, ``clone``
with any ``CLONE_NEW*`` flag fails too (argument filter on flags, x86_64/aarch64 order), and
``clone3`` (whose flags live in memory a filter cannot read) fails with ENOSYS so libc falls back
to ``clone``.

Load it last before ``execve``: the filter applies to the Python code that runs after it.

Imports only the standard library and ``pyseccomp`` (``rkt.host`` is a leaf: the policy comes in
as plain values).
"""

from __future__ import annotations

import ctypes.util
import errno
from collections.abc import Iterable
from typing import Any


def _import_pyseccomp() -> Any:
    # pyseccomp finds libc and libseccomp with ctypes.util.find_library, which forks ldconfig
    # (10-20 ms per app start); the sonames are fixed on Debian, so answer directly.
    original = ctypes.util.find_library
    known = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}

    def find(name: str) -> str | None:
        return known.get(name) or original(name)

    ctypes.util.find_library = find
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = original
    return pyseccomp


_sc = _import_pyseccomp()

CLONE_NEW_FLAGS = (
    0x00000080,  # CLONE_NEWTIME
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
_NS_MASK = sum(CLONE_NEW_FLAGS)


def is_known_syscall(name: str) -> bool:
    return int(_sc.resolve_syscall(_sc.Arch.NATIVE, name)) >= 0


def build_filter(retain: bool, syscalls: Iterable[str], errno_value: int) -> Any:
    """A ``pyseccomp.SyscallFilter`` (not loaded): with ``retain`` only ``syscalls`` run,
    otherwise ``syscalls`` are the ones blocked; a blocked call fails with ``errno_value``."""
    names = frozenset(syscalls)

    def blocks(name: str) -> bool:
        return (name in names) != retain

    blocked = _sc.ERRNO(errno_value)
    filt = _sc.SyscallFilter(blocked if retain else _sc.ALLOW)
    filt.set_attr(_sc.Attr.ACT_BADARCH, _sc.KILL_PROCESS)
    filt.set_attr(_sc.Attr.CTL_NNP, 0)  # no_new_privs is the isolator's decision, made apart
    guard_ns = blocks("unshare")
    for name in sorted(names):
        if not is_known_syscall(name) or (guard_ns and name in ("clone", "clone3")):
            continue
        filt.add_rule(_sc.ALLOW if retain else blocked, name)
    if guard_ns:
        if not blocks("clone"):
            if retain:
                filt.add_rule(_sc.ALLOW, "clone", _sc.Arg(0, _sc.MASKED_EQ, _NS_MASK, 0))
            else:
                for flag in CLONE_NEW_FLAGS:
                    filt.add_rule(blocked, "clone", _sc.Arg(0, _sc.MASKED_EQ, flag, flag))
        if is_known_syscall("clone3") and not blocks("clone3"):
            filt.add_rule(_sc.ERRNO(errno.ENOSYS), "clone3")
    return filt


def load_seccomp(retain: bool, syscalls: Iterable[str], errno_value: int) -> None:
    """Install the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN)."""
    build_filter(retain, syscalls, errno_value).load()
