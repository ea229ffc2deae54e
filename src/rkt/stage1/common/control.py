"""The control channel of a mutable pod: app/* entrypoints talk to the running pod init.

Transport: a unix stream socket ``stage1/rootfs/rkt/private/control.sock`` in the pod directory,
created by the init with mode 0600 in a 0700 directory (only root reaches it) and served by the
init's poll loop; the init also checks the peer's credentials (its own uid: root). Both ends run
with the pod directory as working directory and use the path relative to it (a pod path may be
longer than a ``sun_path``).

Protocol: one request per connection, one JSON line each way.

    request:  {"action": "add"|"start"|"stop"|"rm", "app": NAME}
    response: {"ok": true} | {"ok": false, "error": "one line"}

The response is sent when the action is done (``stop``: the app has exited).

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass

from rkt.errors import PodError
from rkt.paths import Path

CONTROL_SOCKET = "stage1/rootfs/rkt/private/control.sock"
ACTIONS = ("add", "start", "stop", "rm")
MAX_LINE = 4096
_APP_NAME = re.compile(r"[a-z0-9]+([-._~/][a-z0-9]+)*")  # an appc AC Name


@dataclass(frozen=True, slots=True)
class ControlRequest:
    action: str
    app: str

    def to_line(self) -> bytes:
        return json.dumps({"action": self.action, "app": self.app}).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class ControlResponse:
    ok: bool
    error: str = ""

    def to_line(self) -> bytes:
        doc: dict[str, object] = {"ok": self.ok}
        if not self.ok:
            doc["error"] = self.error
        return json.dumps(doc).encode() + b"\n"


def parse_request(line: bytes) -> ControlRequest:
    """A request line; ``PodError`` for anything malformed (the init answers it, not dies)."""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise PodError("control: request is not JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"action", "app"}:
        raise PodError("control: request must have exactly action and app")
    action, app = doc["action"], doc["app"]
    if action not in ACTIONS:
        raise PodError(f'control: unknown action "{action}"')
    if not isinstance(app, str) or "/" in app or not _APP_NAME.fullmatch(app):
        raise PodError(f'control: "{app}" is not an app name')
    return ControlRequest(action, app)


def parse_response(line: bytes) -> ControlResponse:
    try:
        doc = json.loads(line)
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
