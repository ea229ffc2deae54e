"""Pod cgroups behind one small interface, with a backend per cgroup version.

Owns: ``PodCgroup`` (where a pod's cgroup lives, in every hierarchy it was created in, and its
JSON form for the stage1's private state), the ``CgroupBackend`` protocol and ``detect_backend``,
which picks the backend from ``/proc/self/mountinfo``. v1 (``rkt.host.cgroups.v1``) is what this
project's hosts run; a v2 backend plugs in beside it (issue 4) without touching callers.

Imports only the standard library and ``rkt.host.cgroups.*``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class PodCgroup:
    """A pod's cgroup: its absolute directory in each hierarchy, and the ABI ``subcgroup`` line."""

    dirs: tuple[Path, ...]
    relative: str

    def to_json(self) -> bytes:
        return json.dumps({"relative": self.relative, "dirs": [str(d) for d in self.dirs]}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PodCgroup:
        obj = json.loads(data)
        return cls(dirs=tuple(Path(d) for d in obj["dirs"]), relative=str(obj["relative"]))


class CgroupBackend(Protocol):
    version: int

    def create(self, name: str) -> PodCgroup:
        """Create ``<caller's cgroup>/<name>`` in every hierarchy the caller may write to."""
        ...

    def attach(self, cgroup: PodCgroup, pid: int = 0) -> None:
        """Move ``pid`` (0: the calling process) into the cgroup in every hierarchy."""
        ...

    def processes(self, cgroup: PodCgroup) -> list[int]:
        """PIDs (in the caller's pid namespace) in the cgroup or its children, any hierarchy."""
        ...

    def remove(self, cgroup: PodCgroup) -> None:
        """Kill what is left inside and remove the cgroup everywhere; idempotent."""
        ...


def detect_backend(mountinfo: str | None = None, self_cgroup: str | None = None) -> CgroupBackend:
    """The backend for this host: v1 when any v1 hierarchy is mounted (hybrid hosts included)."""
    from rkt.host.cgroups.v1 import CgroupV1

    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    if self_cgroup is None:
        self_cgroup = Path("/proc/self/cgroup").read_text()
    # A unified-only host needs the v2 backend (issue 4); until then v1 finds no hierarchy
    # there and the pod simply runs in the caller's cgroup.
    return CgroupV1(mountinfo, self_cgroup)
