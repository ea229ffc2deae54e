"""The mutable pod's control protocol (rkt.stage1.common.control) and the init's server side
(rkt.stage1.ns.mutable.ControlServer), over real unix sockets, without root or a pod."""

from __future__ import annotations

import json
import select
import socket
import stat
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rkt.errors import PodError
from rkt.stage1.common.args import parse_app
from rkt.stage1.common.control import (
    CONTROL_SOCKET,
    ControlRequest,
    ControlResponse,
    call_pod_init,
    parse_request,
    parse_response,
)
from rkt.stage1.common.status import AppStatus
from rkt.stage1.ns.mutable import ControlServer, bind_control_socket

UUID = "0b5ac8a4-3a8e-4d9c-9a5e-1f2e3d4c5b6a"


def test_request_round_trips_as_one_json_line() -> None:
    line = ControlRequest("start", "web").to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"action": "start", "app": "web"}
    assert parse_request(line) == ControlRequest("start", "web")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "not JSON"),
        (b'["start", "web"]', "exactly action and app"),
        (b'{"action": "start"}', "exactly action and app"),
        (b'{"action": "start", "app": "web", "x": 1}', "exactly action and app"),
        (b'{"action": "exec", "app": "web"}', 'unknown action "exec"'),
        (b'{"action": "rm", "app": "../etc"}', "is not an app name"),
        (b'{"action": "rm", "app": "a/b"}', "is not an app name"),
        (b'{"action": "rm", "app": 3}', "is not an app name"),
    ],
)
def test_malformed_requests_are_refused(line: bytes, message: str) -> None:
    with pytest.raises(PodError, match=message):
        parse_request(line)


def test_responses() -> None:
    assert parse_response(ControlResponse(True).to_line()) == ControlResponse(True)
    refused = ControlResponse(False, 'app "x": is not in the pod')
    assert parse_response(refused.to_line()) == refused
    with pytest.raises(PodError, match="malformed"):
        parse_response(b'{"ok": "yes"}\n')


def test_parse_app_entrypoint_arguments() -> None:
    args = parse_app(["--app=web", "--debug", UUID])
    assert (args.app, args.uuid, args.debug) == ("web", UUID, True)
    for bad in (
        ["--app=web"],
        [UUID],
        ["--app=web", "--force", UUID],
        ["--app=web", UUID, "--", "x"],
    ):
        with pytest.raises(PodError):
            parse_app(bad)


def test_client_without_socket_says_the_pod_is_not_mutable(tmp_path: Path) -> None:
    with pytest.raises(PodError, match="not mutable or not running"):
        call_pod_init(tmp_path, ControlRequest("start", "web"))


def _serve_once(listener: socket.socket, reply: bytes, seen: list[bytes]) -> None:
    conn, _ = listener.accept()
    with conn:
        seen.append(conn.recv(4096))
        conn.sendall(reply)


def test_client_sends_one_line_and_raises_the_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # entrypoints run in the pod directory; the path is relative
    listener = bind_control_socket()
    seen: list[bytes] = []
    try:
        assert stat.S_IMODE((tmp_path / CONTROL_SOCKET).stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / CONTROL_SOCKET).parent.stat().st_mode) == 0o700
        listener.setblocking(True)
        answer = ControlResponse(False, 'app "web": is already running').to_line()
        server = threading.Thread(target=_serve_once, args=(listener, answer, seen))
        server.start()
        with pytest.raises(PodError, match="is already running"):
            call_pod_init(tmp_path, ControlRequest("start", "web"), timeout=30)
        server.join()
        assert seen == [b'{"action": "start", "app": "web"}\n']
    finally:
        listener.close()


class FakeInit:
    """What ControlServer uses of the pod init."""

    def __init__(self, pod_path: Path) -> None:
        self.poller = select.poll()
        self.pod_path = pod_path
        self.statuses: dict[str, AppStatus] = {"idle": AppStatus("idle", state="exited")}
        self.pids: dict[str, int] = {}
        self.roots: dict[str, str] = {}
        self.specs_by_name: dict[str, Any] = {}
        self.app_cgroups: dict[str, Any] = {}
        self.cgroups = None
        self.host = SimpleNamespace(umount=lambda target, flags=0: None)


def _ask(server: ControlServer, request: bytes) -> ControlResponse:
    """One request through the server's poll-loop handlers (no threads: the backlog holds it)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with client:
        client.connect(CONTROL_SOCKET)
        client.sendall(request)
        server.handle(server.listener.fileno())  # accept
        (fd,) = server.clients
        server.handle(fd)  # read the line, act, answer
        assert server.clients == {}
        return parse_response(client.recv(4096))


def test_server_answers_in_its_poll_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    init = FakeInit(tmp_path)
    server = ControlServer(init, bind_control_socket())  # type: ignore[arg-type]
    try:
        assert _ask(server, b'{"action": "stop", "app": "idle"}\n') == ControlResponse(True)
        refused = _ask(server, b'{"action": "stop", "app": "ghost"}\n')
        assert not refused.ok and 'app "ghost": is not in the pod' in refused.error
        bad = _ask(server, b'{"action": "reboot", "app": "idle"}\n')
        assert not bad.ok and "unknown action" in bad.error
        assert _ask(server, b'{"action": "rm", "app": "idle"}\n') == ControlResponse(True)
        assert "idle" not in init.statuses
        again = _ask(server, b'{"action": "start", "app": "idle"}\n')
        assert not again.ok and "is not in the pod" in again.error
    finally:
        server.listener.close()
