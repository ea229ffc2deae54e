"""The cgroup v2 (unified hierarchy) backend: one tree, controllers enabled top-down.

Layout under the caller's cgroup (read from ``0::`` in /proc/self/cgroup, so limits the caller
runs under still apply): ``rkt-<uuid>/`` holds no process itself (v2's no-internal-processes
rule), the pod's own processes live in the leaf ``rkt-<uuid>/supervisor``, each app in
``rkt-<uuid>/app-<name>`` with its limits: ``memory.max`` (and ``memory.swap.max`` = 0 so the
limit cannot be dodged into swap), ``cpu.max`` (quota and period), ``cpu.weight`` (converted
from cpu-shares as the kernel and runc do), ``pids.max``; ``memory.events`` counts OOM kills.
Controllers are enabled by writing ``+ctrl`` into ``cgroup.subtree_control`` of the caller's
cgroup and the pod's; only controllers listed in the caller's ``cgroup.controllers`` are asked
for, and a limit whose controller is missing is an error.

Imports only the standard library and ``rkt.host.cgroups``.
"""

from __future__ import annotations

import errno
import os

from rkt.host.cgroups import CPU_PERIOD_US, Limits, PodCgroup, cpu_quota_us
from rkt.host.cgroups.fs import kill_and_wait, oom_kill_count, processes, remove_dir, subtree
from rkt.paths import Path

SUPERVISOR = "supervisor"
CONTROLLERS = ("cpu", "memory", "pids")


def parse_v2_mount(mountinfo: str) -> Path | None:
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) > sep + 1 and fields[sep + 1] == "cgroup2":
            return Path(fields[4].replace("\\040", " "))
    return None


def parse_v2_path(self_cgroup: str) -> str | None:
    for line in self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100)."""
    return 1 + ((shares - 2) * 9999) // 262142


def v2_knobs(limits: Limits) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if limits.memory_bytes is not None:
        out.append(("memory.max", str(limits.memory_bytes)))
        out.append(("memory.swap.max", "0"))
    if limits.cpu_millicores is not None:
        out.append(("cpu.max", f"{cpu_quota_us(limits.cpu_millicores)} {CPU_PERIOD_US}"))
    if limits.cpu_shares is not None:
        out.append(("cpu.weight", str(shares_to_weight(limits.cpu_shares))))
    if limits.pids is not None:
        out.append(("pids.max", str(limits.pids)))
    return out


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise OSError(exc.errno, f"cgroup {path.name}: {exc.strerror}", str(path)) from exc
    finally:
        os.close(fd)


class CgroupV2:
    version = 2

    def __init__(self, mountinfo: str, self_cgroup: str) -> None:
        self.mountpoint = parse_v2_mount(mountinfo)
        self.own_path = parse_v2_path(self_cgroup)

    def own_dir(self) -> Path | None:
        if self.mountpoint is None or self.own_path is None:
            return None
        return self.mountpoint / self.own_path.lstrip("/")

    def available(self) -> frozenset[str]:
        own = self.own_dir()
        try:
            text = (own / "cgroup.controllers").read_text() if own else ""
        except OSError:
            text = ""
        return frozenset(text.split())

    def _enable(self, parent: Path) -> None:
        wanted = [c for c in CONTROLLERS if c in self.available()]
        if wanted:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def planned(self, name: str) -> PodCgroup:
        own = self.own_dir()
        if own is None or self.own_path is None:
            return PodCgroup(dirs=(), relative="")
        return PodCgroup(dirs=(own / name,), relative=self.own_path.rstrip("/") + "/" + name)

    def create(self, name: str) -> PodCgroup:
        own = self.own_dir()
        if own is None or self.own_path is None:
            return PodCgroup(dirs=(), relative="")
        pod = own / name
        try:
            pod.mkdir(exist_ok=True)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
                return PodCgroup(dirs=(), relative="")
            raise
        try:
            self._enable(own)
        except OSError as exc:
            # The caller's cgroup holds processes (EBUSY) or is not delegated to us: the pod
            # still gets its cgroup, and app limits fail loudly if their controller is missing.
            if exc.errno not in (errno.EBUSY, errno.EACCES, errno.EPERM, errno.EOPNOTSUPP):
                raise
        (pod / SUPERVISOR).mkdir(exist_ok=True)
        return PodCgroup(dirs=(pod,), relative=self.own_path.rstrip("/") + "/" + name)

    def attach(self, cgroup: PodCgroup, pid: int = 0) -> None:
        for d in cgroup.dirs:
            target = d / SUPERVISOR if (d / SUPERVISOR).is_dir() else d
            _write(target / "cgroup.procs", str(pid))

    def create_app(self, pod: PodCgroup, app: str, limits: Limits) -> PodCgroup:
        if not pod.dirs:
            raise OSError(errno.ENOENT, "cgroup: the pod has no cgroup")
        self._enable(pod.dirs[0])
        cgroup = pod.app(app)
        (child,) = cgroup.dirs  # the unified hierarchy: the pod has one directory
        child.mkdir(exist_ok=True)
        knobs = v2_knobs(limits)
        have = self.available()
        for knob, value in knobs:
            controller = knob.split(".")[0]
            if controller not in have:
                raise OSError(errno.ENOENT, f"cgroup {knob}: no {controller} controller delegated")
            _write(child / knob, value)
        return cgroup

    def oom_kills(self, cgroup: PodCgroup) -> int:
        return oom_kill_count(self.oom_events_file(cgroup))

    def oom_events_file(self, cgroup: PodCgroup) -> Path | None:
        return next((p for d in cgroup.dirs if (p := d / "memory.events").exists()), None)

    def processes(self, cgroup: PodCgroup) -> list[int]:
        return processes(cgroup.dirs)

    def remove(self, cgroup: PodCgroup) -> None:
        for d in cgroup.dirs:
            kill = d / "cgroup.kill"  # v2 (5.14+): one write kills the whole subtree
            if kill.exists():
                try:
                    _write(kill, "1")
                except OSError:
                    pass
        for _ in range(3):
            pids = self.processes(cgroup)
            if not pids:
                break
            kill_and_wait(pids)
        for d in cgroup.dirs:
            for sub in reversed(subtree(d)):
                remove_dir(sub)
