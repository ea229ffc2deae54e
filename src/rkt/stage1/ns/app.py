"""The app/add, app/start, app/stop and app/rm entrypoints (docs/stage1-abi.md §3, version 3).

Each is a short-lived process that checks its arguments and the pod, and hands the action to the
running pod's supervisor (``pod-supervisor``, PID 1 of the pod) over the control socket
(``rkt.stage1.common.control``); it returns when the supervisor says the action is done. ``add``
first resolves the app's launch from the pod manifest stage0 has just rewritten (user, group,
capabilities, seccomp, limits, volumes), with the pod's insecure options from
``stage1/config.json``, so an app that cannot be launched is refused before the pod is asked to do
anything; it also creates the app's cgroup and writes its launch plan and the record the
supervisor mounts and starts it from (``start.prepare_added_app``). ``rm`` removes the app's
cgroup and files once the supervisor has stopped it and unmounted its root.

Imports only the standard library, ``rkt.abi``, ``rkt.errors``, ``rkt.stage1``.
"""

from __future__ import annotations

import os
import sys

from rkt import abi, jsonio
from rkt.errors import PodError
from rkt.stage1.common.appspec import build_app_spec
from rkt.stage1.common.args import INSECURE_OPTIONS, AppArgs, parse_app
from rkt.stage1.common.control import ControlRequest, call_pod_init
from rkt.stage1.common.entry import run_entrypoint
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.ns._pod import open_pod_init


def read_config(pod: PodDir) -> dict[str, object]:
    try:
        config = jsonio.loads(pod.file(abi.STAGE1_CONFIG).read_bytes())
    except (OSError, ValueError) as exc:
        raise PodError(f'pod "{pod.uuid}": cannot read its stage1 config') from exc
    if not isinstance(config, dict):
        raise PodError(f'pod "{pod.uuid}": its stage1 config is not an object')
    return config


def check_mutable_pod(pod: PodDir) -> dict[str, object]:
    config = read_config(pod)
    if config.get("mutable") is not True:
        raise PodError(f'pod "{pod.uuid}": is not mutable')
    pidfd = open_pod_init(pod)
    if pidfd is None:
        raise PodError(f'pod "{pod.uuid}": is not running')
    os.close(pidfd)
    return config


def resolve_app(pod: PodDir, args: AppArgs, config: dict[str, object]) -> None:
    """app/add: the app's launch, resolved and saved for the init (and later for enter)."""
    from rkt.stage1.ns.namefiles import with_name_files
    from rkt.stage1.ns.run import check_volume_sources, save_app_spec
    from rkt.stage1.ns.start import prepare_added_app

    manifest = pod.read_manifest()
    pod_app = manifest.app(args.app)
    if pod_app is None:
        raise PodError(f'pod "{pod.uuid}": its manifest has no app "{args.app}"')
    raw = config.get("insecure")
    given = raw if isinstance(raw, list) else []
    insecure = frozenset(o for o in given if isinstance(o, str)) & INSECURE_OPTIONS
    spec = with_name_files(pod, build_app_spec(pod, manifest, pod_app, insecure))
    check_volume_sources(spec)
    save_app_spec(pod, spec)
    prepare_added_app(pod, spec)


def _action(action: str, argv: list[str]) -> int:
    args = parse_app(argv)
    pod = PodDir.from_cwd(args.uuid)
    config = check_mutable_pod(pod)
    if action == "add":
        resolve_app(pod, args, config)
    try:
        call_pod_init(pod.path, ControlRequest(action, args.app))
    except BaseException:
        if action == "add":  # refused: nothing of the app stays (its cgroup, plan, record)
            from rkt.stage1.ns.start import forget_removed_app

            forget_removed_app(pod, args.app)
        raise
    if action == "rm":
        from rkt.stage1.ns.start import forget_removed_app

        forget_removed_app(pod, args.app)
    return 0


def main_add(argv: list[str] | None = None) -> int:
    return run_entrypoint("app/add", lambda a: _action("add", a), _argv(argv))


def main_start(argv: list[str] | None = None) -> int:
    return run_entrypoint("app/start", lambda a: _action("start", a), _argv(argv))


def main_stop(argv: list[str] | None = None) -> int:
    return run_entrypoint("app/stop", lambda a: _action("stop", a), _argv(argv))


def main_rm(argv: list[str] | None = None) -> int:
    return run_entrypoint("app/rm", lambda a: _action("rm", a), _argv(argv))


def _argv(argv: list[str] | None) -> list[str]:
    return sys.argv[1:] if argv is None else argv
