"""Loading a seccomp filter: our own ctypes binding of Debian's libseccomp2 (libseccomp.so.2).

The filter is built for the native architecture only: libseccomp's arch check makes every other
ABI (i386 through ``int 0x80``, and x32, whose numbers carry bit 30 on the x86_64 audit arch)
hit the bad-arch action, which kills the process, so a blocklist cannot be sidestepped through
another syscall table. Names libseccomp does not know on this architecture are skipped.

Namespace creation through ``clone`` follows ``unshare``: when ``unshare`` is blocked, ``clone``
with any ``CLONE_NEW*`` flag fails too (argument filter on flags, x86_64/aarch64 order), and
``clone3`` (whose flags live in memory a filter cannot read) fails with ENOSYS so libc falls back
to ``clone``.

Load it last before ``execve``: the filter applies to the Python code that runs after it.

The binding covers the seven functions used here (``seccomp.h`` of libseccomp 2.5; constants
from that header). It replaced pyseccomp, whose import pulls ``ctypes.util`` and with it
``subprocess``, ``shutil`` and ``tempfile``: ~6 ms on every pod start (docs/benchmarks.md).

Imports only the standard library (``rkt.host`` is a leaf: the policy comes in as plain values).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable

_lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)

ACT_KILL_PROCESS = 0x80000000  # SCMP_ACT_KILL_PROCESS
ACT_ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
ATTR_ACT_BADARCH = 2  # SCMP_FLTATR_ACT_BADARCH
ATTR_CTL_NNP = 3  # SCMP_FLTATR_CTL_NNP
CMP_MASKED_EQ = 7  # SCMP_CMP_MASKED_EQ


def act_errno(value: int) -> int:
    """SCMP_ACT_ERRNO(value)."""
    return 0x00050000 | (value & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib.seccomp_init.argtypes = (ctypes.c_uint32,)
_lib.seccomp_init.restype = ctypes.c_void_p
_lib.seccomp_release.argtypes = (ctypes.c_void_p,)
_lib.seccomp_release.restype = None
_lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
_lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
_lib.seccomp_rule_add_array.argtypes = (
    ctypes.c_void_p,
    ctypes.c_uint32,
    ctypes.c_int,
    ctypes.c_uint,
    ctypes.POINTER(_ArgCmp),
)
_lib.seccomp_load.argtypes = (ctypes.c_void_p,)
_lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)


def _check(rc: int, what: str) -> None:
    if rc < 0:  # libseccomp returns -errno
        raise OSError(-rc, f"seccomp {what}: {os.strerror(-rc)}")


class Filter:
    """A libseccomp filter context (released when garbage collected or loaded)."""

    def __init__(self, default_action: int) -> None:
        ctx = _lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(errno.ENOMEM, "seccomp_init failed")
        self._ctx: int | None = ctx

    def __del__(self) -> None:
        if self._ctx is not None:
            _lib.seccomp_release(self._ctx)
            self._ctx = None

    def set_attr(self, attr: int, value: int) -> None:
        _check(_lib.seccomp_attr_set(self._ctx, attr, value), "attr_set")

    def add_rule(self, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        """``cmps``: (arg index, SCMP_CMP_* op, datum_a, datum_b) conditions, all must hold."""
        array = (_ArgCmp * len(cmps))(*(_ArgCmp(*c) for c in cmps)) if cmps else None
        rc = _lib.seccomp_rule_add_array(self._ctx, action, syscall_number(name), len(cmps), array)
        _check(rc, f"rule for {name}")

    def load(self) -> None:
        _check(_lib.seccomp_load(self._ctx), "load")

    def export_bpf(self) -> bytes:
        """The compiled BPF program (struct sock_filter[], 8 bytes each)."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(_lib.seccomp_export_bpf(self._ctx, fd), "export")
            return os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)


def syscall_number(name: str) -> int:
    """The native number of a syscall name, negative when libseccomp does not know it."""
    return int(_lib.seccomp_syscall_resolve_name(name.encode()))


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
    return syscall_number(name) >= 0


def build_filter(retain: bool, syscalls: Iterable[str], errno_value: int) -> Filter:
    """A ``Filter`` (not loaded): with ``retain`` only ``syscalls`` run,
    otherwise ``syscalls`` are the ones blocked; a blocked call fails with ``errno_value``."""
    names = frozenset(syscalls)

    def blocks(name: str) -> bool:
        return (name in names) != retain

    blocked = act_errno(errno_value)
    filt = Filter(blocked if retain else ACT_ALLOW)
    filt.set_attr(ATTR_ACT_BADARCH, ACT_KILL_PROCESS)
    filt.set_attr(ATTR_CTL_NNP, 0)  # no_new_privs is the isolator's decision, made apart
    guard_ns = blocks("unshare")
    for name in sorted(names):
        if not is_known_syscall(name) or (guard_ns and name in ("clone", "clone3")):
            continue
        filt.add_rule(ACT_ALLOW if retain else blocked, name)
    if guard_ns:
        if not blocks("clone"):
            if retain:
                filt.add_rule(ACT_ALLOW, "clone", (0, CMP_MASKED_EQ, _NS_MASK, 0))
            else:
                for flag in CLONE_NEW_FLAGS:
                    filt.add_rule(blocked, "clone", (0, CMP_MASKED_EQ, flag, flag))
        if is_known_syscall("clone3") and not blocks("clone3"):
            filt.add_rule(act_errno(errno.ENOSYS), "clone3")
    return filt


def load_seccomp(retain: bool, syscalls: Iterable[str], errno_value: int) -> None:
    """Install the filter on the calling thread (needs no_new_privs or CAP_SYS_ADMIN)."""
    build_filter(retain, syscalls, errno_value).load()
