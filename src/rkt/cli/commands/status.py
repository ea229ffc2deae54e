"""``rkt status [--wait[=DUR]] [--wait-ready[=DUR]] [--uuid-file=F] [--format] UUID``.

Prints rkt's ``key=value`` lines (rkt/status.go). Also home of what the pod commands share:
finding pods by UUID prefix or ``--uuid-file``, and event-driven waiting. Nothing here polls:

- ``--wait`` blocks on the pod's lock (the stage1 holds it exclusively while the pod lives), through
  ``rkt.pod.pod.wait_for_exit``;
- ``--wait-ready`` and a pod that is not yet running watch the pod directories with inotify
  (``inotify(7)`` via ctypes), while a helper thread blocks on the pod lock so that a pod that exits
  before it is ready ends the wait at once.
"""

from __future__ import annotations

import os
import select
import struct
import time

from rkt import abi
from rkt.cli.output import add_format_argument, format_time, print_json
from rkt.errors import PodError, PrivilegeError, UsageError
from rkt.paths import Path
from rkt.pod.pod import (
    EMBRYO,
    GARBAGE,
    PREPARE,
    PREPARED,
    RUN,
    Pod,
    PodLock,
    find_pod,
    read_uuid_file,
    wait_for_exit,
)
from rkt.settings import GlobalOptions
from rkt.stage0.pods import AppInfo, PodInfo, pod_info
from rkt.stage0.privileges import require_root

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable
    from typing import Any

IN_MODIFY = 0x002
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")
_NOT_STARTED = (EMBRYO, PREPARE, PREPARED)


# -- finding pods --------------------------------------------------------------------------------


def pods_root(opts: GlobalOptions, action: str) -> Path:
    """The pods directory; pod commands are root-only (the pod directories are 0750 root)."""
    require_root(action)
    return opts.dir / "pods"


def lookup(root: Path, text: str) -> Pod:
    try:
        return find_pod(root, text)
    except PermissionError as exc:
        raise PrivilegeError(f'pods "{root}": {exc.strerror}') from exc


def uuid_args(uuids: Iterable[str], uuid_file: str | None, *, single: bool = False) -> list[str]:
    """The UUIDs given as arguments or in ``--uuid-file`` (rkt accepts one or the other)."""
    given = list(uuids)
    if uuid_file:
        if given:
            raise UsageError("give pod UUIDs or --uuid-file, not both")
        given = [read_uuid_file(Path(uuid_file))]
    if not given:
        raise UsageError("a pod UUID (or --uuid-file) is required")
    if single and len(given) > 1:
        raise UsageError("exactly one pod UUID is required")
    return given


def add_uuid_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--uuid-file", default=None, help="read the pod UUID from this file (see --uuid-file-save)"
    )


# -- waiting -------------------------------------------------------------------------------------
# ctypes and threading are imported by the waiting code only: the other pod commands (list, gc,
# stop...) import this module for the helpers above and below, and would pay ~2.5 ms for them.


class Inotify:
    """A minimal inotify(7) instance: watch directories, wait for events with a timeout."""

    def __init__(self) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._errno = ctypes.get_errno
        self.fd: int = int(self._libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK))
        if self.fd < 0:
            raise PodError(f"inotify: {os.strerror(self._errno())}")

    def watch(self, path: Path, mask: int) -> int:
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))
        if wd < 0:
            raise PodError(f'inotify "{path}": {os.strerror(self._errno())}')
        return wd

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> list[tuple[int, str]]:
        """Pending events as (watch descriptor, name)."""
        events: list[tuple[int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                events.append((wd, os.fsdecode(raw.rstrip(b"\0"))))
                offset += _EVENT.size + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExitWatcher:
    """A thread blocked on the pod's lock; its pipe becomes readable when the pod has exited."""

    def __init__(self, pod: Pod) -> None:
        import threading

        self._read, self._write = os.pipe2(os.O_CLOEXEC)
        self.exited = threading.Event()
        try:
            self._lock: PodLock | None = PodLock(pod.path)
        except FileNotFoundError:
            self._lock = None
            self._done()
            return
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        assert self._lock is not None
        self._lock.shared()  # granted once no process holds the pod's exclusive lock
        self._done()

    def _done(self) -> None:
        self.exited.set()
        os.write(self._write, b"x")

    def fileno(self) -> int:
        return self._read


def deadline_of(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait_until_started(root: Path, pod: Pod, deadline: float | None) -> Pod:
    """Wait while the pod is being prepared or waits in ``prepared``; return it as it is now."""
    with Inotify() as ino:
        for phase in (RUN, GARBAGE):
            ino.watch(root / phase, IN_CREATE | IN_MOVED_TO)
        while True:
            pod = lookup(root, pod.uuid)  # looked up after the watch: no rename is missed
            if pod.phase not in _NOT_STARTED:
                return pod
            left = remaining(deadline)
            if left is not None and left <= 0:
                raise PodError(f'pod "{pod.uuid}": still {pod.state()} after the wait')
            select.select([ino], [], [], left)
            ino.drain()


def wait_exited(root: Path, pod: Pod, timeout: float | None) -> Pod:
    deadline = deadline_of(timeout)
    pod = wait_until_started(root, pod, deadline)
    if not wait_for_exit(pod, remaining(deadline)):
        raise PodError(f'pod "{pod.uuid}": still running after the wait')
    return lookup(root, pod.uuid)


def wait_ready(root: Path, pod: Pod, timeout: float | None) -> Pod:
    deadline = deadline_of(timeout)
    pod = wait_until_started(root, pod, deadline)
    ready = pod.file(abi.SUPERVISOR_STATUS)
    if pod.phase != RUN:
        if pod.is_ready():
            return pod
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}, it will never be ready')
    with Inotify() as ino:
        ino.watch(ready.parent, IN_CREATE | IN_MOVED_TO)
        watcher = ExitWatcher(pod)
        while not pod.is_ready():
            if watcher.exited.is_set():
                if pod.is_ready():
                    break
                raise PodError(f'pod "{pod.uuid}": exited before it was ready')
            left = remaining(deadline)
            if left is not None and left <= 0:
                raise PodError(f'pod "{pod.uuid}": not ready after the wait')
            select.select([ino.fileno(), watcher.fileno()], [], [], left)
            ino.drain()
    return lookup(root, pod.uuid)


# -- the command ---------------------------------------------------------------------------------


def parse_wait(value: str | None, flag: str) -> tuple[bool, float | None]:
    """(wait?, timeout) from ``--wait`` (forever), ``--wait=DUR``, ``--wait=true|false``."""
    from rkt.cli.flags import parse_duration

    if value is None:
        return False, None
    lowered = value.strip().lower()
    if lowered in ("", "true", "-1", "-1s"):
        return True, None
    if lowered in ("false", "0", "0s"):
        return False, None
    return True, parse_duration(value, flag)


def _is_wait_value(value: str) -> bool:
    try:
        parse_wait(value, "")
    except UsageError:
        return False
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", nargs="?", help="pod UUID or unique prefix")
    # cobra's NoOptDefVal: a bare --wait waits forever; --wait=DUR bounds the wait.
    parser.add_argument(
        "--wait", nargs="?", const="", default=None, metavar="DUR", help="wait for the pod to exit"
    )
    parser.add_argument(
        "--wait-ready",
        nargs="?",
        const="",
        default=None,
        metavar="DUR",
        help="wait until every app of the pod has been started",
    )
    add_uuid_file(parser)
    add_format_argument(parser)


def _take_uuid_from_flag(args: argparse.Namespace) -> None:
    """``--wait UUID``: argparse gives UUID to the flag; cobra would not. Give it back."""
    for dest in ("wait", "wait_ready"):
        value = getattr(args, dest)
        if value and args.uuid is None and not _is_wait_value(value):
            args.uuid = value
            setattr(args, dest, "")


def format_networks(networks: list[dict[str, Any]]) -> str:
    parts = []
    for net in networks:
        name = net.get("netName") or net.get("name") or "?"
        ip = net.get("ip") or net.get("ip4") or ""
        parts.append(f"{name}:ip4={ip}")
    return ", ".join(parts)


def _seconds(ts: float | None) -> int | None:
    return None if ts is None else int(ts)


def _ns(ts: float | None) -> int | None:
    return None if ts is None else int(ts * 1e9)


def pod_json(info: PodInfo, *, detailed: bool) -> dict[str, Any]:
    """rkt's lib.Pod (pod times in seconds); ``detailed`` adds pid and lib.App per app (ns)."""
    doc: dict[str, Any] = {"name": info.uuid, "state": info.state}
    if info.networks:
        doc["networks"] = info.networks
    if info.apps:
        doc["app_names"] = [a.name for a in info.apps]
    for key, ts in (("created_at", info.created_at), ("started_at", info.started_at)):
        if ts is not None:
            doc[key] = _seconds(ts)
    if not detailed:
        return doc
    if info.pid is not None:
        doc["pid"] = info.pid
    doc["exited"] = info.state in ("exited", "exited garbage")
    doc["apps"] = [app_json(app) for app in info.apps]
    return doc


def app_json(app: AppInfo) -> dict[str, Any]:
    """rkt's lib.App: name, state, image_id, times in ns, exit_code once exited."""
    entry: dict[str, Any] = {"name": app.name, "state": app.state, "image_id": app.image_id}
    for key, ts in (
        ("created_at", app.created_at),
        ("started_at", app.started_at),
        ("finished_at", app.finished_at),
    ):
        if ts is not None:
            entry[key] = _ns(ts)
    if app.exit_code is not None:
        entry["exit_code"] = app.exit_code
    if app.oom_killed:
        entry["oom_killed"] = True
    return entry


def status_lines(info: PodInfo) -> list[str]:
    """rkt/status.go printStatus, line by line."""
    lines = [f"state={info.state}"]
    if info.created_at is not None:
        lines.append(f"created={format_time(info.created_at)}")
    if info.started_at is not None:
        lines.append(f"started={format_time(info.started_at)}")
    if info.state in ("running", "exited"):
        lines.append(f"networks={format_networks(info.networks)}")
    if info.state not in ("running", "deleting", "exited deleting", "exited", "exited garbage"):
        return lines
    if info.pid:
        lines.append(f"pid={info.pid}")
    lines.append(f"exited={'true' if info.state in ('exited', 'exited garbage') else 'false'}")
    if info.state != "running":
        lines += [f"app-{a.name}={a.exit_code}" for a in info.apps if a.exit_code is not None]
        lines += [f"app-{a.name}-oom-killed=true" for a in info.apps if a.oom_killed]
    return lines


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    _take_uuid_from_flag(args)
    (uuid,) = uuid_args([args.uuid] if args.uuid else [], args.uuid_file, single=True)
    root = pods_root(opts, "status")
    pod = lookup(root, uuid)
    wait, wait_timeout = parse_wait(args.wait, "--wait")
    ready, ready_timeout = parse_wait(args.wait_ready, "--wait-ready")
    if ready:
        pod = wait_ready(root, pod, ready_timeout)
    if wait:
        pod = wait_exited(root, pod, wait_timeout)
    info = pod_info(pod)
    if args.format:
        print_json(pod_json(info, detailed=True), pretty=args.format == "json-pretty")
    else:
        print("\n".join(status_lines(info)))
    return 0
