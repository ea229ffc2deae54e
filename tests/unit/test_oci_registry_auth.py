"""The registry client's bearer-token flow against a small in-process registry + token service."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from rkt.config import Credentials
from rkt.errors import FetchError
from rkt.fetch.http import HttpClient
from rkt.fetch.registry import RegistrySource, parse_docker_reference
from rkt.settings import InsecureOptions

MANIFEST = json.dumps({"schemaVersion": 2, "manifests": []}).encode()


class _Server(http.server.ThreadingHTTPServer):
    token_requests: list[dict[str, list[str]]]
    basic: str


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        port = self.server.server_address[1]
        if url.path == "/token":
            self.server.token_requests.append(parse_qs(url.query))
            if self.headers.get("Authorization") != self.server.basic:
                return self._send(401, b"{}")
            return self._send(200, json.dumps({"token": "tok-1", "expires_in": 300}).encode())
        if self.headers.get("Authorization") != "Bearer tok-1":
            challenge = (
                f'Bearer realm="http://127.0.0.1:{port}/token",service="reg",'
                'scope="repository:team/app:pull"'
            )
            return self._send(401, b"{}", {"WWW-Authenticate": challenge})
        self._send(200, MANIFEST, {"Content-Type": "application/vnd.oci.image.index.v1+json"})

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.token_requests = []
    srv.basic = "Basic " + base64.b64encode(b"me:pw").decode()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _source(server: _Server, creds: dict[str, Credentials]) -> RegistrySource:
    ref = parse_docker_reference(f"docker://127.0.0.1:{server.server_address[1]}/team/app")
    client = HttpClient(InsecureOptions(http=True), resolve={})
    return RegistrySource(ref, client, creds, insecure_http=True)


def test_bearer_token_fetched_with_credentials_and_cached(server: _Server):
    host = f"127.0.0.1:{server.server_address[1]}"
    source = _source(server, {host: Credentials("basic", "me", "pw")})
    body, _, digest = source.get_manifest("latest")
    assert body == MANIFEST and digest.startswith("sha256:")
    source.get_manifest("latest")
    assert len(server.token_requests) == 1  # the token is reused until it expires
    assert server.token_requests[0] == {"service": ["reg"], "scope": ["repository:team/app:pull"]}


def test_token_service_refusal_names_the_credentials(server: _Server):
    with pytest.raises(FetchError, match="anonymous access"):
        _source(server, {}).get_manifest("latest")
