"""Starting one app inside the pod: the plan (here, in Python) and its execution (``app-exec``).

Everything about an app's start is decided here, as a launch plan: a list of primitive steps
that the flavor's native ``app-exec`` (src/rkt/stage1/native/app-exec.c) performs in order, in a
child of the pod init, before it ``execve``s the app. The plan's steps, as ``app_plan`` emits
them:

0. the seccomp filter, compiled now (or rkt's default, compiled at ``make setup``, given as
   is), loaded at the exec (``seccomp_step``; first, so an app whose pod still attaches its
   networks compiles it meanwhile); into the app's cgroup (created by the init under the
   pod's, limits written), oom_score_adj.
1. ``unshare(CLONE_NEWNS)``: the app's own mount namespace, a private copy of the pod's.
2. ``plan_filesystem``: fresh /proc (the pod's pid namespace), a minimal /dev (a nodev tmpfs
   with null, zero, full, random, urandom, tty bound from the host, a new devpts instance,
   /dev/shm, the fd symlinks; no other host device), /sys read-only, tmpfs /tmp, the generated
   fallback /etc/hosts (if any), the pod's volumes (an implicit Docker volume has been filled
   from the image before the root was mounted: ``start.copy_up_before_start``), the
   resolv.conf/hosts the flags or CNI asked for (over the volumes: rkt's precedence; ``host``
   binds the host's file read-only), then the read-only remount of the root if asked. A pod
   whose CNI networks are still being attached waits for them ("await", the attacher's
   barrier: network.py) right before its first resolv.conf/hosts bind: those files come from
   the networks' results. Every target is resolved INSIDE the app's root (openat2
   RESOLVE_IN_ROOT), so an image's symlinks cannot redirect a mount onto the host.
3. pivot_root into the app's root; the old root is detached (nothing of it stays). Then
   ``mask_ops``: rkt's read-only and inaccessible /proc and /sys paths (masks.py), on the app's
   own procfs and sysfs, so plain paths cannot be redirected by the image.
4. ``credential_steps``: capability bounding set (rkt's 14 by default), no_new_privs, groups,
   gid, uid, then the remaining capability sets (and the ambient set of a non-root app whose
   retain-set asks).
5. chdir to the working directory, PATH lookup, the seccomp filter loaded, ``execve`` with the
   app's environment.

``rkt enter`` runs steps 0 (oom score only), 4 and 5 the same way (``enter_plan``).

Imports only the standard library, ``rkt.host`` and ``rkt.stage1.common``.
"""

from __future__ import annotations

import os

from rkt.host.api import (
    CLONE_NEWNS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_STRICTATIME,
    TargetKind,
)
from rkt.host.cgroups import join_file
from rkt.records import NamedTuple
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.masks import plan_masks

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from rkt.stage1.common.masks import MaskKind
    from rkt.stage1.common.seccomp import SeccompPolicy

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (
    ("/dev/ptmx", "pts/ptmx"),
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
)
EXIT_SETUP_FAILED = 254


class FsOp(NamedTuple):
    """One filesystem step inside the app's root: a mount, or a symlink (``fstype`` "symlink")."""

    target: str
    source: str | None
    fstype: str | None
    flags: int = 0
    data: str | None = None
    # TargetKind, or "file-if-source": as "file", but nothing is mounted when ``source`` does
    # not exist (an optional name file)
    create: str | None = "dir"
    copy_up: str | None = None  # a volume bind: fill ``source`` from the image first (marker)


def plan_filesystem(
    spec: AppSpec, *, is_file: Callable[[str], bool] = os.path.isfile
) -> list[FsOp]:
    """The mounts and symlinks that make the app's view of the filesystem, in order (pure)."""
    ops = [
        FsOp("/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC),
        # nodev: a node the app makes here (CAP_MKNOD is in rkt's default set) opens nothing;
        # the nodes it is given are bind mounts of the host's, mounts of their own
        FsOp(
            "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=755,size=65536k"
        ),
    ]
    ops += [FsOp(f"/dev/{n}", f"/dev/{n}", None, MS_BIND, create="file") for n in DEV_NODES]
    ops += [
        FsOp(
            "/dev/pts",
            "devpts",
            "devpts",
            MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        FsOp("/dev/shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"),
    ]
    ops += [FsOp(path, None, "symlink", data=target, create=None) for path, target in DEV_SYMLINKS]
    ops += [
        FsOp("/sys", "sysfs", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC),
        FsOp("/tmp", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    ]
    ops += _name_file_ops(spec, over_volumes=False)
    for vol in spec.mounts:
        kind: TargetKind = "file" if is_file(vol.source) else "dir"
        ops.append(
            FsOp(
                vol.target,
                vol.source,
                None,
                MS_BIND | (MS_REC if vol.recursive else 0),
                create=kind,
                copy_up=vol.copy_up,
            )
        )
        if vol.read_only:
            ops.append(FsOp(vol.target, None, None, MS_REMOUNT | MS_BIND | MS_RDONLY, create=None))
    ops += _name_file_ops(spec, over_volumes=True)
    if spec.read_only_rootfs:
        ops.append(FsOp("/", None, None, MS_REMOUNT | MS_BIND | MS_RDONLY, create=None))
    return ops


def _name_file_ops(spec: AppSpec, *, over_volumes: bool) -> list[FsOp]:
    """Binds of resolv.conf/hosts: a file on a file, its target resolved inside the root."""
    ops = []
    for nf in spec.name_files:
        if nf.over_volumes != over_volumes:
            continue
        create = "file-if-source" if nf.optional else "file"
        ops.append(FsOp(nf.target, nf.source, None, MS_BIND, create=create))
        if nf.read_only:
            ops.append(
                FsOp(
                    nf.target, None, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, create=None
                )
            )
    return ops


def mask_ops(masks: list[tuple[str, MaskKind]], exists: Callable[[str], bool]) -> list[FsOp]:
    """Mounts that mask kernel paths (inside the app's root, after pivot_root); absent paths
    are skipped (a kernel without /proc/kcore has nothing to hide there)."""
    ops: list[FsOp] = []
    for path, kind in masks:
        if not exists(path):
            continue
        if kind == "read-only":
            ops.append(FsOp(path, path, None, MS_BIND | MS_REC, create=None))
            ops.append(
                FsOp(path, None, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, create=None)
            )
        elif kind == "empty-dir":
            ops.append(
                FsOp(
                    path,
                    "tmpfs",
                    "tmpfs",
                    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=0,mode=000",
                    create=None,
                )
            )
        else:
            ops.append(FsOp(path, "/dev/null", None, MS_BIND, create=None))
    return ops


class LaunchPlan:
    """The steps for ``app-exec``, encoded as NUL-terminated strings: a keyword then its
    arguments ("" is "none" for an optional one). See app-exec.c for the steps' meaning."""

    def __init__(self, label: str) -> None:
        self.steps: list[tuple[str, ...]] = []
        self.step("label", label)

    def step(self, keyword: str, *args: object) -> None:
        self.steps.append((keyword, *("" if a is None else str(a) for a in args)))

    def keywords(self) -> list[str]:
        return [step[0] for step in self.steps]

    def encode(self) -> bytes:
        tokens = [token for step in self.steps for token in step]
        data = encode_args(tuple(tokens))
        if data.count(b"\0") != len(tokens):
            raise ValueError("a launch plan value contains a NUL byte")
        return data


def _mask(caps: tuple[int, ...]) -> int:
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    return mask


def credential_steps(plan: LaunchPlan, spec: AppSpec) -> None:
    """Bounding set, no_new_privs, groups and ids, the remaining capability sets, seccomp."""
    if spec.capabilities is not None:
        plan.step("bounding", _mask(spec.capabilities))
    if spec.ambient:
        plan.step("keepcaps")  # setuid to the app's user must not clear the permitted set
    if spec.no_new_privs:
        plan.step("nnp")
    groups = spec.supplementary_gids
    plan.step("ids", spec.uid, spec.gid, len(groups), *groups)
    if spec.capabilities is not None:
        plan.step("caps", _mask(spec.capabilities))
    if spec.ambient:
        plan.step("ambient", _mask(spec.ambient))


def seccomp_step(plan: LaunchPlan, spec: AppSpec, prebuilt: bytes | None = None) -> None:
    """The app's seccomp filter, if any, loaded by the exec step after chdir and the PATH
    lookup. ``prebuilt``: the stage1's ``seccomp-default`` (``read_prebuilt``): rkt's default
    filter compiled at ``make setup``, given to app-exec as is ("seccomp-bpf") when the app's
    rules are byte for byte the ones it was compiled from (~1 ms of every app start); any other
    rules are compiled by app-exec where the step is. The planner puts it first, so an app
    whose pod is still attaching its networks compiles it meanwhile."""
    if spec.seccomp is None:
        return
    args = seccomp_args(spec.seccomp)
    bpf = _prebuilt_bpf(prebuilt, args) if prebuilt else None
    if bpf is not None:
        plan.step("seccomp-bpf", bpf.hex())
    else:
        plan.step("seccomp", *args)


def seccomp_args(policy: SeccompPolicy) -> tuple[object, ...]:
    """The seccomp step's arguments (app-exec.c): RETAIN ERRNO N NAME..., names sorted, unique."""
    names = sorted(set(policy.syscalls))
    return (int(policy.mode == "retain"), policy.errno, len(names), *names)


PREBUILT = "seccomp-default"  # in the stage1 rootfs, beside app-exec (rkt.stage1.ns.prebuilt)


def encode_args(args: tuple[object, ...]) -> bytes:
    """A step's arguments as a launch plan encodes them (``LaunchPlan.encode``)."""
    return "".join(f"{a}\0" for a in args).encode("utf-8", "surrogateescape")


def read_prebuilt(stage1_rootfs: str) -> bytes | None:
    """The stage1's prebuilt default filter (its step's arguments, then the BPF); None when the
    stage1 has none (an older image: every filter is compiled)."""
    try:
        with open(os.path.join(stage1_rootfs, PREBUILT), "rb") as f:
            return f.read()
    except OSError:
        return None


def _prebuilt_bpf(prebuilt: bytes, args: tuple[object, ...]) -> bytes | None:
    step = encode_args(args)
    bpf = prebuilt[len(step) :]
    if not prebuilt.startswith(step) or not bpf or len(bpf) % 8:
        return None  # other rules (or a torn file): app-exec compiles them
    return bpf


def exec_step(plan: LaunchPlan, spec: AppSpec, argv: tuple[str, ...]) -> None:
    env = [f"{k}={v}" for k, v in spec.env_dict().items()]
    plan.step("exec", spec.working_dir, len(argv), *argv, len(env), *env)


def app_plan(
    spec: AppSpec,
    root: str,
    cgroup_dirs: tuple[str, ...] = (),
    network_fd: int | None = None,
    prebuilt: bytes | None = None,
    *,
    own_sysfs: bool = False,
    console: str | None = None,
) -> LaunchPlan:
    """Everything from the app's cgroup to its ``execve`` (the steps in the module doc).

    ``own_sysfs``: the app's /sys is sure to be a sysfs mount of its own (no user namespace,
    where app-exec falls back to binding the current one): see ``app_masks``.

    ``console``: the caller's terminal (``--interactive``: the app's stdio), bound at
    /dev/console, so that the app finds its name (``ttyname``, ``tty``) as it did in rkt; its
    own /dev/pts is a new instance, where the caller's pty is not.

    ``network_fd``: the read end of the pod's network barrier (``network.PendingNetwork``); the
    app waits there ("await") before its first resolv.conf/hosts bind, whose files the network
    attacher writes, and never goes on if the network failed. ``prebuilt``: see
    ``seccomp_step``."""
    plan = LaunchPlan(f'stage1: app "{spec.name}"')
    seccomp_step(plan, spec, prebuilt)
    for d in cgroup_dirs:
        plan.step("write", join_file(d), "0")
    if spec.limits.oom_score_adj is not None:
        plan.step("oom-score-adj", spec.limits.oom_score_adj)
    plan.step("unshare", CLONE_NEWNS)
    plan.step("root", root)
    name_files = {(nf.target, nf.source) for nf in spec.name_files}
    ops = plan_filesystem(spec)
    for op in ops:
        if network_fd is not None and (op.target, op.source) in name_files:
            plan.step("await", network_fd)
            network_fd = None
        if op.fstype == "symlink":
            plan.step("symlink", op.target, op.data)
        else:
            plan.step("mount", op.target, op.source, op.fstype, op.flags, op.data, op.create)
    if network_fd is not None:
        plan.step("await", network_fd)
    if console is not None:
        plan.step("mount", "/dev/console", console, None, MS_BIND, None, "file")
    plan.step("pivot")
    if spec.mask_paths:  # app-exec skips the paths this kernel does not have
        for op in mask_ops(app_masks(ops, own_sysfs=own_sysfs), lambda path: True):
            plan.step("mask", op.target, op.source, op.fstype, op.flags, op.data)
    credential_steps(plan, spec)
    exec_step(plan, spec, spec.exec)
    return plan


def app_masks(ops: list[FsOp], *, own_sysfs: bool = False) -> list[tuple[str, MaskKind]]:
    """rkt's masks for an app whose mounts are ``ops``. With ``own_sysfs``, the app's /sys is
    a read-only sysfs mount of its own, and every path under it is read-only too: the read-only
    masks would only repeat that (two mount calls each), unless something else was mounted at
    or under /sys (a volume), which they then cover as rkt's did."""
    masks = plan_masks(frozenset())
    if not own_sysfs:
        return masks
    targets = [os.path.normpath("/" + op.target.lstrip("/")) for op in ops if op.fstype != "sysfs"]
    over_sys = any(t == "/sys" or t.startswith("/sys/") for t in targets)
    sys_read_only = any(op.fstype == "sysfs" and op.flags & MS_RDONLY for op in ops)
    if over_sys or not sys_read_only:
        return masks
    return [(p, kind) for p, kind in masks if not (kind == "read-only" and p.startswith("/sys/"))]


def enter_plan(
    spec: AppSpec, command: tuple[str, ...], prebuilt: bytes | None = None
) -> LaunchPlan:
    """``rkt enter``: the app's OOM score, credentials, working directory and environment."""
    plan = LaunchPlan(f"stage1 enter: {command[0]}")
    seccomp_step(plan, spec, prebuilt)
    if spec.limits.oom_score_adj is not None:
        plan.step("oom-score-adj", spec.limits.oom_score_adj)
    credential_steps(plan, spec)
    exec_step(plan, spec, command)
    return plan


def exec_launcher(program: str | int, plan: LaunchPlan, argv0: str = "app-exec") -> NoReturn:
    """``execve`` app-exec or pod-init (a path, or an fd of it) with the plan on an inherited
    memfd."""
    data = plan.encode()
    fd = os.memfd_create("rkt-launch-plan", 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    os.execve(program, [argv0, str(fd)], {})


def copy_up_volumes(spec: AppSpec, root: str) -> None:
    """Fill implicit Docker volumes from the image (once per pod), while the root is still the
    bare merged overlay: nothing is mounted in it yet."""
    ops = [op for op in plan_filesystem(spec) if op.copy_up is not None and op.source]
    if not ops:
        return
    from rkt.stage1.common.copyup import copy_up_once

    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for op in ops:
            copy_up_once(root_fd, op.target, str(op.source), str(op.copy_up))
    finally:
        os.close(root_fd)
