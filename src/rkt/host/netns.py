"""Persistent network namespaces, made the way ``ip netns add`` makes them.

A namespace is pinned by bind-mounting ``/proc/self/ns/net`` onto a file under ``/run/netns``, so
it outlives the processes in it: CNI plugins need it after the pod died (a DEL without the
namespace cannot find the interface and leaves the plugin's iptables rules behind).

The stage1 pins a pod's namespace with its native ``pod-init --pin-netns`` (pod-init.c): no
Python process loads ctypes for it. This module finds and removes pins.

Imports only the standard library and ``rkt.host``.
"""

from __future__ import annotations

import errno
import os

from rkt.host.flags import MNT_DETACH
from rkt.paths import Path

NETNS_DIR = Path("/run/netns")


def remove_netns(path: Path) -> None:
    """Unpin and remove ``path``; what is already gone is not an error."""
    from rkt.host import libc

    try:
        libc.umount2(str(path), MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    _unlink(path)


def is_netns(path: Path) -> bool:
    """Whether ``path`` is a pinned namespace (a bind mount of an nsfs inode)."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
