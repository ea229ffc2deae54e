"""Starting an ordinary pod through the flavor's native ``pod-init`` (src/rkt/stage1/native).

The run entrypoint has resolved every app and set the pod's cgroup and network up; here it
creates each app's cgroup (limits written), writes each app's launch plan beside its spec
(``private/apps/<app>.plan``, the steps ``app-exec`` performs), and then ``exec``s ``pod-init``
with the pod plan: unshare the namespaces, fork the init, publish ``pid`` and become
``run-waiter``; in the init, join the pod's cgroup, set the hostname, mount each app's overlay
root, start the apps through ``app-exec`` and become ``pod-supervisor``. No Python runs in the
pod's namespaces, and the run process never forks an interpreter.

Mutable pods, ``--private-users`` and Docker images whose implicit volumes are copied up first
keep the Python init (``rkt.stage1.ns.init``), which shares the helpers below.

Imports only the standard library, ``rkt.abi``, ``rkt.host`` and ``rkt.stage1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from rkt import abi
from rkt.host.api import CLONE_NEWNET
from rkt.host.cgroups import CgroupBackend, Limits, PodCgroup, join_file
from rkt.host.netns import NETNS_DIR
from rkt.stage1.common.appspec import AppSpec, app_spec_path
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.layers import app_lower_dirs
from rkt.stage1.common.poddir import PodDir, write_atomic
from rkt.stage1.ns.launch import LaunchPlan, app_plan, exec_launcher
from rkt.stage1.ns.native import INIT, LAUNCHER, SUPERVISOR, WAITER, program


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


def needs_python_init(args: RunArgs, specs: list[AppSpec]) -> bool:
    """Mutable pods serve a control socket; --private-users maps ids around the init; an
    implicit Docker volume is copied up from the app's root before the app starts."""
    copy_up = any(m.copy_up is not None for spec in specs for m in spec.mounts)
    return args.mutable or args.private_users is not None or copy_up


def pod_plan(
    pod: PodDir,
    args: RunArgs,
    specs: list[AppSpec],
    flags: int,
    backend: CgroupBackend | None,
    cgroup: PodCgroup | None,
) -> LaunchPlan:
    """The pod-init steps (see pod-init.c); creates the app cgroups and writes the app plans."""
    path = pod.path
    plan = LaunchPlan("stage1: pod init")
    plan.step("unshare", flags)
    plan.step("private")
    plan.step("unpin", str(NETNS_DIR))
    if flags & CLONE_NEWNET:
        plan.step("loopback")
    waiter = ["run-waiter", *(["--interactive"] if args.interactive else [])]
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
    for spec, root in zip(specs, roots, strict=True):
        app_cgroup = create_app_cgroup(backend, cgroup, spec)
        dirs = tuple(str(d) for d in app_cgroup.dirs) if app_cgroup is not None else ()
        oom = backend.oom_events_file(app_cgroup) if backend and app_cgroup else None
        plan_file = app_spec_path(pod, spec.name).with_suffix(".plan")
        write_atomic(plan_file, app_plan(spec, root, dirs).encode())
        plan.step(
            "app",
            spec.name,
            program(path, LAUNCHER),
            plan_file,
            path / abi.app_status(spec.name),
            path / abi.app_status_json(spec.name),
            "" if args.interactive else path / abi.app_log(spec.name),
            oom,
        )
    plan.step("start", int(args.interactive))
    plan.step("ready", path / abi.SUPERVISOR_STATUS)
    plan.step("supervise", program(path, SUPERVISOR))
    return plan


def exec_pod_init(pod: PodDir, plan: LaunchPlan) -> NoReturn:
    exec_launcher(program(pod.path, INIT), plan, argv0="pod-init")
