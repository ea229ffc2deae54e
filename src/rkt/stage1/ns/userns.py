"""``--private-users=<shift>:<count>``: the pod in a user namespace of its own, overlay kept.

rkt chowned the whole image tree and so needed ``--no-overlay`` (reference §4.5). Here nothing
is chowned but the pod's own overlay upper dirs: the run process (still host root, in a private
mount namespace) forks a helper that unshares a user namespace and waits; the run process
writes its uid/gid map (``0 <shift> <count>``), then mounts every app's root: each read-only
lower layer through an idmapped bind, the overlay on top, and each volume source through an
idmapped bind too, so host files owned by root show as the pod's root. Only then does the helper
become root of its namespace and go on with the flavor's ``pod-init`` steps
(``rkt.stage1.ns.start.userns_pod_plan``), which unshare UTS, IPC, PID and mount (and network
for ``--net=none``) namespaces, all owned by the user namespace, and fork the pod init, which
finds the roots already mounted. App cgroups are created here beforehand (the host's cgroupfs
is not writable from inside), with ``cgroup.procs`` handed to the pod's root so each app can
join its own.

The helper relays the init's exit status; the run process publishes the init's pid.

The run process prepares in Python, then exec's ``pod-init`` with the whole sequence as its plan
(``exec_userns_pod``): the run process's own part (the mount namespace, the helper's fork, the
maps, the idmapped binds and overlays, publishing the pid) and then the helper's, which the
helper skips to once released (pod-init.c, the "userns" steps). No Python process loads ctypes
for it. Docker copy-up volumes are filled before all that, by the run process as host root
(``start.copy_up_before_start``, as for any pod): the volume is then bound idmapped like the
others, so the pod's root owns what the image's root owned.

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
)
from rkt.host.cgroups import CgroupBackend, PodCgroup, join_file
from rkt.paths import Path
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.layers import app_lower_dirs
from rkt.stage1.common.poddir import PRIVATE_DIR, PodDir
from rkt.stage1.ns.launch import LaunchPlan
from rkt.stage1.ns.native import WAITER, program
from rkt.stage1.ns.start import (
    create_app_cgroup,
    namespace_steps,
    userns_pod_plan,
    waiter_argv,
)

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


def exec_userns_pod(
    pod: PodDir,
    args: RunArgs,
    specs: list[AppSpec],
    backend: CgroupBackend | None,
    cgroup: PodCgroup | None,
    netns: int | None,
) -> NoReturn:
    """Prepare the pod's user namespace (cgroups, ownership, the idmapped plan) and exec
    ``pod-init`` with the run process's steps, then the helper's (see the module docstring).
    ``netns``: the pod's CNI namespace (its networks already up), joined first."""
    from rkt.stage1.ns.start import exec_pod_init, overlay_options

    assert args.private_users is not None
    shift, count = args.private_users
    app_cgroups = _prepare_app_cgroups(backend, cgroup, specs, shift)
    for spec in specs:
        os.chown(pod.path / abi.app_overlay(spec.name) / "upper", shift, shift)
    hand_over_stage1_dirs(pod, shift)
    planned = idmapped_specs(pod, specs)
    pid_r, pid_w = os.pipe()
    start_r, start_w = os.pipe()
    for fd in (pid_r, pid_w, start_r, start_w):
        os.set_inheritable(fd, True)
    helper = userns_pod_plan(
        pod, args, [s for s, _, _ in planned], _namespace_flags(args), backend, app_cgroups,
        pid_w, start_r,
    )  # fmt: skip
    ours = LaunchPlan("stage1: private users")
    for spec, lowers, binds in planned:
        for source, target in binds:
            ours.step("idmap", source, target)
        overlay = pod.path / abi.app_overlay(spec.name)
        data = overlay_options(lowers, str(overlay / "upper"), str(overlay / "work"))
        ours.step("overlay", pod.path / abi.stage2_rootfs(spec.name), data)
    waiter = waiter_argv(args.interactive)
    ours.step("userns-go", pod.file(abi.PID_FILE), program(pod.path, WAITER), len(waiter), *waiter)
    ours.step("userns-child")
    tail = ours.steps[1:]  # without its label: the helper skips these strings
    joins = [join_file(str(d)) for d in cgroup.dirs] if cgroup is not None else []
    plan = LaunchPlan("stage1: private users")
    namespace_steps(plan, netns, CLONE_NEWNS)
    skip = sum(len(step) for step in tail)
    plan.step("userns", shift, count, pid_r, pid_w, start_r, start_w, skip, len(joins), *joins)
    plan.steps += tail
    plan.steps += helper.steps
    exec_pod_init(pod, plan)


def _namespace_flags(args: RunArgs) -> int:
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID
    return flags | CLONE_NEWNET if args.net_mode == "none" else flags
