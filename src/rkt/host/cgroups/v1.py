"""The cgroup v1 backend: one directory per hierarchy, plain file writes.

Pod cgroups are created under the CALLER's own cgroup of each hierarchy (from /proc/self/cgroup),
so limits the caller runs under (``systemd-run -p MemoryMax=...``) still apply to the pod. cpuset
children start with empty ``cpuset.cpus``/``mems`` and refuse tasks, so the parent's are copied
into the pod's cgroup; the pod's has ``cgroup.clone_children`` set, so the kernel copies them
into each app's as it creates it (two writes fewer per app, each of which rebuilds the
scheduler's domains).

Imports only the standard library and ``rkt.host.cgroups``.
"""

from __future__ import annotations

import errno
import os

from rkt.host.cgroups import CPU_PERIOD_US, Limits, PodCgroup, cpu_quota_us
from rkt.host.cgroups.fs import kill_and_wait, oom_kill_count, processes, remove_dir, subtree
from rkt.paths import Path
from rkt.records import NamedTuple


class Hierarchy(NamedTuple):
    mountpoint: Path
    mount_root: str
    controllers: frozenset[str]


def parse_hierarchies(mountinfo: str) -> list[Hierarchy]:
    """Every v1 cgroup mount in a mountinfo text (proc(5)), first mount of each hierarchy."""
    out: list[Hierarchy] = []
    seen: set[frozenset[str]] = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or fields[sep + 1] != "cgroup":
            continue
        options = frozenset(fields[sep + 3].split(",")) - {"rw", "ro"}
        controllers = frozenset(o for o in options if "=" not in o or o.startswith("name="))
        if controllers in seen:
            continue
        seen.add(controllers)
        mountpoint = fields[4].replace("\\040", " ")
        out.append(Hierarchy(Path(mountpoint), fields[3], controllers))
    return out


def parse_self_cgroup(text: str) -> dict[frozenset[str], str]:
    """``/proc/<pid>/cgroup`` as {controller set: path}; the v2 line ("0::") is left out."""
    out: dict[frozenset[str], str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1]:
            out[frozenset(parts[1].split(","))] = parts[2]
    return out


class CgroupV1:
    version = 1

    def __init__(self, mountinfo: str, self_cgroup: str) -> None:
        self.hierarchies = parse_hierarchies(mountinfo)
        self.own = parse_self_cgroup(self_cgroup)

    def own_dirs(self) -> list[tuple[Hierarchy, Path, str]]:
        """(hierarchy, directory of the caller's cgroup, its path from the hierarchy root)."""
        out = []
        for h in self.hierarchies:
            path = self.own.get(h.controllers)
            if path is None:
                continue
            inside = path
            if h.mount_root != "/" and (path + "/").startswith(h.mount_root.rstrip("/") + "/"):
                inside = path[len(h.mount_root.rstrip("/")) :] or "/"
            out.append((h, h.mountpoint / inside.lstrip("/"), path))
        return out

    def planned(self, name: str) -> PodCgroup:
        return self._cgroup(name, self.own_dirs())

    def create(self, name: str) -> PodCgroup:
        made = []
        for hierarchy, parent, path in self.own_dirs():
            child = parent / name
            try:
                child.mkdir(exist_ok=True)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
                    continue  # not ours to write: the pod just is not limited there
                raise
            if "cpuset" in hierarchy.controllers:
                _inherit_cpuset(parent, child)
                _clone_children(child)
            made.append((hierarchy, parent, path))
        return self._cgroup(name, made)

    @staticmethod
    def _cgroup(name: str, dirs: list[tuple[Hierarchy, Path, str]]) -> PodCgroup:
        relative = ""
        systemd_relative = ""
        for hierarchy, _, path in dirs:
            rel = path.rstrip("/") + "/" + name
            relative = relative or rel
            if "name=systemd" in hierarchy.controllers:
                systemd_relative = systemd_relative or rel
        return PodCgroup(
            dirs=tuple(parent / name for _, parent, _ in dirs),
            relative=systemd_relative or relative,
        )

    def attach(self, cgroup: PodCgroup, pid: int = 0) -> None:
        data = str(pid).encode()
        # A single-threaded caller moves itself through ``tasks`` (see ``join_file``: no RCU
        # grace period); any other pid, or a caller with threads, through ``cgroup.procs``.
        single = pid == 0 and len(os.listdir("/proc/self/task")) == 1
        name = "tasks" if single else "cgroup.procs"
        for d in cgroup.dirs:
            fd = os.open(d / name, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def create_app(self, pod: PodCgroup, app: str, limits: Limits) -> PodCgroup:
        cgroup = pod.app(app)
        for parent, child in zip(pod.dirs, cgroup.dirs, strict=True):
            child.mkdir(exist_ok=True)
            controllers = self._controllers_at(parent)
            if controllers is None or "cpuset" in controllers:
                _inherit_cpuset(parent, child)
            devices = controllers is None or "devices" in controllers
            if devices and (child / "devices.deny").exists():
                restrict_devices(child)
        for knob, value in v1_knobs(limits):
            write_knob(cgroup, knob, value)
        return cgroup

    def _controllers_at(self, path: Path) -> frozenset[str] | None:
        """The controllers of the hierarchy holding ``path`` (None: not one of ours, then every
        knob is looked for, as before)."""
        text = str(path)
        for h in self.hierarchies:
            mount = str(h.mountpoint)
            if text == mount or text.startswith(mount + "/"):
                return h.controllers
        return None

    def oom_kills(self, cgroup: PodCgroup) -> int:
        return oom_kill_count(self.oom_events_file(cgroup))

    def oom_events_file(self, cgroup: PodCgroup) -> Path | None:
        return next((p for d in cgroup.dirs if (p := d / "memory.oom_control").exists()), None)

    def processes(self, cgroup: PodCgroup) -> list[int]:
        return processes(cgroup.dirs)

    def remove(self, cgroup: PodCgroup) -> None:
        for _ in range(3):
            pids = self.processes(cgroup)
            if not pids:
                break
            kill_and_wait(pids)
        for d in cgroup.dirs:
            for sub in reversed(subtree(d)):
                remove_dir(sub)


def v1_knobs(limits: Limits) -> list[tuple[str, str]]:
    """The v1 files to write for ``limits``, in order (the swap limit follows the memory one)."""
    out: list[tuple[str, str]] = []
    if limits.memory_bytes is not None:
        out.append(("memory.limit_in_bytes", str(limits.memory_bytes)))
        out.append(("memory.memsw.limit_in_bytes?", str(limits.memory_bytes)))
    if limits.cpu_millicores is not None:
        out.append(("cpu.cfs_period_us", str(CPU_PERIOD_US)))
        out.append(("cpu.cfs_quota_us", str(cpu_quota_us(limits.cpu_millicores))))
    if limits.cpu_shares is not None:
        out.append(("cpu.shares", str(limits.cpu_shares)))
    if limits.pids is not None:
        out.append(("pids.max", str(limits.pids)))
    return out


# The app's minimal /dev: null, zero, full, random, urandom, tty, console, ptmx, its devpts.
# Nothing else may be created (mknod) or opened, whatever the app's capabilities.
ALLOWED_DEVICES = (
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
)


def restrict_devices(cgroup_dir: Path) -> None:
    """v1 devices controller: deny every device, then allow the minimal /dev set (one rule
    per write(2), as the controller reads them)."""
    (cgroup_dir / "devices.deny").write_text("a")
    fd = os.open(cgroup_dir / "devices.allow", os.O_WRONLY | os.O_CLOEXEC)
    try:
        for rule in ALLOWED_DEVICES:
            os.write(fd, rule.encode())
    finally:
        os.close(fd)


def write_knob(cgroup: PodCgroup, knob: str, value: str) -> None:
    """Write ``value`` into ``knob`` in whichever of the cgroup's hierarchies has it.

    A knob ending in ``?`` is optional (``memsw`` exists only with swap accounting); any other
    knob that no hierarchy offers is an error: the limit was asked for and cannot be enforced.
    """
    optional = knob.endswith("?")
    knob = knob.rstrip("?")
    for d in cgroup.dirs:
        path = d / knob
        if path.exists():
            try:
                path.write_text(value)
            except OSError as exc:
                raise OSError(exc.errno, f"cgroup {knob}: {exc.strerror}", str(path)) from exc
            return
    if not optional:
        controller = knob.split(".")[0]
        raise OSError(errno.ENOENT, f"cgroup {knob}: no writable {controller} controller")


def _clone_children(cgroup_dir: Path) -> None:
    """New children of ``cgroup_dir`` start with its cpus and mems (cpuset's v1 flag)."""
    try:
        fd = os.open(cgroup_dir / "cgroup.clone_children", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return  # not there: ``_inherit_cpuset`` copies them for each app
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


def _inherit_cpuset(parent: Path, child: Path) -> None:
    for knob in ("cpuset.cpus", "cpuset.mems"):
        theirs = child / knob
        if theirs.exists() and not theirs.read_text().strip():
            theirs.write_text((parent / knob).read_text())
