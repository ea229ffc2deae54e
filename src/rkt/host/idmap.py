"""User namespace maps and idmapped mounts (Linux >= 5.12; overlay over them >= 5.19).

``write_id_maps`` gives a process's new user namespace the single range ``0 <shift> <count>``
for uids and gids (we are root in the parent namespace, so no ``setgroups`` deny is needed).
``idmapped_bind`` makes a bind of ``source`` at ``target`` whose owners are shown through a user
namespace: host uid 0 appears as ``shift`` on the host side, so root inside the namespace owns
the image tree without a single chown (open_tree(OPEN_TREE_CLONE) + mount_setattr(
MOUNT_ATTR_IDMAP) + move_mount, x86_64/aarch64 share the numbers 428/442/429).

Imports only the standard library and ``rkt.host.libc``.
"""

from __future__ import annotations

import ctypes
import os

from rkt.host import libc

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_AT_RECURSIVE = 0x8000
_AT_EMPTY_PATH = 0x1000
_AT_FDCWD = -100
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_NAMES = {
    _SYS_OPEN_TREE: "open_tree",
    _SYS_MOVE_MOUNT: "move_mount",
    _SYS_MOUNT_SETATTR: "mount_setattr",
}


def _syscall(number: int, *args: object) -> int:
    return libc.raw_syscall(_NAMES[number], number, *args)


def write_id_maps(pid: int, shift: int, count: int) -> None:
    line = f"0 {shift} {count}\n".encode()
    for name in ("uid_map", "gid_map"):
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def idmapped_bind(source: str, target: str, userns_fd: int) -> None:
    """Bind ``source`` (recursively) at ``target`` with its ids mapped through ``userns_fd``."""
    tree = _syscall(
        _SYS_OPEN_TREE,
        _AT_FDCWD,
        os.fsencode(source),
        ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE),
    )
    try:
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _syscall(
            _SYS_MOUNT_SETATTR,
            tree,
            b"",
            ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        _syscall(
            _SYS_MOVE_MOUNT,
            tree,
            b"",
            _AT_FDCWD,
            os.fsencode(target),
            ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
        )
    finally:
        os.close(tree)
