"""A local HTTPS (and optional plain HTTP) server for fetch tests, with a throwaway trustme CA.

    with LocalHttpsServer({"/a.aci": b"..."}, plain_http=True) as server:
        server.add("/b.aci", b"...", etag='"v1"', cache_control="max-age=60")
        server.add("/cut.aci", b"x" * 100, truncate_at=10, truncate_times=1)
        server.add_discovery("/app", discovery=[("example.com/app", "https://.../{name}.{ext}")])
        server.url("/a.aci"); server.write_ca_pem(tmp_path / "ca.pem")
        server.requests_for("/b.aci")  # what the client sent, to assert on caching

Binds 127.0.0.1 on free ports; the certificate is valid for 127.0.0.1, localhost and
example.com. Stopping is event-driven (``shutdown`` plus closing live connections), no sleeps.
"""

from __future__ import annotations

import contextlib
import html
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trustme

HOSTNAMES = ("127.0.0.1", "localhost", "example.com")


@dataclass
class Route:
    """How the server answers one path (the query string is ignored for matching)."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    etag: str | None = None  # sent as ETag; If-None-Match with it gets a 304
    cache_control: str | None = None
    location: str | None = None  # makes the route a redirect (status defaults to 302)
    truncate_at: int | None = None  # send only this many body bytes, then close
    truncate_times: int | None = None  # truncate only the first N responses (None: always)
    served: int = 0


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    scheme: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def discovery_html(
    discovery: Iterable[tuple[str, str]] = (), pubkeys: Iterable[tuple[str, str]] = ()
) -> str:
    """An HTML page carrying appc discovery meta tags."""
    metas = [("ac-discovery", p, u) for p, u in discovery]
    metas += [("ac-discovery-pubkeys", p, u) for p, u in pubkeys]
    lines = [
        f'    <meta name="{name}" content="{html.escape(prefix)} {html.escape(url)}">'
        for name, prefix, url in metas
    ]
    return "<!DOCTYPE html>\n<html>\n  <head>\n" + "\n".join(lines) + "\n  </head>\n</html>\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        owner._log(
            LoggedRequest(
                method=self.command,
                scheme=self.server.scheme,
                path=parts.path,
                query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
        )
        route = owner._route(parts.path)
        if route is None:
            route = Route(body=b"not found\n", status=404, content_type="text/plain")
        self._send(route, with_body=with_body)

    def _send(self, route: Route, *, with_body: bool) -> None:
        with self.server.owner._lock:
            route.served += 1
            truncate = route.truncate_at is not None and (
                route.truncate_times is None or route.served <= route.truncate_times
            )
        if route.location is not None:
            self.send_response(route.status if route.status != 200 else 302)
            self.send_header("Location", route.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        wanted = [tag.strip() for tag in (self.headers.get("If-None-Match") or "").split(",")]
        if route.etag is not None and (route.etag in wanted or "*" in wanted):
            self.send_response(304)
            self._cache_headers(route)
            self.end_headers()
            return
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(route.body)))
        self._cache_headers(route)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not with_body:
            return
        if truncate:
            self.wfile.write(route.body[: route.truncate_at])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(route.body)

    def _cache_headers(self, route: Route) -> None:
        if route.etag is not None:
            self.send_header("ETag", route.etag)
        if route.cache_control is not None:
            self.send_header("Cache-Control", route.cache_control)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: LocalHttpsServer, ssl_context: ssl.SSLContext | None) -> None:
        self.owner = owner
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshakes happen in the connection's own thread, so a client that rejects our
        # certificate (the point of some tests) never stalls the accept loop.
        conn: socket.socket = request
        conn.settimeout(10)
        if self.ssl_context is not None:
            try:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return
        self.owner._track(conn, add=True)
        try:
            _Handler(conn, client_address, self)
        except OSError:
            pass
        finally:
            self.owner._track(conn, add=False)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are expected here


class LocalHttpsServer:
    """Serves ``files`` (path → body) and optionally ``directory`` over TLS on 127.0.0.1."""

    def __init__(
        self,
        files: Mapping[str, bytes | str] | None = None,
        *,
        directory: Path | None = None,
        plain_http: bool = False,
        hostnames: Iterable[str] = HOSTNAMES,
    ) -> None:
        self.ca = trustme.CA()
        self._leaf = self.ca.issue_cert(*hostnames)
        self._directory = directory
        self._plain_http = plain_http
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._log_entries: list[LoggedRequest] = []
        self._connections: set[socket.socket] = set()
        self._servers: list[tuple[_Server, threading.Thread]] = []
        for path, body in (files or {}).items():
            self.add(path, body)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalHttpsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        contexts: list[ssl.SSLContext | None] = [context]
        if self._plain_http:
            contexts.append(None)
        for ctx in contexts:
            server = _Server(self, ctx)
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._servers.append((server, thread))

    def stop(self) -> None:
        for server, thread in self._servers:
            server.shutdown()  # returns once serve_forever has left its loop
            server.server_close()
            thread.join()
        with self._lock:
            live = list(self._connections)
        for conn in live:  # wakes handler threads blocked on keep-alive reads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._servers.clear()

    # -- addresses and trust -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._servers[0][0].server_address[1])

    @property
    def http_port(self) -> int:
        if len(self._servers) < 2:
            raise RuntimeError("server started without plain_http=True")
        return int(self._servers[1][0].server_address[1])

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def http_url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.http_port}{path}"

    def write_ca_pem(self, path: Path) -> Path:
        """The CA certificate as PEM, for SSL_CERT_FILE."""
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def client_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    # -- content -----------------------------------------------------------------------------

    def add(self, path: str, body: bytes | str = b"", **options: Any) -> Route:
        """Serve ``body`` at ``path``; options are ``Route`` fields (etag, status, ...)."""
        data = body.encode() if isinstance(body, str) else body
        route = Route(body=data, **options)
        with self._lock:
            self._routes[path] = route
        return route

    def add_redirect(self, path: str, location: str, status: int = 302) -> Route:
        return self.add(path, location=location, status=status)

    def add_discovery(
        self,
        path: str,
        discovery: Iterable[tuple[str, str]] = (),
        pubkeys: Iterable[tuple[str, str]] = (),
    ) -> Route:
        page = discovery_html(discovery, pubkeys)
        return self.add(path, page, content_type="text/html; charset=utf-8")

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log_entries)

    def requests_for(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self._log_entries.clear()

    # -- used by the handler -----------------------------------------------------------------

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log_entries.append(entry)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _route(self, path: str) -> Route | None:
        with self._lock:
            route = self._routes.get(path)
        if route is not None or self._directory is None:
            return route
        root = self._directory.resolve()
        candidate = (root / path.lstrip("/")).resolve()
        if candidate.is_file() and candidate.is_relative_to(root):
            return Route(body=candidate.read_bytes())
        return None
