"""The Python pod init: PID 1 of a ``--private-users`` pod with a Docker copy-up volume.

It mounts each app's root filesystem (overlayfs over the read-only image tree, writes going to
``overlay/<app>/upper``) inside the pod's private mount namespace, so no mount ever reaches the
host's table and nothing is left to unmount when the pod dies, however it dies. Then it starts
the apps, copies their stdout/stderr to the run entrypoint's stdout/stderr and to CRI log files,
reaps every child (orphans of the pod included), keeps the status files current, and ends the pod
with the status of the first app that failed (rkt's semantics: a failing app stops the others,
SIGTERM then SIGKILL after 10 s).

Every other pod starts through the native ``pod-init`` (``rkt.stage1.ns.start``). Here the
copy-up is made as the pod's root, inside its user namespace, before the apps start. Once they
are started, this process ``exec``s the flavor's native ``pod-supervisor``
(``rkt.stage1.ns.native``), which supervises them for the rest of the pod's life at a few hundred
kB, as for every other pod.

The init is a fork of the userns helper (no new interpreter).

Imports only the standard library, ``rkt.abi``, ``rkt.host`` and ``rkt.stage1.common``.
"""

from __future__ import annotations

import gc
import os
import signal

from rkt import abi
from rkt.host.api import MS_BIND, MS_PRIVATE, MS_REC, Host
from rkt.host.cgroups import CgroupBackend, PodCgroup
from rkt.paths import Path
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.poddir import symlink_atomic
from rkt.stage1.common.status import AppStatus, StatusWriter
from rkt.stage1.ns.launch import launch_app
from rkt.stage1.ns.native import LAUNCHER, exec_supervisor, program, supervisor_app_args
from rkt.stage1.ns.start import app_root_overlay, create_app_cgroup

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn


def mount_app_rootfs(host: Host, pod_path: Path, spec: AppSpec) -> str:
    target, data = app_root_overlay(pod_path, spec)
    Path(target).mkdir(parents=True, exist_ok=True)
    host.mount("overlay", target, "overlay", 0, data)
    return target


def host_pid_of(pidfd: int) -> int | None:
    """The pid of a pidfd's process as the host sees it (``/proc`` here is the host's procfs)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}", "rb") as f:
            for line in f:
                if line.startswith(b"Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class PodInit:
    def __init__(
        self,
        host: Host,
        pod_path: Path,
        specs: list[AppSpec],
        *,
        interactive: bool,
        cgroups: CgroupBackend | None = None,
        cgroup: PodCgroup | None = None,
    ) -> None:
        self.host = host
        self.statuses: dict[str, AppStatus] = {}  # every app of the pod, by name
        self.pids: dict[str, int] = {}  # running apps: name -> pid
        self.roots: dict[str, str] = {spec.name: "" for spec in specs}
        self.specs_by_name: dict[str, AppSpec] = {spec.name: spec for spec in specs}
        self.cgroups = cgroups
        self.pod_cgroup = cgroup
        self.app_cgroups: dict[str, PodCgroup] = {}
        self.pod_path = pod_path
        self.specs = specs
        self.interactive = interactive
        self.status = StatusWriter(pod_path)
        self.app_pipes: dict[str, tuple[int, int]] = {}  # app -> read ends (stdout, stderr)

    # -- start ----------------------------------------------------------------------------------

    def setup(self, hostname: str, premounted: bool = False) -> list[str]:
        self.host.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        self.host.sethostname(hostname)
        if premounted:  # --private-users: the run process mounted them (stage1/ns/userns.py)
            roots = [str(self.pod_path / abi.stage2_rootfs(spec.name)) for spec in self.specs]
            for root in roots:
                # Mounts inherited into a user namespace's mount namespace are locked, and
                # pivot_root refuses a locked new root: a bind of our own is not locked.
                self.host.mount(root, root, None, MS_BIND | MS_REC, None)
            return roots
        return [mount_app_rootfs(self.host, self.pod_path, spec) for spec in self.specs]

    def create_app_cgroup(self, spec: AppSpec) -> tuple[str, ...]:
        """The app's cgroup under the pod's, limits written; () when the pod has none."""
        if spec.name in self.app_cgroups:  # made beforehand (--private-users)
            return tuple(str(d) for d in self.app_cgroups[spec.name].dirs)
        cg = create_app_cgroup(self.cgroups, self.pod_cgroup, spec)
        if cg is None:
            return ()
        self.app_cgroups[spec.name] = cg
        return tuple(str(d) for d in cg.dirs)

    def start_apps(self, roots: list[str]) -> None:
        statuses = [AppStatus(spec.name) for spec in self.specs]
        for spec, root, st in zip(self.specs, roots, statuses, strict=True):
            self.status.created(st)
            self.statuses[spec.name], self.roots[spec.name] = st, root
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        for spec, root, st in zip(self.specs, roots, statuses, strict=True):
            self.start_app(spec, root, st, devnull)
        os.close(devnull)
        symlink_atomic("ready", self.pod_path / abi.SUPERVISOR_STATUS)

    def start_app(self, spec: AppSpec, root: str, st: AppStatus, devnull: int) -> None:
        pipes: list[tuple[int, int]] = [] if self.interactive else [os.pipe(), os.pipe()]
        stdio = None if self.interactive else (devnull, pipes[0][1], pipes[1][1])
        cgroup_dirs = self.create_app_cgroup(spec)
        pid = os.fork()
        if pid == 0:
            launch_app(program(self.pod_path, LAUNCHER), spec, root, stdio, cgroup_dirs)
        for _, write_fd in pipes:
            os.close(write_fd)
        if pipes:  # the native supervisor copies the output (hand_over)
            self.app_pipes[spec.name] = (pipes[0][0], pipes[1][0])
        pidfd = os.pidfd_open(pid)
        host_pid = host_pid_of(pidfd)
        os.close(pidfd)
        self.pids[spec.name] = pid
        self.status.started(st, host_pid if host_pid is not None else pid)

    # -- supervise ------------------------------------------------------------------------------

    def hand_over(self) -> NoReturn:
        """``exec`` the native pod supervisor with every app started."""
        apps = []
        for name, pid in self.pids.items():
            cg = self.app_cgroups.get(name)
            oom = None
            if cg is not None and self.cgroups is not None:
                oom = self.cgroups.oom_events_file(cg)
            pipes = self.app_pipes.get(name)
            root = self.roots.get(name) or None
            args = supervisor_app_args(self.statuses[name], pid, pipes, self.pod_path, oom, root)
            apps.append(args)
        exec_supervisor(self.pod_path, apps, interactive=self.interactive)


def run_pod_init(
    host: Host,
    pod_path: Path,
    specs: list[AppSpec],
    *,
    hostname: str,
    interactive: bool,
    cgroups: CgroupBackend | None,
    cgroup: PodCgroup | None,
    go_fd: int,
    app_cgroups: dict[str, PodCgroup] | None = None,
    in_userns: bool = False,
) -> NoReturn:
    """The body of the forked pod init; never returns."""
    code = 254
    gc.enable()  # a long-lived process (the run process had them off)
    try:
        host.set_pdeathsig(signal.SIGKILL)  # the run process dies (even SIGKILL): the pod dies
        if cgroups is not None and cgroup is not None and not in_userns:
            cgroups.attach(cgroup)
        init = PodInit(
            host,
            pod_path,
            specs,
            interactive=interactive,
            cgroups=cgroups,
            cgroup=cgroup,
        )
        init.app_cgroups.update(app_cgroups or {})
        # The stop signals and SIGCHLD stay blocked (as the helper forked us): pending until the
        # native supervisor reads them.
        roots = init.setup(hostname, premounted=in_userns)
        # stage0 learns the pod's pid before any app starts (ABI §3): wait for the run process to
        # have written it. EOF means it died before: so must we.
        if os.read(go_fd, 1) != b"1":
            os._exit(254)
        os.close(go_fd)
        init.start_apps(roots)
        init.hand_over()
    except BaseException as exc:
        try:
            os.write(2, f"stage1: pod init: {exc}\n".encode())
        except OSError:
            pass
    os._exit(code)
