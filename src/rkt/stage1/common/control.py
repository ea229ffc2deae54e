"""The control channel of a mutable pod: the app/* entrypoints talk to the running pod.

Transport: a unix stream socket ``stage1/rootfs/rkt/private/control.sock`` in the pod directory,
created by ``pod-init`` (its ``listen`` step) with mode 0600 in a 0700 directory (only root
reaches it) and served by ``pod-supervisor``'s poll loop, which also checks the peer's
credentials (its own uid: root). Both ends run with the pod directory as working directory and
use the path relative to it (a pod path may be longer than a ``sun_path``).

Protocol: one request per connection, one JSON line each way.

    request:  {"action": "add"|"start"|"stop"|"rm", "app": NAME}
    response: {"ok": true} | {"ok": false, "error": "one line"}

The response is sent when the action is done (``stop``: the app has exited). The server
(src/rkt/stage1/native/pod-supervisor.c) refuses anything else with a one-line error: a line
without both fields, another action, a name that is not an app name.

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

import socket

from rkt import jsonio
from rkt.errors import PodError
from rkt.paths import Path
from rkt.records import NamedTuple
from rkt.stage1.common.poddir import CONTROL_SOCKET

MAX_LINE = 4096


class ControlRequest(NamedTuple):
    action: str
    app: str

    def to_line(self) -> bytes:
        return jsonio.dumps({"action": self.action, "app": self.app}).encode() + b"\n"


class ControlResponse(NamedTuple):
    ok: bool
    error: str = ""


def parse_response(line: bytes) -> ControlResponse:
    try:
        doc = jsonio.loads(line)
    except ValueError as exc:
        raise PodError("control: response is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        raise PodError("control: malformed response")
    return ControlResponse(doc["ok"], str(doc.get("error", "")))


def call_pod_init(pod_path: Path, request: ControlRequest, timeout: float | None = None) -> None:
    """Send one request to the pod init (cwd must be the pod directory); raise on refusal."""
    if not (pod_path / CONTROL_SOCKET).exists():
        raise PodError("pod is not mutable or not running (no control socket)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(CONTROL_SOCKET)
            sock.sendall(request.to_line())
            data = b""
            while not data.endswith(b"\n") and len(data) < MAX_LINE:
                chunk = sock.recv(MAX_LINE)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise PodError(f"control: cannot reach the pod init: {exc.strerror or exc}") from exc
    if not data.endswith(b"\n"):
        raise PodError("control: the pod init closed the connection (is the pod stopping?)")
    response = parse_response(data)
    if not response.ok:
        raise PodError(response.error or "control: request refused")
