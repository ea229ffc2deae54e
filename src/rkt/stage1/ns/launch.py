"""Starting one app inside the pod (runs in a child of the pod init, then execs the app).

Order (each step a function):
0. into the app's cgroup (created by the init under the pod's, limits written), oom_score_adj.
1. ``unshare(CLONE_NEWNS)``: the app's own mount namespace, a private copy of the pod's.
2. ``prepare_filesystem``: fresh /proc (the pod's pid namespace), a minimal /dev (tmpfs with
   null, zero, full, random, urandom, tty bound from the host, a new devpts instance, /dev/shm,
   the fd symlinks; no other host device), /sys read-only, tmpfs /tmp, the generated fallback
   /etc/hosts (if any), the pod's volumes (an implicit Docker volume filled from the image first:
   ``copyup.py``), the resolv.conf/hosts the flags or CNI asked for (over the volumes: rkt's
   precedence; ``host`` binds the host's file read-only), then the read-only remount of the root
   if asked. Every target is resolved INSIDE the app's root
   (openat2 RESOLVE_IN_ROOT), so an image's symlinks cannot redirect a mount onto the host.
3. ``enter_root``: pivot_root into the app's root; the old root is detached (nothing of it stays).
   Then ``mask_kernel_paths``: rkt's read-only and inaccessible /proc and /sys paths (masks.py),
   on the app's own procfs and sysfs, so plain paths cannot be redirected by the image.
4. ``apply_credentials``: capability bounding set (rkt's 14 by default), no_new_privs, groups,
   gid, uid, then the remaining capability sets (and the ambient set of a non-root app whose
   retain-set asks), and the seccomp filter, loaded last.
5. chdir to the working directory and ``execve`` with the app's environment.

Imports only the standard library, ``rkt.host`` and ``rkt.stage1.common``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import NamedTuple, NoReturn

from rkt.host.api import (
    CLONE_NEWNS,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_STRICTATIME,
    Host,
    TargetKind,
)
from rkt.host.cgroups import join_file
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.copyup import copy_up_once
from rkt.stage1.common.masks import MaskKind, plan_masks

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
    create: TargetKind | None = "dir"
    copy_up: str | None = None  # a volume bind: fill ``source`` from the image first (marker)


def plan_filesystem(
    spec: AppSpec, *, is_file: Callable[[str], bool] = os.path.isfile
) -> list[FsOp]:
    """The mounts and symlinks that make the app's view of the filesystem, in order (pure)."""
    ops = [
        FsOp("/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC),
        FsOp("/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
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
        ops.append(FsOp(nf.target, nf.source, None, MS_BIND, create="file"))
        if nf.read_only:
            ops.append(
                FsOp(
                    nf.target, None, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, create=None
                )
            )
    return ops


def prepare_filesystem(host: Host, root_fd: int, ops: list[FsOp]) -> None:
    # Docker copy-up first, while the root is still the bare merged overlay (no /proc, /tmp or
    # other volume is mounted in it yet): the volume gets exactly the image's content.
    for op in ops:
        if op.copy_up is not None and op.source is not None:
            copy_up_once(root_fd, op.target, op.source, op.copy_up)
    for op in ops:
        if op.fstype == "symlink":
            host.symlink_in_root(root_fd, op.target, str(op.data))
            continue
        try:
            host.mount_in_root(
                root_fd, op.target, op.source, op.fstype, op.flags, op.data, create=op.create
            )
        except PermissionError:
            if op.fstype != "sysfs":
                raise
            # In a user namespace, sysfs mounts only for a network namespace it owns (--net=none);
            # otherwise bind the current /sys, read-only.
            host.mount_in_root(root_fd, op.target, "/sys", None, MS_BIND | MS_REC)
            host.mount_in_root(root_fd, op.target, None, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def enter_root(host: Host, root: str) -> None:
    """pivot_root into ``root`` (a mount point) and drop the old root entirely."""
    os.chdir(root)
    host.pivot_root(".", ".")  # the old root is stacked on "/": detach it at once
    host.umount(".", MNT_DETACH)
    os.chdir("/")


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


def mask_kernel_paths(host: Host, spec: AppSpec) -> None:
    if not spec.mask_paths:
        return
    for op in mask_ops(plan_masks(frozenset()), os.path.lexists):
        host.mount(op.source, op.target, op.fstype, op.flags, op.data)


def apply_credentials(host: Host, spec: AppSpec) -> None:
    """Bounding set, no_new_privs, groups and ids, the remaining capability sets, seccomp."""
    if spec.capabilities is not None:
        host.drop_bounding_set(spec.capabilities)
    if spec.ambient:
        host.keep_capabilities()  # setuid to the app's user must not clear the permitted set
    if spec.no_new_privs:
        host.set_no_new_privs()
    host.set_identity(spec.uid, spec.gid, spec.supplementary_gids)
    if spec.capabilities is not None:
        host.limit_capabilities(spec.capabilities)
    if spec.ambient:
        host.raise_ambient(spec.ambient)
    if spec.seccomp is not None:  # last: the filter also applies to us until execve
        policy = spec.seccomp
        host.load_seccomp(policy.mode == "retain", policy.syscalls, policy.errno)


def enter_cgroup(host: Host, spec: AppSpec, cgroup_dirs: tuple[str, ...]) -> None:
    """Move ourselves into the app's cgroup and set our OOM score (before anything else)."""
    for d in cgroup_dirs:
        host.write_file(join_file(d), "0")  # just forked: one thread
    if spec.limits.oom_score_adj is not None:
        host.write_file("/proc/self/oom_score_adj", str(spec.limits.oom_score_adj))


def find_executable(name: str, env: dict[str, str]) -> str:
    if "/" in name:
        return name
    for directory in env.get("PATH", "").split(":"):
        candidate = f"{directory or '.'}/{name}"
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(2, "executable not found in PATH", name)


def reset_signals() -> None:
    """What a freshly exec'd program expects: default dispositions (Python ignores SIGPIPE and
    SIGXFSZ, and exec keeps "ignored"), nothing blocked, no wakeup fd."""
    signal.set_wakeup_fd(-1)
    for signum in (
        signal.SIGPIPE,
        signal.SIGXFSZ,
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGCHLD,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGTSTP,
    ):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def exec_app(spec: AppSpec, argv: tuple[str, ...], cwd: str) -> NoReturn:
    env = spec.env_dict()
    os.chdir(cwd)
    path = find_executable(argv[0], env)
    os.closerange(3, 1 << 20)  # the lock fd and every other descriptor stay out of the app
    os.execve(path, list(argv), env)


def launch_app(
    host: Host,
    spec: AppSpec,
    root: str,
    stdio: tuple[int, int, int] | None,
    cgroup_dirs: tuple[str, ...] = (),
) -> NoReturn:
    """The body of the forked app child; never returns."""
    try:
        reset_signals()
        enter_cgroup(host, spec, cgroup_dirs)
        if stdio is not None:
            os.setsid()  # its own session: the caller's terminal signals go to rkt, not here
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
        host.unshare(CLONE_NEWNS)
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        prepare_filesystem(host, root_fd, plan_filesystem(spec))
        os.close(root_fd)
        enter_root(host, root)
        mask_kernel_paths(host, spec)
        apply_credentials(host, spec)
        exec_app(spec, spec.exec, spec.working_dir)
    except BaseException as exc:  # report in the app's own stderr (the log), then die
        code = EXIT_SETUP_FAILED
        if isinstance(exc, OSError) and exc.filename == spec.exec[0]:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
        try:
            os.write(2, f'stage1: app "{spec.name}": {_describe(exc)}\n'.encode())
        finally:
            os._exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        what = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{what}".lower()
    return str(exc) or type(exc).__name__
