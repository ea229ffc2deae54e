"""The ``Host`` protocol: the privileged kernel calls stage1 makes, as one narrow interface.

Code that isolates a pod takes a ``Host`` argument, so unit tests pass ``rkt.host.fake.
RecordingHost`` and assert on the calls without root; ``rkt.host.linux.LinuxHost`` is the real
thing. Flag constants are re-exported from ``rkt.host.flags`` (no ctypes).

Imports only ``rkt.host.flags``; ``typing`` only for the type checker.
"""

from __future__ import annotations

from rkt.host.flags import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    MS_STRICTATIME,
)

__all__ = [
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "Host",
    "TargetKind",
]

# ``typing`` (and a Protocol class) only for the type checker: not imported at stage1 start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Protocol

    TargetKind = Literal["dir", "file"]
else:
    Protocol = object
    TargetKind = str


class Host(Protocol):
    """Privileged operations; every method raises ``OSError`` naming the call on failure."""

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None: ...

    def umount(self, target: str, flags: int = 0) -> None: ...

    def unshare(self, flags: int) -> None: ...

    def setns(self, fd: int, nstype: int) -> None: ...

    def sethostname(self, name: str) -> None: ...

    def set_dumpable(self, dumpable: bool) -> None: ...

    def write_file(self, path: str, data: str) -> None:
        """Write ``data`` to an existing file (cgroup and /proc knobs), no create, no truncate."""
