"""UID ranges for ``--private-users`` pods, allocated without collisions.

rkt picked a random range per pod (#1090: two pods could share one). Here each pod gets the
lowest free block of ``RANGE_SIZE`` ids at or above ``FIRST_SHIFT``, recorded in
``<data dir>/uidranges.json`` under an exclusive ``flock`` of ``<data dir>/uidranges.lock``, so
concurrent ``rkt run``s never hand out the same block. A block is free again once its pod's
directory is gone (``rkt gc``/``rm`` removed it), so no release step can be forgotten.

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

import fcntl
import os

from rkt import jsonio
from rkt.errors import PodError
from rkt.paths import Path

RANGE_SIZE = 65536
FIRST_SHIFT = 0x10000000  # far above /etc/subuid's usual 100000 + n*65536 and any system user
LAST_SHIFT = 0xFFFF0000 - RANGE_SIZE
_STATES = ("prepare", "prepared", "run", "exited-garbage", "garbage")


def _pod_exists(data_dir: Path, uuid: str) -> bool:
    return any((data_dir / "pods" / state / uuid).exists() for state in _STATES)


def allocate_range(data_dir: Path, uuid: str) -> tuple[int, int]:
    """The (shift, count) of ``uuid``'s block: its existing one, or the lowest free one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(data_dir / "uidranges.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        registry = data_dir / "uidranges.json"
        try:
            taken: dict[str, int] = jsonio.loads(registry.read_text())
        except (OSError, ValueError):
            taken = {}
        taken = {u: s for u, s in taken.items() if u == uuid or _pod_exists(data_dir, u)}
        if uuid not in taken:
            used = set(taken.values())
            shift = FIRST_SHIFT
            while shift in used:
                shift += RANGE_SIZE
            if shift > LAST_SHIFT:
                raise PodError("--private-users: every uid range is in use")
            taken[uuid] = shift
        tmp = registry.with_name(f".uidranges.{os.getpid()}.tmp")
        tmp.write_text(jsonio.dumps(taken, sort_keys=True))
        os.rename(tmp, registry)
        return taken[uuid], RANGE_SIZE
    finally:
        os.close(lock_fd)
