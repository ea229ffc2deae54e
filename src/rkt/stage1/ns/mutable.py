"""Mutable pods in the pod init: the control socket and the app add/start/stop/rm actions.

The init serves ``rkt.stage1.common.control`` from its own poll loop (no threads), so an app added
later is forked by the same init, in the same namespaces and cgroup, through the same launch code
and confinement as the apps started with the pod. An app that exits does not end a mutable pod;
the pod ends when it is stopped.

- ``add``: the app/add entrypoint has resolved the app's launch (``private/apps/<app>.json``, so
  a bad manifest fails before anything happens); the init mounts its root filesystem (in the
  pod's mount namespace) and writes its status ``created``.
- ``start``: the app's cgroup, then fork + launch, exactly as at pod start.
- ``stop``: SIGTERM to the app's process group, SIGKILL after 10 s; answered once it has exited.
- ``rm``: stops it if it runs, unmounts its root, removes its cgroup and its stage1 files.

Imports only the standard library, ``rkt.abi``, ``rkt.errors``, ``rkt.host`` and ``rkt.stage1``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import time
from contextlib import suppress
from typing import TYPE_CHECKING

from rkt import abi
from rkt.errors import PodError, RktError
from rkt.host.api import MNT_DETACH
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.control import (
    CONTROL_SOCKET,
    MAX_LINE,
    ControlRequest,
    ControlResponse,
    parse_request,
)
from rkt.stage1.common.poddir import PRIVATE_DIR
from rkt.stage1.common.status import EXITED, RUNNING, AppStatus

if TYPE_CHECKING:
    from rkt.stage1.ns.init import PodInit

STOP_TIMEOUT_NS = 10 * 1_000_000_000
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def bind_control_socket() -> socket.socket:
    """The listening socket, 0600 in a 0700 dir (cwd: the pod directory)."""
    os.makedirs(os.path.dirname(CONTROL_SOCKET), mode=0o700, exist_ok=True)
    os.chmod(os.path.dirname(CONTROL_SOCKET), 0o700)
    with suppress(FileNotFoundError):
        os.unlink(CONTROL_SOCKET)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(CONTROL_SOCKET)
    finally:
        os.umask(old)
    os.chmod(CONTROL_SOCKET, 0o600)
    sock.listen(16)
    sock.setblocking(False)
    return sock


class ControlServer:
    """Accepts requests, runs them against the init, answers (at once or when an app exits)."""

    def __init__(self, init: PodInit, listener: socket.socket) -> None:
        self.init = init
        self.listener = listener
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self.waiting: dict[str, list[tuple[socket.socket, str]]] = {}  # app -> (conn, action)
        self.kill_deadlines: dict[str, int] = {}
        init.poller.register(listener.fileno(), select.POLLIN)

    def owns(self, fd: int) -> bool:
        return fd == self.listener.fileno() or fd in self.clients

    def handle(self, fd: int) -> None:
        if fd == self.listener.fileno():
            self._accept()
            return
        conn, buf = self.clients[fd]
        try:
            data = conn.recv(MAX_LINE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        buf += data
        if data and b"\n" not in buf and len(buf) < MAX_LINE:
            return
        self.init.poller.unregister(fd)
        del self.clients[fd]
        if not data and b"\n" not in buf:
            conn.close()
            return
        try:
            self._dispatch(conn, parse_request(bytes(buf).split(b"\n", 1)[0]))
        except (RktError, OSError) as exc:
            message = exc.message if isinstance(exc, RktError) else str(exc)
            _reply(conn, ControlResponse(False, message))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            _, uid, _ = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
            if uid != os.geteuid():  # root: the socket's mode already says so; belt and braces
                _reply(conn, ControlResponse(False, "control: permission denied"))
                continue
            conn.setblocking(False)
            self.clients[conn.fileno()] = (conn, bytearray())
            self.init.poller.register(conn.fileno(), select.POLLIN)

    def _dispatch(self, conn: socket.socket, req: ControlRequest) -> None:
        init = self.init
        if req.action == "add":
            add_app(init, req.app)
        elif req.action == "start":
            start_app(init, req.app)
        elif req.app not in init.statuses:
            raise PodError(f'app "{req.app}": is not in the pod')
        elif req.app in init.pids:  # stop or rm of a running app: answered when it has exited
            self.waiting.setdefault(req.app, []).append((conn, req.action))
            self._terminate(req.app)
            return
        elif req.action == "rm":
            remove_app(init, req.app)
        _reply(conn, ControlResponse(True))

    def _terminate(self, app: str) -> None:
        if app in self.kill_deadlines:
            return
        _signal_app(self.init.pids[app], signal.SIGTERM)
        self.kill_deadlines[app] = time.monotonic_ns() + STOP_TIMEOUT_NS

    def next_deadline(self) -> int | None:
        return min(self.kill_deadlines.values(), default=None)

    def check_deadlines(self) -> None:
        now = time.monotonic_ns()
        for app, deadline in list(self.kill_deadlines.items()):
            if deadline <= now and app in self.init.pids:
                _signal_app(self.init.pids[app], signal.SIGKILL)
                self.kill_deadlines[app] = now + STOP_TIMEOUT_NS

    def app_exited(self, app: str) -> None:
        self.kill_deadlines.pop(app, None)
        for conn, action in self.waiting.pop(app, []):
            try:
                if action == "rm" and app in self.init.statuses:
                    remove_app(self.init, app)
                _reply(conn, ControlResponse(True))
            except (RktError, OSError) as exc:
                message = exc.message if isinstance(exc, RktError) else str(exc)
                _reply(conn, ControlResponse(False, message))


def _reply(conn: socket.socket, response: ControlResponse) -> None:
    try:
        conn.setblocking(True)
        conn.settimeout(1.0)  # a few bytes into an empty socket buffer: never really waits
        conn.sendall(response.to_line())
    except OSError:
        pass
    finally:
        conn.close()


def _signal_app(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the app and whatever it started
    except ProcessLookupError:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


# -- the actions ----------------------------------------------------------------------------------


def add_app(init: PodInit, name: str) -> None:
    from rkt.stage1.ns.init import mount_app_rootfs

    if name in init.statuses:
        raise PodError(f'app "{name}": is already in the pod')
    try:
        spec = AppSpec.from_json(
            (init.pod_path / PRIVATE_DIR / "apps" / f"{name}.json").read_bytes()
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PodError(f'app "{name}": its launch record is missing or unreadable') from exc
    init.roots[name] = mount_app_rootfs(init.host, init.pod_path, spec)
    init.specs_by_name[name] = spec
    status = AppStatus(name)
    init.statuses[name] = status
    init.status.created(status)


def start_app(init: PodInit, name: str) -> None:
    status = init.statuses.get(name)
    if status is None:
        raise PodError(f'app "{name}": is not in the pod')
    if status.state == RUNNING:
        raise PodError(f'app "{name}": is already running')
    spec = init.specs_by_name[name]
    if status.state == EXITED:  # started again: a fresh run, the same filesystem
        status.finished = status.exit_code = status.signal = None
        status.oom_killed = False
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        init.start_app(spec, init.roots[name], status, devnull)
    finally:
        os.close(devnull)


def remove_app(init: PodInit, name: str) -> None:
    """Forget a stopped app: its root, cgroup and stage1 files (stage0 removes the rest)."""
    root = init.roots.pop(name, None)
    if root is not None:
        with suppress(OSError):
            init.host.umount(root, MNT_DETACH)
    cg = init.app_cgroups.pop(name, None)
    if cg is not None and init.cgroups is not None:
        init.cgroups.remove(cg)
    init.statuses.pop(name, None)
    init.specs_by_name.pop(name, None)
    pod = init.pod_path
    for rel in (
        abi.app_status_json(name),
        abi.app_status(name),
        f"{abi.ENV_DIR}/{name}",
        f"{PRIVATE_DIR}/apps/{name}.json",
        abi.app_log(name),
    ):
        with suppress(FileNotFoundError):
            os.unlink(pod / rel)
    for rel in (abi.stage2_rootfs(name), f"{abi.STAGE2_DIR}/{name}"):
        with suppress(OSError):
            os.rmdir(pod / rel)
