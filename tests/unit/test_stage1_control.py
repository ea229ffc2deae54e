"""The mutable pod's control protocol, client side (rkt.stage1.common.control), over a real unix
socket, without root or a pod. The server is pod-supervisor: tests/unit/test_native_programs.py
drives it, tests/integration/test_pod_mutable.py drives a whole mutable pod."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from rkt.errors import PodError
from rkt.stage1.common.args import parse_app
from rkt.stage1.common.control import (
    CONTROL_SOCKET,
    ControlRequest,
    ControlResponse,
    call_pod_init,
    parse_response,
)

UUID = "0b5ac8a4-3a8e-4d9c-9a5e-1f2e3d4c5b6a"


def test_request_is_one_json_line() -> None:
    line = ControlRequest("start", "web").to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"action": "start", "app": "web"}


def test_responses() -> None:
    assert parse_response(b'{"ok": true}\n') == ControlResponse(True)
    refused = b'{"ok": false, "error": "app \\"x\\": is not in the pod"}\n'
    assert parse_response(refused) == ControlResponse(False, 'app "x": is not in the pod')
    for bad in (b'{"ok": "yes"}\n', b"[true]\n", b"nope\n"):
        with pytest.raises(PodError, match="response"):
            parse_response(bad)


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
    os.makedirs(os.path.dirname(CONTROL_SOCKET), mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(CONTROL_SOCKET)
    listener.listen(1)
    seen: list[bytes] = []
    try:
        answer = b'{"ok": false, "error": "app \\"web\\": is already running"}\n'
        server = threading.Thread(target=_serve_once, args=(listener, answer, seen))
        server.start()
        with pytest.raises(PodError, match='app "web": is already running'):
            call_pod_init(tmp_path, ControlRequest("start", "web"), timeout=30)
        server.join()
        assert seen == [b'{"action": "start", "app": "web"}\n']
        assert stat.S_ISSOCK((tmp_path / CONTROL_SOCKET).stat().st_mode)
    finally:
        listener.close()
