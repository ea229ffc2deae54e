"""Starting an ordinary pod through the flavor's native ``pod-init`` (src/rkt/stage1/native).

The run entrypoint has resolved every app and set the pod's cgroup and network up; here it
creates each app's cgroup (limits written), writes each app's launch plan beside its spec
(``private/apps/<app>.plan``, the steps ``app-exec`` performs), and hands ``pod-init`` the pod
plan: unshare the namespaces, fork the init, publish ``pid``; in the init, join the pod's
cgroup, set the hostname, mount each app's overlay root, start the apps through ``app-exec`` and
become ``pod-supervisor``. An ordinary pod's ``pod-init`` is spawned early, with the namespace
steps, and gets the rest of its plan once it is made (``SpawnedInit``); the run process then
becomes ``run-waiter``. No Python runs in the pod's namespaces, and the run process never forks
an interpreter.

A ``--private-users`` pod comes here too, through ``userns_pod_plan``: the helper's part of its
plan (stage1/ns/userns.py); its roots are mounted beforehand (idmapped) and its init is
released by the run process. A Docker image's implicit volumes are filled first, for every pod
(``copy_up_before_start``). A mutable pod also gets its control socket (a ``listen`` step),
which ``pod-supervisor`` serves; an app added later is prepared here too, by the app/add
entrypoint (``prepare_added_app``: cgroup, launch plan, the record the supervisor mounts and
starts it from) and forgotten by app/rm (``forget_removed_app``).

Imports only the standard library, ``rkt.abi``, ``rkt.host`` and ``rkt.stage1``.
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.errors import PodError
from rkt.host.api import CLONE_NEWNET, CLONE_NEWNS, MS_PRIVATE, MS_REC, Host
from rkt.host.cgroups import CgroupBackend, Limits, PodCgroup, join_file
from rkt.host.netns import NETNS_DIR
from rkt.host.signals import signal
from rkt.paths import Path
from rkt.stage1.common.appspec import AppSpec, app_spec_path
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.layers import app_lower_dirs
from rkt.stage1.common.poddir import (
    CONTROL_SOCKET,
    PRIVATE_DIR,
    PodDir,
    write_atomic,
)
from rkt.stage1.ns.launch import (
    LaunchPlan,
    app_plan,
    copy_up_volumes,
    exec_launcher,
    read_prebuilt,
)
from rkt.stage1.ns.native import HANDOFF_SIGNALS, INIT, LAUNCHER, SUPERVISOR, WAITER, program

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn


def overlay_options(lower: str | list[str], upper: str, work: str) -> str:
    """overlayfs mount data; ``\\``, ``,`` and ``:`` in paths are escaped as the kernel wants.

    ``lower`` may be a list of dirs, top-most first (stacked layers, stage1-abi §2 lowerdirs).
    """

    def esc(path: str) -> str:
        return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")

    lowers = ":".join(esc(p) for p in ([lower] if isinstance(lower, str) else lower))
    return f"lowerdir={lowers},upperdir={esc(upper)},workdir={esc(work)}"


def app_root_overlay(pod_path: Path, spec: AppSpec) -> tuple[str, str]:
    """The app's root (the overlay's mount point) and the overlay's mount data."""
    target = pod_path / abi.stage2_rootfs(spec.name)
    overlay = pod_path / abi.app_overlay(spec.name)
    lowers = app_lower_dirs(pod_path, spec.name, spec.lower_rootfs)
    return str(target), overlay_options(lowers, str(overlay / "upper"), str(overlay / "work"))


def create_app_cgroup(
    backend: CgroupBackend | None, pod: PodCgroup | None, spec: AppSpec
) -> PodCgroup | None:
    """The app's cgroup under the pod's, limits written; None when the pod has none."""
    lim = spec.limits
    if backend is None or pod is None:
        if lim.memory_bytes is not None or lim.cpu_millicores is not None:
            raise OSError(f'app "{spec.name}": resource limits need a writable cgroup')
        return None
    limits = Limits(lim.memory_bytes, lim.cpu_millicores, lim.cpu_shares, lim.pids)
    return backend.create_app(pod, spec.name, limits)


def has_copy_up(specs: list[AppSpec]) -> bool:
    return any(m.copy_up is not None for spec in specs for m in spec.mounts)


def copy_up_before_start(host: Host, pod: PodDir, specs: list[AppSpec]) -> None:
    """Docker copy-up for a pod that pod-init starts: each app with an implicit volume gets its
    overlay root mounted here, in a private mount namespace of this process's own, its volumes
    filled from the image (``copyup.py``, once per pod), and the root unmounted again; pod-init
    mounts it for good in the pod's namespace. (This process is about to exec pod-init, whose
    namespaces are copies of this one.)"""
    host.unshare(CLONE_NEWNS)
    host.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    for spec in specs:
        if not has_copy_up([spec]):
            continue
        root, data = app_root_overlay(pod.path, spec)
        Path(root).mkdir(parents=True, exist_ok=True)
        host.mount("overlay", root, "overlay", 0, data)
        try:
            copy_up_volumes(spec, root)
        finally:
            host.umount(root)  # not lazily: the overlay's work dir must be free for pod-init


def copy_up_added_app(host: Host, pod: PodDir, spec: AppSpec) -> None:
    """Docker copy-up for an app added to a running mutable pod, before the supervisor mounts
    its root: as ``copy_up_before_start``, in a child with a private mount namespace of its
    own (this process goes on in the host's)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child: tested end to end)
        code = 0
        try:
            os.close(read_end)
            copy_up_before_start(host, pod, [spec])
        except BaseException as exc:
            os.write(write_end, str(exc).encode(errors="replace")[:2000])
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as errors:
        message = errors.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(f'app "{spec.name}": copy-up: {message or "failed"}')


class SpawnedInit:
    """``pod-init`` started by the run process before the pod plan is complete (pod-init.c,
    ``--parent``): it joins the CNI namespace, unshares the pod's namespaces, makes the mounts
    private and brings ``lo`` up while this process still resolves the apps, makes the cgroups
    and writes the app plans (the first ~1.5 ms of pod-init's work, on the other CPU). The
    rest of the plan follows through the same pipe (``finish``); the init is then forked as
    this process's child ("fork-sibling"), and this process exec's ``run-waiter --spawned``,
    which learns its pid from pod-init. pod-init dies with this process until then (and is
    killed by ``abort`` when the pod is refused meanwhile)."""

    def __init__(self, pod_path: Path, netns: int | None, flags: int) -> None:
        """``netns``, ``flags``: as ``pod_plan``'s; ``netns`` and the network barrier must be
        inheritable (pod-init joins the one and hands the other to the init)."""
        plan = LaunchPlan("stage1: pod init")
        namespace_steps(plan, netns, flags)
        plan_r, self._plan_w = os.pipe()
        self._pid_r, pid_w = os.pipe()
        self.pid_fd = pid_w  # its number in pod-init, which holds it from here on
        os.set_inheritable(plan_r, True)
        os.set_inheritable(pid_w, True)
        try:
            argv = ["pod-init", "--parent", str(os.getpid()), str(plan_r)]  # (its "parent" step)
            self.pid = os.posix_spawn(program(pod_path, INIT), argv, {})
        except OSError as exc:
            for fd in (self._plan_w, self._pid_r):
                os.close(fd)
            raise PodError(f'stage1: cannot start "{INIT}": {exc.strerror}') from exc
        finally:
            os.close(plan_r)
            os.close(pid_w)
        if netns is not None:  # pod-init's now: run-waiter must not keep it open
            os.set_inheritable(netns, False)
        self._send(plan.encode())

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._plan_w, view) :]
        except BrokenPipeError:
            pass  # pod-init failed (and said why): run-waiter --spawned returns its status

    def abort(self) -> None:
        """The pod will not start: pod-init ended (and its namespaces with it) and reaped. It
        is killed before its plan's pipe is closed: a plan cut short is an error to it."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        for fd in (self._plan_w, self._pid_r):
            if fd >= 0:
                os.close(fd)
        self._plan_w = self._pid_r = -1

    def finish(self, pod_path: Path, plan: LaunchPlan, interactive: bool) -> NoReturn:
        """The rest of the plan to pod-init, then ``execve`` run-waiter (the stop signals
        blocked first: pending for run-waiter, as pod-init keeps them for it)."""
        data = plan.encode()
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDOFF_SIGNALS)
        self._send(data)
        os.close(self._plan_w)
        self._plan_w = -1
        os.set_inheritable(self._pid_r, True)
        argv = [*waiter_argv(interactive), "--spawned", str(self.pid), str(self._pid_r)]
        os.execve(program(pod_path, WAITER), argv, {})


def namespace_steps(plan: LaunchPlan, netns: int | None, flags: int) -> None:
    """Join the pod's CNI namespace (``netns``, a descriptor; ``lo`` up), unshare ``flags``,
    make every mount private and drop our copies of the pinned network namespaces (so no pod
    keeps another pod's alive after that pod's gc); ``lo`` up in a new network namespace."""
    if netns is not None:
        plan.step("netns", netns)
        plan.step("loopback")
    plan.step("unshare", flags)
    plan.step("private")
    plan.step("unpin", str(NETNS_DIR))
    if flags & CLONE_NEWNET:
        plan.step("loopback")


def waiter_argv(interactive: bool) -> list[str]:
    """run-waiter's argv, before the pids (``--interactive``: ^C is the app's)."""
    return ["run-waiter", *(["--interactive"] if interactive else [])]


def pod_plan(
    pod: PodDir,
    args: RunArgs,
    specs: list[AppSpec],
    flags: int,
    backend: CgroupBackend | None,
    cgroup: PodCgroup | None,
    network: tuple[int, str] | None = None,
    netns: int | None = None,
    spawned: SpawnedInit | None = None,
) -> LaunchPlan:
    """The pod-init steps (see pod-init.c); creates the app cgroups and writes the app plans.
    ``network``: the barrier of the networks still being attached and the attacher's error file
    (``network.PendingNetwork.barrier``); the apps and the init wait for it. ``netns``: the
    pod's CNI namespace (a descriptor), joined first, ``lo`` up. ``spawned``: pod-init runs
    already and has done the namespace steps: the plan goes on from its fork."""
    path = pod.path
    plan = LaunchPlan("stage1: pod init")
    if spawned is not None:
        plan.step("fork-sibling", pod.file(abi.PID_FILE), spawned.pid_fd)
    else:
        namespace_steps(plan, netns, flags)
        waiter = waiter_argv(args.interactive)
        plan.step("fork", pod.file(abi.PID_FILE), program(path, WAITER), len(waiter), *waiter)
    plan.step("pdeathsig")
    for d in cgroup.dirs if cgroup is not None else ():
        plan.step("write", join_file(str(d)), "0")
    plan.step("hostname", args.hostname or f"rkt-{pod.uuid}")
    roots = []
    for spec in specs:
        root, data = app_root_overlay(path, spec)
        plan.step("overlay", root, data)
        roots.append(root)
    plan.step("wait")
    app_cgroups = [create_app_cgroup(backend, cgroup, spec) for spec in specs]
    _start_steps(plan, pod, path, args, specs, roots, app_cgroups, backend, network)
    return plan


def userns_pod_plan(
    pod: PodDir,
    args: RunArgs,
    specs: list[AppSpec],
    flags: int,
    backend: CgroupBackend | None,
    app_cgroups: dict[str, PodCgroup],
    pid_fd: int,
    go_fd: int,
) -> LaunchPlan:
    """The pod-init steps of a ``--private-users`` pod (stage1/ns/userns.py): exec'd by the
    helper that is root of the pod's user namespace, after the run process mounted the app
    roots (idmapped) and made the app cgroups. Paths are relative to the pod directory (its
    parents may be closed to the namespace's uids); the init's pid goes to ``pid_fd`` and the
    run process, which publishes it, releases the init through ``go_fd``. Writes the app plans
    (call it as host root)."""
    base = Path(".")
    plan = LaunchPlan("stage1: pod init")
    plan.step("unshare", flags)
    plan.step("private")
    if flags & CLONE_NEWNET:
        plan.step("loopback")
    waiter = ["run-waiter", "--ignore-signals"]  # stop requests reach the init via the run process
    plan.step("fork-fds", pid_fd, go_fd, program(base, WAITER), len(waiter), *waiter)
    plan.step("pdeathsig")
    plan.step("hostname", args.hostname or f"rkt-{pod.uuid}")
    roots = [str(base / abi.stage2_rootfs(spec.name)) for spec in specs]
    for root in roots:
        plan.step("bind", root)
    plan.step("wait")
    cgroups = [app_cgroups.get(spec.name) for spec in specs]
    # /sys may be a bind of the current one there (app-exec's fallback: sysfs mounts only for a
    # network namespace the user namespace owns), so the read-only masks under it stay
    _start_steps(plan, pod, base, args, specs, roots, cgroups, backend, own_sysfs=False)
    return plan


def _start_steps(
    plan: LaunchPlan,
    pod: PodDir,
    base: Path,
    args: RunArgs,
    specs: list[AppSpec],
    roots: list[str],
    app_cgroups: list[PodCgroup | None],
    backend: CgroupBackend | None,
    network: tuple[int, str] | None = None,
    *,
    own_sysfs: bool = True,
) -> None:
    """Each app's plan written beside its spec, then the steps that start them and supervise.
    ``own_sysfs``: each app's /sys is a sysfs mount of its own (``launch.app_masks``)."""
    network_fd = network[0] if network is not None else None
    prebuilt = read_prebuilt(str(pod.file(abi.STAGE1_ROOTFS)))  # once for every app
    for spec, root, app_cgroup in zip(specs, roots, app_cgroups, strict=True):
        _app_step(
            plan, pod, base, spec, root, app_cgroup, backend, args.interactive, network_fd,
            prebuilt, own_sysfs,
        )  # fmt: skip
    plan.step("start", int(args.interactive))
    if network is not None:  # the apps wait for it too, each before its resolv.conf/hosts
        plan.step("network", *network)
    if args.mutable:  # before "ready": app/add may follow `rkt status --wait-ready` at once
        plan.step("listen", CONTROL_SOCKET, base / PRIVATE_DIR / "apps")
    plan.step("ready", base / abi.SUPERVISOR_STATUS)
    plan.step("supervise", program(base, SUPERVISOR))


def _terminal() -> str | None:
    """The terminal on our stdin (an ``--interactive`` pod's caller's), if it has a name."""
    try:
        return os.ttyname(0)
    except OSError:
        return None


def _app_step(
    plan: LaunchPlan,
    pod: PodDir,
    base: Path,
    spec: AppSpec,
    root: str,
    app_cgroup: PodCgroup | None,
    backend: CgroupBackend | None,
    interactive: bool,
    network_fd: int | None = None,
    prebuilt: bytes | None = None,
    own_sysfs: bool = True,
) -> None:
    """The app's launch plan, written beside its spec, and its "app" step (see pod-init.c).
    ``prebuilt``: the stage1's default seccomp filter (``launch.read_prebuilt``).
    ``own_sysfs``: see ``launch.app_masks``."""
    dirs = tuple(str(d) for d in app_cgroup.dirs) if app_cgroup is not None else ()
    oom = backend.oom_events_file(app_cgroup) if backend and app_cgroup else None
    plan_file = app_spec_path(pod, spec.name).with_suffix(".plan")
    console = _terminal() if interactive else None
    app = app_plan(spec, root, dirs, network_fd, prebuilt, own_sysfs=own_sysfs, console=console)
    write_atomic(plan_file, app.encode())
    plan.step(
        "app",
        spec.name,
        program(base, LAUNCHER),
        base / plan_file.relative_to(pod.path),
        base / abi.app_status(spec.name),
        base / abi.app_status_json(spec.name),
        "" if interactive else base / abi.app_log(spec.name),
        oom,
        root,
    )


def _pod_cgroup(pod: PodDir) -> tuple[CgroupBackend | None, PodCgroup | None]:
    """The running pod's cgroup, checked as gc checks it (``_pod.load_pod_cgroup``); (None, None)
    if it has none."""
    from rkt.host.cgroups import detect_backend
    from rkt.stage1.ns._pod import load_pod_cgroup

    cgroup = load_pod_cgroup(pod)
    return (None, None) if cgroup is None else (detect_backend(), cgroup)


def prepare_added_app(pod: PodDir, spec: AppSpec) -> None:
    """app/add of a mutable pod, after the app's spec is saved: its Docker volumes filled
    (copy-up), its cgroup (limits written), its launch plan, and ``<app>.add``, the "overlay"
    and "app" steps pod-supervisor performs to mount its root and, on app/start, start it."""
    if has_copy_up([spec]):  # its own Docker volumes, before its root is mounted for good
        from rkt.host.linux import LinuxHost

        copy_up_added_app(LinuxHost(), pod, spec)
    backend, cgroup = _pod_cgroup(pod)
    app_cgroup = create_app_cgroup(backend, cgroup, spec)
    root, data = app_root_overlay(pod.path, spec)
    record = LaunchPlan(f'app "{spec.name}"')
    record.step("overlay", root, data)
    # (a mutable pod is never interactive: run refuses the pair)
    prebuilt = read_prebuilt(str(pod.file(abi.STAGE1_ROOTFS)))
    _app_step(record, pod, pod.path, spec, root, app_cgroup, backend, False, None, prebuilt)
    write_atomic(app_spec_path(pod, spec.name).with_suffix(".add"), record.encode())


def forget_removed_app(pod: PodDir, app: str) -> None:
    """app/rm of a mutable pod, once pod-supervisor has stopped the app and unmounted its root:
    its cgroup and its stage1 files (stage0 removes the rest)."""
    backend, cgroup = _pod_cgroup(pod)
    if backend is not None and cgroup is not None:
        app_cgroup = cgroup.app(app)
        if any(d.is_dir() for d in app_cgroup.dirs):
            backend.remove(app_cgroup)
    spec = app_spec_path(pod, app)
    for path in (
        pod.file(abi.app_status_json(app)),
        pod.file(abi.app_status(app)),
        pod.file(f"{abi.ENV_DIR}/{app}"),
        pod.file(abi.app_log(app)),
        *(spec.with_suffix(s) for s in (".json", ".plan", ".add")),
    ):
        path.unlink(missing_ok=True)
    for rel in (abi.stage2_rootfs(app), f"{abi.STAGE2_DIR}/{app}"):
        try:
            pod.file(rel).rmdir()
        except OSError:
            pass


def exec_pod_init(
    pod: PodDir, plan: LaunchPlan, spawned: SpawnedInit | None = None, interactive: bool = False
) -> NoReturn:
    """``execve`` pod-init with ``plan``, or hand it to the one ``spawned`` and become
    run-waiter."""
    if spawned is not None:
        spawned.finish(pod.path, plan, interactive)
    exec_launcher(program(pod.path, INIT), plan, argv0="pod-init")
