"""Pod cgroups behind one small interface, with a backend per cgroup version.

Owns: ``PodCgroup`` (where a pod's cgroup lives, in every hierarchy it was created in, and its
JSON form for the stage1's private state), the ``CgroupBackend`` protocol and ``detect_backend``,
which picks the backend from ``/proc/self/mountinfo``: v1 (``rkt.host.cgroups.v1``, this
project's hybrid hosts) or v2 (``rkt.host.cgroups.v2``, unified-only hosts). Also ``Limits``, the
per-app resource limits a backend writes into an app's cgroup under the pod's.

Imports only the standard library and ``rkt.host.cgroups.*``.
"""

from __future__ import annotations

import os

from rkt import jsonio
from rkt.paths import Path
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # a Protocol class costs ~0.4 ms at import; only the checker needs one


class PodCgroup(NamedTuple):
    """A pod's cgroup: its absolute directory in each hierarchy, and the ABI ``subcgroup`` line."""

    dirs: tuple[Path, ...]
    relative: str

    def to_json(self) -> bytes:
        return jsonio.dumps(
            {"relative": self.relative, "dirs": [str(d) for d in self.dirs]}
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PodCgroup:
        obj = jsonio.loads(data)
        return cls(dirs=tuple(Path(d) for d in obj["dirs"]), relative=str(obj["relative"]))

    def app(self, app: str) -> PodCgroup:
        """The app's cgroup under this pod's, where ``CgroupBackend.create_app`` makes it."""
        name = app_cgroup_name(app)
        return PodCgroup(tuple(d / name for d in self.dirs), f"{self.relative}/{name}")


class Limits(NamedTuple):
    """An app cgroup's limits; None leaves a knob at the kernel's default (unlimited)."""

    memory_bytes: int | None = None
    cpu_millicores: int | None = None
    cpu_shares: int | None = None
    pids: int | None = None


CPU_PERIOD_US = 100_000


def cpu_quota_us(millicores: int) -> int:
    """CFS quota per 100 ms period; the kernel refuses less than 1 ms."""
    return max(1000, millicores * CPU_PERIOD_US // 1000)


class CgroupBackend(Protocol):
    version: int

    def planned(self, name: str) -> PodCgroup:
        """What ``create(name)`` makes when every hierarchy lets it (nothing is created): a
        record written before the directories exist lets gc find them all."""

    def create(self, name: str) -> PodCgroup:
        """Create ``<caller's cgroup>/<name>`` in every hierarchy the caller may write to."""

    def attach(self, cgroup: PodCgroup, pid: int = 0) -> None:
        """Move ``pid`` (0: the calling process) into the cgroup in every hierarchy."""

    def create_app(self, pod: PodCgroup, app: str, limits: Limits) -> PodCgroup:
        """Create the app's cgroup under the pod's and write its limits (raises when a limit
        cannot be applied: a limit is never silently dropped)."""

    def oom_kills(self, cgroup: PodCgroup) -> int:
        """How many processes the OOM killer killed inside the cgroup (0 when unknown)."""

    def oom_events_file(self, cgroup: PodCgroup) -> Path | None:
        """The file whose ``oom_kill N`` line counts the cgroup's OOM kills (None: no memory
        controller); the pod supervisor reads it when an app exits."""

    def processes(self, cgroup: PodCgroup) -> list[int]:
        """PIDs (in the caller's pid namespace) in the cgroup or its children, any hierarchy."""

    def remove(self, cgroup: PodCgroup) -> None:
        """Kill what is left inside and remove the cgroup everywhere; idempotent."""


def join_file(cgroup_dir: str) -> str:
    """The file a single-threaded process (one just forked) writes "0" to, to join the cgroup.

    On v1 it is ``tasks``: moving only the calling thread skips the kernel's write-lock of the
    threadgroup rwsem, an RCU grace period (8-15 ms here) a ``cgroup.procs`` write waits for; with
    one thread the result is the same. v2 has no ``tasks``, so ``cgroup.procs`` there.
    """
    tasks = f"{cgroup_dir}/tasks"
    return tasks if os.path.exists(tasks) else f"{cgroup_dir}/cgroup.procs"


def app_cgroup_name(app: str) -> str:
    return f"app-{app}"


def is_unified(mountinfo: str) -> bool:
    """A unified host: a cgroup2 mount and no v1 hierarchy carrying a controller (a named
    ``name=systemd`` v1 mount alone does not make a host hybrid for resource control)."""
    from rkt.host.cgroups.v1 import parse_hierarchies

    has_v2 = any(_fstype(line) == "cgroup2" for line in mountinfo.splitlines())
    v1_controllers = any(
        any(not c.startswith("name=") for c in h.controllers) for h in parse_hierarchies(mountinfo)
    )
    return has_v2 and not v1_controllers


def _fstype(line: str) -> str:
    fields = line.split()
    if "-" not in fields:
        return ""
    sep = fields.index("-")
    return fields[sep + 1] if len(fields) > sep + 1 else ""


def detect_backend(mountinfo: str | None = None, self_cgroup: str | None = None) -> CgroupBackend:
    """The backend for this host: v2 on a unified host, else v1 (hybrid hosts included)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    if self_cgroup is None:
        self_cgroup = Path("/proc/self/cgroup").read_text()
    if is_unified(mountinfo):
        from rkt.host.cgroups.v2 import CgroupV2

        return CgroupV2(mountinfo, self_cgroup)
    from rkt.host.cgroups.v1 import CgroupV1

    return CgroupV1(mountinfo, self_cgroup)
