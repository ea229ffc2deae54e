"""Per-app status files (docs/stage1-abi.md §2): ``rkt/status/<app>`` (the exit status, decimal,
written once the app has exited) and ``rkt/status/<app>.json`` (rewritten on every change).

Both are written atomically (temp file + rename). Times are ns since the epoch.
Imports only the standard library, ``rkt.abi`` and ``rkt.stage1.common.poddir``.
"""

from __future__ import annotations

import os
import time

from rkt import abi, jsonio
from rkt.paths import Path
from rkt.stage1.common.poddir import write_atomic

CREATED, RUNNING, EXITED = "created", "running", "exited"


def wait_status_to_exit_code(status: int) -> tuple[int, int | None]:
    """(exit code, signal) from a waitpid status; death by signal N is 128+N (as a shell says)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.WEXITSTATUS(status), None


class AppStatus:
    """One app's status as the init keeps it (mutable: it changes as the app runs)."""

    __slots__ = (
        "created",
        "exit_code",
        "finished",
        "name",
        "oom_killed",
        "pid",
        "signal",
        "started",
        "state",
    )

    def __init__(self, name: str, state: str = CREATED) -> None:
        self.name = name
        self.state = state
        self.pid: int | None = None
        self.created = 0
        self.started: int | None = None
        self.finished: int | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.oom_killed = False  # the kernel's OOM killer killed a process of the app's cgroup

    def __repr__(self) -> str:
        return f"AppStatus({self.name!r}, state={self.state!r}, exit_code={self.exit_code!r})"

    def to_json(self) -> bytes:
        return jsonio.dumps(
            {
                "name": self.name,
                "state": self.state,
                "pid": self.pid,
                "created": self.created,
                "started": self.started,
                "finished": self.finished,
                "exit_code": self.exit_code,
                "signal": self.signal,
                "oom_killed": self.oom_killed,
            }
        ).encode()


class StatusWriter:
    """Keeps the status files of a pod's apps current."""

    def __init__(self, pod_path: Path) -> None:
        self.pod_path = pod_path

    def created(self, status: AppStatus) -> None:
        status.state, status.created = CREATED, time.time_ns()
        self._write(status)

    def started(self, status: AppStatus, pid: int) -> None:
        status.state, status.pid, status.started = RUNNING, pid, time.time_ns()
        self._write(status)

    def exited(self, status: AppStatus, wait_status: int) -> None:
        status.exit_code, status.signal = wait_status_to_exit_code(wait_status)
        self.failed(status, status.exit_code, status.signal)

    def failed(self, status: AppStatus, exit_code: int, signum: int | None = None) -> None:
        status.state, status.finished = EXITED, time.time_ns()
        status.exit_code, status.signal = exit_code, signum
        write_atomic(self.pod_path / abi.app_status(status.name), b"%d" % exit_code)
        self._write(status)

    def _write(self, status: AppStatus) -> None:
        write_atomic(self.pod_path / abi.app_status_json(status.name), status.to_json())


def read_app_status(pod_path: Path, app: str) -> dict[str, object] | None:
    try:
        data = jsonio.loads((pod_path / abi.app_status_json(app)).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
