"""``rkt enter [--app=NAME] UUID [CMD...]``: run a command inside an app of a running pod.

stage0 only picks the app and the command and then becomes the stage1 enter entrypoint
(docs/stage1-abi.md §3 enter), which joins the app's namespaces, root, user, capability bounding
set, seccomp filter and cgroup. The default command is ``/bin/bash`` as in rkt, or ``/bin/sh`` when
the app's image has no bash.
"""

from __future__ import annotations

import argparse
import os
import sys

from rkt import abi, jsonio
from rkt.cli.commands.status import lookup, pods_root
from rkt.errors import PodError, UsageError
from rkt.pod.pod import Pod
from rkt.settings import GlobalOptions
from rkt.stage0.run import exec_enter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", default=None, help="the app to enter (if the pod has several)")
    parser.add_argument("uuid", metavar="UUID", help="pod UUID or unique prefix")
    parser.add_argument(
        "command",
        metavar="CMD",
        nargs=argparse.REMAINDER,
        help="command and arguments (default /bin/bash, or /bin/sh if the app has no bash)",
    )


def app_names(pod: Pod) -> list[str]:
    try:
        doc = jsonio.loads(pod.read_manifest())
        return [str(app["name"]) for app in doc["apps"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PodError(f'pod "{pod.uuid}": its pod manifest is not valid') from exc


def choose_app(pod: Pod, wanted: str | None) -> str:
    names = app_names(pod)
    if wanted is not None:
        if wanted not in names:
            raise UsageError(f'pod "{pod.uuid}": has no app "{wanted}" (apps: {", ".join(names)})')
        return wanted
    if len(names) != 1:
        raise UsageError(
            f'pod "{pod.uuid}": has several apps ({", ".join(names)}); choose one with --app'
        )
    return names[0]


def default_command(pod: Pod, app: str) -> list[str]:
    """``/bin/bash`` when the app's image has it, else ``/bin/sh``. An image of layers has
    them in ``lowerdirs`` (top-most first; ``rootfs`` is only the top one): bash counts from
    the top-most layer that has it, unless a layer above whites it out."""
    info = pod.file(abi.appsinfo(app))
    try:
        layers = [line for line in (info / "lowerdirs").read_text().splitlines() if line]
    except OSError:
        layers = [str(info / "rootfs")]
    return ["/bin/bash"] if _has_bash(layers) else ["/bin/sh"]


def _has_bash(layers: list[str]) -> bool:
    import stat

    for layer in layers:
        # /bin may be a link to usr/bin (merged /usr): looked at through usr/bin, never
        # followed (an absolute link would lead to the host's /usr/bin)
        wheres = ["usr/bin/bash"]
        if not os.path.islink(os.path.join(layer, "bin")):
            wheres.insert(0, "bin/bash")
        for where in wheres:
            try:
                st = os.lstat(os.path.join(layer, where))
            except OSError:
                continue
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            return not whiteout
    return False


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    pod = lookup(pods_root(opts, "enter"), args.uuid)
    if not pod.is_running():
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}, not running')
    if pod.pid() is None:
        raise PodError(f'pod "{pod.uuid}": is not ready yet (no pid file)')
    app = choose_app(pod, args.app)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        command = default_command(pod, app)
    sys.stdout.flush()
    sys.stderr.flush()
    exec_enter(pod, app, command)
