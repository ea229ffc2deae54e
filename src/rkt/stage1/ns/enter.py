"""The enter entrypoint (docs/stage1-abi.md §3 "enter"): run a command inside a running app.

rkt's enter escaped the app's confinement (CVE-2019-10144/10145/10147: no bounding set, no
seccomp, no cgroup). Here the command gets exactly what the app got, from the app's resolved
launch that run saved: first the app's cgroup (so its memory, cpu and pids limits count the
command too; the pod's if the app has none; joined while the host's cgroupfs is visible), then
no more dumping (so nothing inside can ptrace this still-privileged process), then the init's
IPC, UTS, network and PID namespaces and the APP's mount namespace (which puts us in its root),
both joined through pidfds (no pid-reuse race); then a fork (to be inside the pid namespace),
and in the child the flavor's ``app-exec`` sets the app's OOM score, bounding and ambient sets,
no_new_privs, groups, ids, seccomp filter, working directory and environment before exec
(``launch.enter_plan``). The exit status is the command's.

Imports only the standard library, ``rkt.errors``, ``rkt.host``, ``rkt.stage1``.
"""

from __future__ import annotations

import os
import signal
import sys

from rkt import abi
from rkt.errors import PodError
from rkt.host.api import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, Host
from rkt.host.cgroups import PodCgroup, app_cgroup_name, detect_backend
from rkt.host.flags import CLONE_NEWUSER
from rkt.stage1.common.appspec import AppSpec, app_spec_path
from rkt.stage1.common.args import EnterArgs, parse_enter
from rkt.stage1.common.entry import describe_error, run_entrypoint
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.common.status import read_app_status, wait_status_to_exit_code
from rkt.stage1.ns._pod import load_pod_cgroup, open_app_process, open_pod_init
from rkt.stage1.ns.launch import EXIT_SETUP_FAILED, enter_plan, exec_launcher, read_prebuilt
from rkt.stage1.ns.native import LAUNCHER, check_programs, program


def choose_app(pod: PodDir, args: EnterArgs) -> str:
    apps = [a.name for a in pod.read_manifest().apps]
    if args.app is not None:
        if args.app not in apps:
            raise PodError(f'pod "{pod.uuid}": has no app "{args.app}"')
        return args.app
    if len(apps) != 1:
        raise PodError(f'pod "{pod.uuid}": has {len(apps)} apps, say which with --app')
    return apps[0]


def join_pod(host: Host, pod: PodDir, app: str) -> None:
    """Join the pod's cgroup and namespaces, the app's mount namespace and root."""
    init_fd = open_pod_init(pod)
    if init_fd is None:
        raise PodError(f'pod "{pod.uuid}": is not running')
    status = read_app_status(pod.path, app) or {}
    raw_pid = status.get("pid")
    app_pid = raw_pid if isinstance(raw_pid, int) else None
    init_pid = pod.read_pid() or 0
    app_fd = open_app_process(init_pid, app_pid) if status.get("state") == "running" else None
    if app_fd is None:
        os.close(init_fd)
        raise PodError(f'app "{app}": is not running')
    try:
        cgroup = load_pod_cgroup(pod)
        if cgroup is not None:
            detect_backend().attach(app_cgroup(cgroup, app))
        host.set_dumpable(False)
        flags = CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWPID
        in_userns = _in_other_userns(init_pid)
        if in_userns:  # --private-users: become the pod's root, not ours
            flags |= CLONE_NEWUSER
        host.setns(init_fd, flags)
        host.setns(app_fd, CLONE_NEWNS)
        if in_userns:
            # Our host uid has no mapping in there: the launcher's execve would drop every
            # capability. As the namespace's root it keeps them, to drop them as the app did.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    finally:
        os.close(init_fd)
        os.close(app_fd)


def _in_other_userns(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino
    except OSError:
        return False


def app_cgroup(pod: PodCgroup, app: str) -> PodCgroup:
    """The app's cgroup inside the pod's (every hierarchy), or the pod's if it has none."""
    dirs = tuple(d / app_cgroup_name(app) for d in pod.dirs)
    if dirs and all(d.is_dir() for d in dirs):
        return PodCgroup(dirs=dirs, relative=f"{pod.relative}/{app_cgroup_name(app)}")
    return pod


def run_in_app(
    launcher: int, spec: AppSpec, command: tuple[str, ...], prebuilt: bytes | None = None
) -> int:
    """Fork (to be inside the pid namespace); the child execs ``app-exec`` (``launcher``, an fd:
    the app's mount namespace has no rkt) with the enter plan (``prebuilt``: the stage1's
    default filter, ``launch.read_prebuilt``, read before joining the app)."""
    plan = enter_plan(spec, command, prebuilt)
    pid = os.fork()
    if pid == 0:
        try:
            exec_launcher(launcher, plan)
        except BaseException as exc:
            try:
                os.write(2, f"stage1 enter: {command[0]}: {describe_error(exc)}\n".encode())
            finally:
                os._exit(EXIT_SETUP_FAILED)
    # The terminal's ^C reaches the command itself; a SIGTERM to us is passed on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(pid, signal.SIGTERM))
    _, status = os.waitpid(pid, 0)
    return wait_status_to_exit_code(status)[0]


def _enter(argv: list[str]) -> int:
    args = parse_enter(argv)
    pod = PodDir.from_cwd(args.uuid)
    app = choose_app(pod, args)
    try:
        spec = AppSpec.from_json(app_spec_path(pod, app).read_bytes())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PodError(f'app "{app}": its launch record is missing or unreadable') from exc
    from rkt.host.linux import LinuxHost

    host = LinuxHost()
    # Opened now: once in the app's mount namespace, the pod's stage1 rootfs is out of sight.
    check_programs(pod.path)
    launcher = os.open(program(pod.path, LAUNCHER), os.O_PATH | os.O_CLOEXEC)
    prebuilt = read_prebuilt(str(pod.file(abi.STAGE1_ROOTFS)))
    join_pod(host, pod, app)
    return run_in_app(launcher, spec, args.command, prebuilt)


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint("enter", _enter, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
