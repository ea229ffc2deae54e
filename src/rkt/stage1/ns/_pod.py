"""Finding a running pod's processes and cgroup from its directory, for enter, stop and gc.

A ``pid`` file may be stale (the pod exited, the number was reused): a process only counts as
the pod's init if its working directory is the pod directory (the init never leaves it), and it
is pinned with a pidfd before that check, so no signal can reach a stranger afterwards.

Imports only the standard library, ``rkt.host.cgroups`` and ``rkt.stage1.common``.
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.host.cgroups import PodCgroup
from rkt.host.cgroups.v1 import parse_hierarchies
from rkt.host.cgroups.v2 import parse_v2_mount
from rkt.paths import Path
from rkt.stage1.common.poddir import CGROUP_STATE, PodDir


def open_pod_process(pod: PodDir, pid: int | None) -> int | None:
    """A pidfd for ``pid`` if it is a live process of this pod (cwd inside the pod dir)."""
    if pid is None or pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = ""
    if cwd == str(pod.path):
        return pidfd
    os.close(pidfd)
    return None


def open_pod_init(pod: PodDir) -> int | None:
    return open_pod_process(pod, pod.read_pid())


def open_app_process(init_pid: int, app_pid: int | None) -> int | None:
    """A pidfd for ``app_pid`` if it lives in the pid namespace of the pod's init."""
    if app_pid is None or app_pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(app_pid)
    except (ProcessLookupError, OSError):
        return None
    try:
        same = (
            os.stat(f"/proc/{app_pid}/ns/pid").st_ino == os.stat(f"/proc/{init_pid}/ns/pid").st_ino
        )
        # The init itself is in the parent namespace of the pod's: compare with its children's.
        same = same or _pid_for_children_ns(init_pid) == os.stat(f"/proc/{app_pid}/ns/pid").st_ino
    except OSError:
        same = False
    if same:
        return pidfd
    os.close(pidfd)
    return None


def _pid_for_children_ns(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/pid_for_children").st_ino


def load_pod_cgroup(pod: PodDir, mountinfo: str | None = None) -> PodCgroup | None:
    """The pod's cgroup in every hierarchy, from the private record or else ``subcgroup``.

    Only directories named ``rkt-<uuid>`` inside a mounted cgroup hierarchy are accepted: a
    tampered record must not make gc kill and remove somebody else's cgroup.
    """
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    mounts = [h.mountpoint for h in parse_hierarchies(mountinfo)]
    unified = parse_v2_mount(mountinfo)
    if unified is not None:
        mounts.append(unified)
    leaf = f"rkt-{pod.uuid}"
    candidates: list[Path] = []
    try:
        candidates += PodCgroup.from_json(pod.file(CGROUP_STATE).read_bytes()).dirs
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        rel = pod.file(abi.SUBCGROUP_FILE).read_text().strip().lstrip("/")
    except OSError:
        rel = ""
    if rel and not candidates:
        # No private record (a crash between the two writes): the ABI line, where it exists.
        candidates += [m / rel for m in mounts if (m / rel).is_dir()]
    dirs: list[Path] = []
    for d in candidates:
        if d.name != leaf or ".." in d.parts or d in dirs:
            continue
        if any(m in d.parents for m in mounts):
            dirs.append(d)
    return PodCgroup(dirs=tuple(dirs), relative=rel) if dirs else None
