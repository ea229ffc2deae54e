"""The run entrypoint of the ns flavor (docs/stage1-abi.md §3 "run").

This process is the one stage0 exec'd and stays the caller's child, so limits the caller runs
under (``systemd-run -p ...``) hold for the pod: the pod's cgroup is created under the caller's.
It starts the pod's networks first (``rkt.stage1.ns.network``: for CNI networks a pinned netns
and the attacher, which runs beside the rest; adopted from stage0's head start when there was
one), resolves every app's launch (a bad manifest fails here and undoes the networks), creates
the pod cgroup (``subcgroup``). A pod then goes to the flavor's native ``pod-init``
(``rkt.stage1.ns.start``: spawned right after the networks are started, so it unshares the pod's
namespaces while the apps are resolved; a ``--private-users`` pod's is exec'd, through its
user-namespace helper,
``rkt.stage1.ns.userns``); a mutable pod's plan adds the control socket (``listen``), which
the supervisor serves. Either way the process stage0 exec'd ends up as
``run-waiter``: it forwards SIGTERM/SIGHUP/SIGINT to the init and exits with its status.

Imports only the standard library, ``rkt.abi``, ``rkt.errors``, ``rkt.host``, ``rkt.stage1`` (the
app resolution and the plans only once the networks are being attached).
"""

from __future__ import annotations

import gc
import os
import sys

from rkt import abi
from rkt.errors import PodError
from rkt.host.api import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS
from rkt.stage1.common.args import RunArgs, parse_run
from rkt.stage1.common.entry import run_entrypoint
from rkt.stage1.common.poddir import CGROUP_STATE, PodDir, write_atomic
from rkt.stage1.ns.namefiles import with_name_files
from rkt.stage1.ns.network import PendingNetwork

# The rest (app resolution, cgroups, plans: ~2.5 ms of imports) is imported where it is used,
# after the network attacher is started: the plugins work meanwhile.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn

    from rkt.host.api import Host
    from rkt.host.cgroups import CgroupBackend, PodCgroup
    from rkt.stage1.common.appspec import AppSpec
    from rkt.stage1.ns.start import SpawnedInit


def namespace_flags(args: RunArgs) -> int:
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID
    if args.net_mode == "none":
        flags |= CLONE_NEWNET
    return flags


def check_lock_fd() -> int:
    raw = os.environ.get(abi.ENV_LOCK_FD, "")
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError) as exc:
        raise PodError(f"{abi.ENV_LOCK_FD}={raw!r} is not an open file descriptor") from exc
    return fd


def prepare_apps(pod: PodDir, args: RunArgs) -> list[AppSpec]:
    from rkt.stage1.common.appspec import build_app_spec

    manifest = pod.read_manifest()
    if not manifest.apps and not args.mutable:
        raise PodError(f'pod "{pod.uuid}": has no apps')
    if args.interactive and (len(manifest.apps) != 1 or args.mutable):
        raise PodError(f'pod "{pod.uuid}": --interactive needs exactly one app, not mutable')
    if args.mutable and args.private_users is not None:
        raise PodError(f'pod "{pod.uuid}": --mutable with --private-users is not supported')
    specs = [build_app_spec(pod, manifest, app, args.insecure) for app in manifest.apps]
    for spec in specs:
        check_volume_sources(spec)
    pod.ensure_stage1_dirs()
    return specs  # saved by start_pod, once their resolv.conf/hosts are known


def check_volume_sources(spec: AppSpec) -> None:
    """A volume whose source does not exist (a host path) is refused naming it: its bind would
    fail later in app-exec naming only the target."""
    for mount in spec.mounts:
        if not os.path.lexists(mount.source):
            raise PodError(
                f'app "{spec.name}": the volume at "{mount.target}": source "{mount.source}" '
                "does not exist"
            )


def save_app_spec(pod: PodDir, spec: AppSpec) -> None:
    """The app's final environment (ABI) and its resolved launch (private, for init and enter)."""
    from rkt.stage1.common.appspec import app_spec_path

    app_spec_path(pod, spec.name).parent.mkdir(exist_ok=True)
    env = "".join(f"{k}={v}\n" for k, v in spec.env)
    write_atomic(pod.file(f"{abi.ENV_DIR}/{spec.name}"), env.encode())
    write_atomic(app_spec_path(pod, spec.name), spec.to_json())


def create_cgroup(pod: PodDir) -> tuple[CgroupBackend | None, PodCgroup | None]:
    from rkt.host.cgroups import detect_backend

    backend = detect_backend()
    name = f"rkt-{pod.uuid}"
    # The private record before the directories: gc must find every one even if we die while
    # they are made. It says what ``create`` makes unless a hierarchy refuses us (rewritten then).
    planned = backend.planned(name)
    record = pod.file(CGROUP_STATE)
    if planned.dirs:
        write_atomic(record, planned.to_json())
    cgroup = backend.create(name)
    if not cgroup.dirs:  # (limits an app asks for refuse to start: start.create_app_cgroup)
        record.unlink(missing_ok=True)
        print(
            f'stage1: warning: pod "{pod.uuid}": no cgroup hierarchy is writable here: the pod '
            "runs without rkt's default pids limit and device allow-list",
            file=sys.stderr,
        )
        return None, None
    if cgroup != planned:
        write_atomic(record, cgroup.to_json())
    write_atomic(pod.file(abi.SUBCGROUP_FILE), (cgroup.relative + "\n").encode())
    return backend, cgroup


def start_pod(
    host: Host,
    pod: PodDir,
    args: RunArgs,
    specs: list[AppSpec],
    backend: CgroupBackend | None,
    cgroup: PodCgroup | None,
    network: tuple[int, str] | None = None,
    netns: int | None = None,
    spawned: SpawnedInit | None = None,
) -> NoReturn:
    """Exec ``pod-init`` with the pod's plan: it unshares, forks the pod init, publishes its
    pid and becomes the waiter (a ``--private-users`` pod's plan: stage1/ns/userns.py). With
    ``spawned`` (start.SpawnedInit) the plan goes to the pod-init already running, and this
    process becomes the waiter.

    ``network``: the CNI networks are still being attached (``PendingNetwork.barrier``), the
    pod's apps wait for them; else they are up and resolv.conf/hosts written. ``netns``: the
    pod's CNI namespace, which pod-init joins first (``PendingNetwork.netns_for_init``; this
    process stays in the host's); None without CNI networks. The stop signals and SIGCHLD stay
    blocked from here on (pod-init blocks them first thing): pending until the native programs
    exec'd next read them."""
    from rkt.stage1.ns.start import copy_up_before_start, exec_pod_init, has_copy_up, pod_plan

    settled = network is None
    specs = [with_name_files(pod, spec, settled=settled) for spec in specs]  # resolv.conf/hosts
    for spec in specs:
        save_app_spec(pod, spec)
    if has_copy_up(specs):  # as host root, before any root of the pod is mounted for good
        copy_up_before_start(host, pod, specs)
    sys.stdout.flush()
    sys.stderr.flush()
    if args.private_users is not None:  # issue 4: see stage1/ns/userns.py
        from rkt.stage1.ns.userns import exec_userns_pod

        exec_userns_pod(pod, args, specs, backend, cgroup, netns)
    plan = pod_plan(
        pod, args, specs, namespace_flags(args), backend, cgroup, network, netns, spawned
    )
    exec_pod_init(pod, plan, spawned, args.interactive)  # the native pod-init does the rest


def _run(argv: list[str]) -> int:
    # No cyclic collections here: this process only prepares and ends in an exec of pod-init.
    gc.disable()
    args = parse_run(argv)
    check_lock_fd()
    pod = PodDir.from_cwd(args.uuid)
    from rkt.host.linux import LinuxHost

    host = LinuxHost()
    # CNI networks first: their plugins work while the apps are resolved, the cgroups made and
    # the plans written (PendingNetwork.start returns with the network attacher running).
    network = PendingNetwork.start(pod, args)
    from rkt.stage1.ns.native import check_programs

    spawned = None
    try:
        check_programs(pod.path)
        barrier = None
        if args.private_users is not None:
            specs = prepare_apps(pod, args)
            backend, cgroup = create_cgroup(pod)
            netns = network.settle()  # resolv.conf/hosts are bound idmapped before pod-init runs
        else:
            barrier = network.barrier()  # pod-init's apps wait for it
            netns = network.netns_for_init()  # pod-init joins it
            # pod-init unshares the namespaces meanwhile (start.SpawnedInit)
            from rkt.stage1.ns.start import SpawnedInit

            spawned = SpawnedInit(pod.path, netns, namespace_flags(args))
            specs = prepare_apps(pod, args)
            backend, cgroup = create_cgroup(pod)
        start_pod(host, pod, args, specs, backend, cgroup, barrier, netns, spawned)
    except BaseException:
        if spawned is not None:
            spawned.abort()
        network.abort()
        raise


def main(argv: list[str] | None = None) -> int:
    return run_entrypoint("run", _run, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
