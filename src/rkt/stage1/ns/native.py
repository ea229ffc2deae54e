"""Handing the pod over to the flavor's native resident programs (src/rkt/stage1/native/*.c).

The ns flavor's stage1 image ships four small static programs beside its Python entrypoints;
the Python processes set the pod up and then ``exec`` them, so what stays resident for the pod's
lifetime is a few hundred kB instead of two interpreters (docs/architecture.md "Native resident
processes"), and an app starts without Python work in its own process:

- ``run-waiter``: the run process (and a ``--private-users`` pod's helper) once the pod init
  is forked, or about to be (``--spawned``): waits for it, forwards SIGTERM/SIGHUP/SIGINT as
  SIGTERM, exits with its status.
- ``pod-supervisor``: the pod init (PID 1) once every app is started: copies output to the
  terminal and the CRI logs, reaps, writes exit statuses, stops the pod as rkt does.
- ``pod-init``: an ordinary pod's start, spawned by the run entrypoint during its Python set-up:
  unshares meanwhile, then forks the init as the run process's child; the init mounts the app
  roots, starts the apps and becomes ``pod-supervisor`` (``rkt.stage1.ns.start``).
- ``app-exec``: each app's child of the init (and ``rkt enter``'s child): performs the launch
  plan ``rkt.stage1.ns.launch`` made (mounts, pivot_root, credentials, seccomp), execs the app.

Both read signals from a signalfd; ``pod-init`` blocks ``HANDOFF_SIGNALS`` first thing, so a stop
request sent before their exec stays pending instead of being lost.

Imports only the standard library, ``rkt.abi``, ``rkt.errors`` and ``rkt.stage1.common``.
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.errors import PodError
from rkt.host.signals import signal
from rkt.paths import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    pass


SUPERVISOR = "pod-supervisor"
WAITER = "run-waiter"
LAUNCHER = "app-exec"
INIT = "pod-init"
HANDOFF_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}


def program(pod_path: Path, name: str) -> str:
    """The program's path in the pod's stage1 rootfs (relative when ``pod_path`` is)."""
    return str(pod_path / abi.STAGE1_ROOTFS / name)


def check_programs(pod_path: Path) -> None:
    """Refuse early (before anything is created) when the stage1 image lacks them."""
    for name in (SUPERVISOR, WAITER, LAUNCHER, INIT):
        if not os.access(program(pod_path, name), os.X_OK):
            raise PodError(f'stage1: program "{name}" is missing from the pod\'s stage1 rootfs')
