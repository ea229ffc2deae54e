"""Mount clean-up for gc and rm: never fail on a busy mount, never leave one behind.

Pods mount in their own mount namespace, so normally nothing here is mounted in the host's; this is
the belt to that pair of braces (a stage1 of another kind, or a crash mid-setup).
"""

from __future__ import annotations

import errno
import os

from rkt.host.flags import MNT_DETACH
from rkt.paths import Path


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as fh:
            mountinfo = fh.read()
    base = os.path.realpath(path)
    found = []
    for line in mountinfo.splitlines():
        parts = line.split(" ")
        if len(parts) > 4:
            point = _unescape(parts[4])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_under(path: Path) -> None:
    """Unmount everything at or below ``path``: a clean attempt, then a lazy detach if busy."""
    if not path.exists():
        return
    points = mounts_under(path)
    if not points:
        return
    from rkt.host import libc

    for point in points:
        try:
            libc.umount2(point, 0)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                continue  # already gone
            # busy: detach lazily, it goes away when its last user does
            try:
                libc.umount2(point, MNT_DETACH)
            except OSError:
                pass
