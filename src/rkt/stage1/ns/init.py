"""The pod init: PID 1 of the pod's pid namespace, forked by the run entrypoint.

It mounts each app's root filesystem (overlayfs over the read-only image tree, writes going to
``overlay/<app>/upper``) inside the pod's private mount namespace, so no mount ever reaches the
host's table and nothing is left to unmount when the pod dies, however it dies. Then it starts
the apps, copies their stdout/stderr to the run entrypoint's stdout/stderr and to CRI log files,
reaps every child (orphans of the pod included), keeps the status files current, and ends the pod
with the status of the first app that failed (rkt's semantics: a failing app stops the others,
SIGTERM then SIGKILL after 10 s).

Once the apps of an ordinary pod are started, this process ``exec``s the flavor's native
``pod-supervisor`` (``rkt.stage1.ns.native``), which does that supervision for the rest of the
pod's life at a few hundred kB. A mutable pod (``run --mutable``) stays in Python, because it
also serves the control socket (``rkt.stage1.ns.mutable``): apps are added, started, stopped and
removed while the pod runs, an app's exit does not end the pod, and the pod ends when it is
stopped (status 0); ``PodInit.supervise`` is that loop.

The init is a fork of the run process (no new interpreter), imports nothing after the fork, and
the run process froze its heap (``gc.freeze``) so the init's collections never touch, and copy,
the shared pages.

Imports only the standard library, ``rkt.abi``, ``rkt.host`` and ``rkt.stage1.common``.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import time
from typing import TYPE_CHECKING, NoReturn

from rkt import abi
from rkt.host.api import MS_BIND, MS_PRIVATE, MS_REC, Host
from rkt.host.cgroups import CgroupBackend, PodCgroup
from rkt.paths import Path
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.logs import CriLogWriter
from rkt.stage1.common.poddir import symlink_atomic
from rkt.stage1.common.status import AppStatus, StatusWriter, wait_status_to_exit_code
from rkt.stage1.ns.launch import launch_app
from rkt.stage1.ns.native import LAUNCHER, exec_supervisor, program, supervisor_app_args
from rkt.stage1.ns.start import app_root_overlay, create_app_cgroup

if TYPE_CHECKING:
    from rkt.stage1.ns.mutable import ControlServer

STOP_TIMEOUT_NS = 10 * 1_000_000_000
_STREAMS = (b"stdout", b"stderr")


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
        mutable: bool = False,
    ) -> None:
        self.host = host
        self.mutable = mutable
        self.control: ControlServer | None = None
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
        self.apps: dict[int, AppStatus] = {}  # running apps by pid (in the pod's pid namespace)
        self.outputs: dict[int, tuple[int, bytes, CriLogWriter | None]] = {}
        self.app_pipes: dict[str, tuple[int, int]] = {}  # app -> read ends (stdout, stderr)
        self.first_failure: int | None = None
        self.kill_deadline: int | None = None
        self.stop_requested = False
        self.poller = select.poll()

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
        if pipes:
            self.app_pipes[spec.name] = (pipes[0][0], pipes[1][0])
        if pipes and self.mutable:  # else the native supervisor copies the output (hand_over)
            log = CriLogWriter(str(self.pod_path / abi.app_log(spec.name)))
            outs = zip(self.app_pipes[spec.name], _STREAMS, (1, 2), strict=True)
            for read_fd, stream, target in outs:
                os.set_blocking(read_fd, False)
                self.outputs[read_fd] = (target, stream, log)
                self.poller.register(read_fd, select.POLLIN)
        pidfd = os.pidfd_open(pid)
        host_pid = host_pid_of(pidfd)
        os.close(pidfd)
        self.apps[pid] = st
        self.pids[spec.name] = pid
        self.status.started(st, host_pid if host_pid is not None else pid)

    # -- supervise ------------------------------------------------------------------------------

    def hand_over(self) -> NoReturn:
        """``exec`` the native pod supervisor with every app started (ordinary pods)."""
        apps = []
        for name, pid in self.pids.items():
            cg = self.app_cgroups.get(name)
            oom = None
            if cg is not None and self.cgroups is not None:
                oom = self.cgroups.oom_events_file(cg)
            pipes = self.app_pipes.get(name)
            apps.append(supervisor_app_args(self.statuses[name], pid, pipes, self.pod_path, oom))
        exec_supervisor(self.pod_path, apps, interactive=self.interactive)

    def supervise(self, wake_fd: int) -> int:
        self.poller.register(wake_fd, select.POLLIN)
        while self.apps or (self.mutable and not self.stop_requested):
            for fd, _ in self.poller.poll(self._poll_timeout()):
                if fd == wake_fd:
                    _drain(wake_fd)
                elif fd in self.outputs:
                    self._copy_output(fd)
                elif self.control is not None and self.control.owns(fd):
                    self.control.handle(fd)
            self._reap()
            if self.control is not None:
                self.control.check_deadlines()
            if self.stop_requested and self.kill_deadline is None:
                self.stop_apps()
            if self.kill_deadline is not None and time.monotonic_ns() >= self.kill_deadline:
                os.kill(-1, signal.SIGKILL)  # as pid 1: every other process of the pod
                self.kill_deadline = time.monotonic_ns() + STOP_TIMEOUT_NS
        for fd in list(self.outputs):
            self._copy_output(fd, drain=True)
        return 0 if self.mutable else self.first_failure or 0

    def _poll_timeout(self) -> int | None:
        deadlines = [self.kill_deadline]
        if self.control is not None:
            deadlines.append(self.control.next_deadline())
        first = min((d for d in deadlines if d is not None), default=None)
        return None if first is None else max(0, (first - time.monotonic_ns()) // 1_000_000)

    def stop_apps(self) -> None:
        for pid in self.apps:
            try:
                os.killpg(pid, signal.SIGTERM)  # the app and whatever it started
            except ProcessLookupError:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        self.kill_deadline = time.monotonic_ns() + STOP_TIMEOUT_NS

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            st = self.apps.pop(pid, None)
            if st is None:
                continue  # an orphan of the pod, reparented to us
            st.oom_killed = self._oom_killed(st.name)
            self.status.exited(st, wait_status)
            self.pids.pop(st.name, None)
            if self.control is not None:
                self.control.app_exited(st.name)
            code, _ = wait_status_to_exit_code(wait_status)
            if code != 0 and not self.mutable and self.first_failure is None:
                self.first_failure = code
                if self.kill_deadline is None:
                    self.stop_apps()

    def _oom_killed(self, app: str) -> bool:
        cg = self.app_cgroups.get(app)
        if cg is None or self.cgroups is None:
            return False
        try:
            return self.cgroups.oom_kills(cg) > 0
        except OSError:
            return False

    def _copy_output(self, fd: int, drain: bool = False) -> None:
        target, stream, log = self.outputs[fd]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.poller.unregister(fd)
                os.close(fd)
                del self.outputs[fd]
                return
            _write_all(target, data)
            if log is not None:
                log.write(stream, data)
            if not drain:
                return


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF, errno.EIO):
                return  # nobody reads the terminal copy any more; the log still has it
            raise


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
    mutable: bool = False,
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
            mutable=mutable,
        )
        init.app_cgroups.update(app_cgroups or {})
        # An ordinary pod keeps the stop signals and SIGCHLD blocked (as the run process forked
        # us): pending until the native supervisor reads them. A mutable pod handles them here.
        wake_r = _handle_signals(init, interactive) if mutable else -1
        roots = init.setup(hostname, premounted=in_userns)
        if mutable:  # before "ready": app/add may follow `rkt status --wait-ready` at once
            from rkt.stage1.ns.mutable import ControlServer, bind_control_socket

            init.control = ControlServer(init, bind_control_socket())
        # stage0 learns the pod's pid before any app starts (ABI §3): wait for the run process to
        # have written it. EOF means it died before: so must we.
        if os.read(go_fd, 1) != b"1":
            os._exit(254)
        os.close(go_fd)
        init.start_apps(roots)
        if not mutable:
            init.hand_over()
        code = init.supervise(wake_r)
    except BaseException as exc:
        try:
            os.write(2, f"stage1: pod init: {exc}\n".encode())
        except OSError:
            pass
    os._exit(code)


def _handle_signals(init: PodInit, interactive: bool) -> int:
    """Python handlers for the stop signals and SIGCHLD; returns the wakeup fd to poll."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)

    def request_stop(signum: int, frame: object) -> None:
        init.stop_requested = True

    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGHUP, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN if interactive else request_stop)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    return wake_r
