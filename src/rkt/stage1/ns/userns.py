"""``--private-users=<shift>:<count>``: the pod in a user namespace of its own, overlay kept.

rkt chowned the whole image tree and so needed ``--no-overlay`` (reference §4.5). Here nothing
is chowned but the pod's own overlay upper dirs: the run process (still host root, in a private
mount namespace) forks a helper that unshares a user namespace and waits; the run process
writes its uid/gid map (``0 <shift> <count>``), then mounts every app's root: each read-only
lower layer through an idmapped bind (``rkt.host.idmap``), the overlay on top, and each volume
source through an idmapped bind too, so host files owned by root show as the pod's root. Only
then does the helper become root of its namespace and exec the flavor's ``pod-init``
(``rkt.stage1.ns.start.userns_pod_plan``), which unshares UTS, IPC, PID and mount (and network
for ``--net=none``) namespaces, all owned by the user namespace, and forks the pod init, which
finds the roots already mounted. (A pod with a Docker copy-up volume forks the Python init
instead, which copies up before starting the app.) App cgroups are created here beforehand
(the host's cgroupfs is not writable from inside), with ``cgroup.procs`` handed to the pod's
root so each app can join its own.

The helper relays the init's exit status; the run process publishes the init's pid.

Imports only the standard library, ``rkt.abi``, ``rkt.host`` and ``rkt.stage1``.
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.host.api import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MS_PRIVATE,
    MS_REC,
    Host,
)
from rkt.host.cgroups import CgroupBackend, PodCgroup
from rkt.host.flags import CLONE_NEWUSER
from rkt.host.signals import signal
from rkt.paths import Path
from rkt.stage1.common.appspec import COPY_UP_DIR, AppSpec
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.layers import app_lower_dirs
from rkt.stage1.common.poddir import PRIVATE_DIR, PodDir, write_atomic
from rkt.stage1.ns.launch import LaunchPlan, exec_launcher
from rkt.stage1.ns.native import HANDOFF_SIGNALS, INIT, exec_waiter, program
from rkt.stage1.ns.start import create_app_cgroup, has_copy_up, userns_pod_plan

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn

IDMAP_DIR = f"{PRIVATE_DIR}/idmap"
Binds = list[tuple[str, str]]


def idmapped_specs(pod: PodDir, specs: list[AppSpec]) -> list[tuple[AppSpec, list[str], Binds]]:
    """Each spec with its volume sources replaced by idmapped bind targets, its idmapped lower
    layers (top-most first), and the (source, target) binds to make."""
    out = []
    for spec in specs:
        base = pod.path / IDMAP_DIR / spec.name
        binds: Binds = []
        lowers = []
        for i, lower in enumerate(app_lower_dirs(pod.path, spec.name, spec.lower_rootfs)):
            target = str(base / f"lower{i}")
            binds.append((lower, target))
            lowers.append(target)
        mounts = []
        # Inside the user namespace the pod's root may not search the pod dir's parents
        # (pods/run is 0750): the app launcher, whose cwd is the pod dir, uses relative paths.
        inside = Path(IDMAP_DIR) / spec.name
        for i, vol in enumerate(spec.mounts):
            target = str(base / f"volume{i}")
            binds.append((vol.source, target))
            mounts.append(vol._replace(source=str(inside / f"volume{i}")))
        # resolv.conf/hosts too: the pod's root cannot reach their sources from inside the user
        # namespace, so they are bound (idmapped) into the pod's reach like the volumes.
        name_files = []
        for i, nf in enumerate(spec.name_files):
            target = str(base / f"namefile{i}")
            binds.append((nf.source, target))
            name_files.append(nf._replace(source=str(inside / f"namefile{i}")))
        new = spec._replace(mounts=tuple(mounts), name_files=tuple(name_files))
        out.append((new, lowers, binds))
    return out


def hand_over_stage1_dirs(pod: PodDir, shift: int) -> None:
    """The init runs as the pod's root: it must write status files, logs and the supervisor
    link. ``rkt/`` gets the sticky bit so it cannot rename or remove ``private/`` (still ours).
    The pod directory gains search permission for others (no listing): its parents stay closed,
    and the init reaches it through its working directory."""
    os.chmod(pod.path, os.stat(pod.path).st_mode & 0o7777 | 0o001)
    for rel in (abi.STATUS_DIR, abi.LOGS_DIR):
        os.chown(pod.file(rel), shift, shift)
    # Docker copy-up markers are written by the apps, as the pod's root (copyup.py).
    copy_up = pod.file(COPY_UP_DIR)
    copy_up.mkdir(mode=0o700, exist_ok=True)
    os.chown(copy_up, shift, shift)
    rkt_dir = pod.file(abi.SUPERVISOR_STATUS).parent
    os.chown(rkt_dir, shift, shift)
    os.chmod(rkt_dir, 0o1755)


def _prepare_app_cgroups(
    backend: CgroupBackend | None, cgroup: PodCgroup | None, specs: list[AppSpec], shift: int
) -> dict[str, PodCgroup]:
    made: dict[str, PodCgroup] = {}
    for spec in specs:
        app_cg = create_app_cgroup(backend, cgroup, spec)  # raises: limits without a cgroup
        if app_cg is None:
            continue
        for d in app_cg.dirs:
            for name in ("cgroup.procs", "tasks"):
                if (d / name).exists():
                    os.chown(d / name, shift, shift)
        made[spec.name] = app_cg
    return made


def _mount_roots(
    host: Host, pod: PodDir, planned: list[tuple[AppSpec, list[str], Binds]], userns_fd: int
) -> None:
    from rkt.host.idmap import idmapped_bind
    from rkt.stage1.ns.start import overlay_options

    for spec, lowers, binds in planned:
        for source, target in binds:
            Path(target).mkdir(parents=True, exist_ok=True)
            if os.path.isfile(source):
                Path(target).rmdir()
                Path(target).touch()
            idmapped_bind(source, target, userns_fd)
        root = pod.path / abi.stage2_rootfs(spec.name)
        root.mkdir(parents=True, exist_ok=True)
        overlay = pod.path / abi.app_overlay(spec.name)
        data = overlay_options(lowers, str(overlay / "upper"), str(overlay / "work"))
        host.mount("overlay", str(root), "overlay", 0, data)


def start_pod_in_userns(
    host: Host,
    pod: PodDir,
    args: RunArgs,
    specs: list[AppSpec],
    backend: CgroupBackend | None,
    cgroup: PodCgroup | None,
) -> tuple[int, int]:
    """Returns (the pid to wait for: the helper, which exits with the pod's status, the init's
    pid as we see it: where stop requests go). HANDOFF_SIGNALS stay blocked, as in run.py."""
    assert args.private_users is not None
    shift, count = args.private_users
    host.unshare(CLONE_NEWNS)
    host.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    app_cgroups = _prepare_app_cgroups(backend, cgroup, specs, shift)
    for spec in specs:
        os.chown(pod.path / abi.app_overlay(spec.name) / "upper", shift, shift)
    hand_over_stage1_dirs(pod, shift)
    planned = idmapped_specs(pod, specs)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid_r, pid_w = os.pipe()
    start_r, start_w = os.pipe()
    pod_init = None  # the native pod-init's plan, unless a copy-up needs the Python init
    if not has_copy_up(specs):
        flags = _namespace_flags(args)
        idmapped = [s for s, _, _ in planned]
        pod_init = userns_pod_plan(pod, args, idmapped, flags, backend, app_cgroups, pid_w, start_r)
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDOFF_SIGNALS)
    helper = os.fork()
    init_pid = helper
    if helper == 0:
        for fd in (ready_r, go_w, pid_r, start_w):
            os.close(fd)
        _helper(host, args, [s for s, _, _ in planned], backend, cgroup, app_cgroups,
                (ready_w, go_r, pid_w, start_r), shift, count, pod_init)  # fmt: skip
    for fd in (ready_w, go_r, pid_w, start_r):
        os.close(fd)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("private users: the pod's helper died before its user namespace")
        from rkt.host.idmap import write_id_maps

        write_id_maps(helper, shift, count)
        userns_fd = os.open(f"/proc/{helper}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _mount_roots(host, pod, planned, userns_fd)
        finally:
            os.close(userns_fd)
        os.write(go_w, b"1")
        os.close(go_w)
        raw = os.read(pid_r, 32)
        if not raw:
            raise OSError("private users: the pod init did not start")
        init_pid = int(raw)
        write_atomic(pod.file(abi.PID_FILE), b"%d" % init_pid)
        os.write(start_w, b"1")
    finally:
        os.close(start_w)  # EOF before "1": the init exits
    return helper, init_pid


def _namespace_flags(args: RunArgs) -> int:
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID
    return flags | CLONE_NEWNET if args.net_mode == "none" else flags


def _helper(
    host: Host,
    args: RunArgs,
    specs: list[AppSpec],
    backend: CgroupBackend | None,
    cgroup: PodCgroup | None,
    app_cgroups: dict[str, PodCgroup],
    fds: tuple[int, int, int, int],
    shift: int,
    count: int,
    pod_init: LaunchPlan | None = None,
) -> NoReturn:
    ready_w, go_r, pid_w, start_r = fds
    code = 254
    try:
        host.set_pdeathsig(signal.SIGKILL)  # until setresuid clears it; set again below
        if backend is not None and cgroup is not None:
            backend.attach(cgroup)  # while still host root: the whole pod is accounted here
        host.unshare(CLONE_NEWUSER)
        os.write(ready_w, b"1")
        if os.read(go_r, 1) != b"1":
            os._exit(254)
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        host.set_pdeathsig(signal.SIGKILL)  # a credential change clears it (prctl(2))
        if os.getppid() == 1:
            os._exit(254)  # the run process died in between
        if pod_init is not None:  # the rest is pod-init's, through its pid and go fds
            os.set_inheritable(pid_w, True)
            os.set_inheritable(start_r, True)
            exec_launcher(program(Path("."), INIT), pod_init, argv0="pod-init")
        flags = _namespace_flags(args)
        host.unshare(flags)
        if args.net_mode == "none":
            host.bring_up_loopback()
        pid = os.fork()
        if pid == 0:
            from rkt.stage1.ns.init import run_pod_init

            run_pod_init(
                host,
                Path("."),  # relative: the pod dir's parents may be closed to our uids
                specs,
                hostname=args.hostname or f"rkt-{args.uuid}",
                interactive=args.interactive,
                cgroups=backend,
                cgroup=cgroup,
                go_fd=start_r,
                app_cgroups=app_cgroups,
                in_userns=True,
            )
        os.write(pid_w, b"%d" % pid)
        os.close(pid_w)
        # Stop requests reach the init through the run process; we only relay its status.
        # Relative: the pod dir's parents may be closed to our uids (cwd is the pod dir).
        exec_waiter(Path("."), pid, ignore_signals=True)
    except BaseException as exc:
        try:
            os.write(2, f"stage1: private users: {exc}\n".encode())
        except OSError:
            pass
    os._exit(code)
