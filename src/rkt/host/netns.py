"""Persistent network namespaces, made the way ``ip netns add`` makes them.

A namespace is pinned by bind-mounting ``/proc/self/ns/net`` onto a file under ``/run/netns``, so
it outlives the processes in it: CNI plugins need it after the pod died (a DEL without the
namespace cannot find the interface and leaves the plugin's iptables rules behind).

The caller unshares its own network namespace, pins it, and returns to the namespace it came
from: no fork, and the CNI plugins (which treat their caller's namespace as "the host") are run
from the original one.

Imports only the standard library and ``rkt.host``.
"""

from __future__ import annotations

import errno
import os

from rkt.host.flags import CLONE_NEWNET, MNT_DETACH, MS_BIND
from rkt.paths import Path

NETNS_DIR = Path("/run/netns")


def create_netns(path: Path) -> None:
    """Create a new network namespace pinned at ``path``; the caller stays where it was."""
    from rkt.host import libc

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.unshare(CLONE_NEWNET)
        try:
            libc.mount("/proc/self/ns/net", str(path), None, MS_BIND, None)
        finally:
            libc.setns(home, CLONE_NEWNET)
    except BaseException:
        _unlink(path)
        raise
    finally:
        os.close(home)


def enter_netns(path: Path) -> None:
    """Move the calling thread into the namespace pinned at ``path``."""
    from rkt.host import libc

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)


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


def netns_pins(mountinfo: str) -> list[str]:
    """Mount points of pinned namespaces under ``/run/netns`` in a ``/proc/self/mountinfo``."""
    prefix = str(NETNS_DIR) + "/"
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith(prefix):
            points.append(fields[4])
    return points


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
