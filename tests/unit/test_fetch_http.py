"""The fetch HTTP client against a real local HTTPS server with a throwaway CA."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rkt.errors import FetchError, UsageError
from rkt.fetch.http import HttpClient, HttpStatusError, parse_max_age, parse_resolve
from rkt.settings import InsecureOptions
from tests.support.https_server import LocalHttpsServer

BODY = os.urandom(300_000)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class RecordingProgress:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def start(self, label: str, total: int | None) -> None:
        self.calls.append(("start", total))

    def advance(self, n: int) -> None:
        self.calls.append(("advance", n))

    def finish(self) -> None:
        self.calls.append(("finish", None))


@pytest.fixture
def server() -> Iterator[LocalHttpsServer]:
    with LocalHttpsServer({"/app.aci": BODY}, plain_http=True) as srv:
        yield srv


@pytest.fixture
def trust_test_ca(
    server: LocalHttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(server.write_ca_pem(tmp_path / "ca.pem")))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def client(trust_test_ca: None) -> Iterator[HttpClient]:
    with HttpClient(InsecureOptions(), timeout=10, resolve={}) as http:
        yield http


def test_download_streams_body_over_https_with_ca_from_ssl_cert_file(
    client: HttpClient, server: LocalHttpsServer
) -> None:
    dest = io.BytesIO()
    result = client.download(server.url("/app.aci"), dest)
    assert dest.getvalue() == BODY
    assert (result.status, result.size, result.etag, result.max_age) == ("ok", len(BODY), None, 0)
    assert result.final_url == server.url("/app.aci")
    sent = server.requests_for("/app.aci")[0]
    assert sent.header("accept-encoding") == "identity"
    assert sent.header(
        "user-agent",
    ).startswith("rkt/")  # type: ignore[union-attr]


def test_download_reports_progress_start_advance_finish(
    client: HttpClient, server: LocalHttpsServer
) -> None:
    progress = RecordingProgress()
    client.download(server.url("/app.aci"), io.BytesIO(), progress=progress)
    assert progress.calls[0] == ("start", len(BODY))
    assert progress.calls[-1] == ("finish", None)
    advanced = [n for kind, n in progress.calls if kind == "advance"]
    assert sum(n for n in advanced if isinstance(n, int)) == len(BODY)


def test_tls_refused_without_the_test_ca(
    server: LocalHttpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    url = server.url("/app.aci")
    with HttpClient(InsecureOptions(), resolve={}) as http, pytest.raises(FetchError) as info:
        http.get_bytes(url)
    assert info.value.message.startswith(f'cannot fetch "{url}": certificate verify failed')
    assert "--insecure-options=tls" in (info.value.hint or "")
    assert server.requests == []


def test_insecure_tls_accepts_an_unknown_ca(
    server: LocalHttpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with HttpClient(InsecureOptions(tls=True), resolve={}) as http:
        assert http.get_bytes(server.url("/app.aci")) == BODY


def test_plain_http_refused_unless_insecure_http(
    client: HttpClient, server: LocalHttpsServer
) -> None:
    url = server.http_url("/app.aci")
    with pytest.raises(FetchError) as info:
        client.get_bytes(url)
    assert info.value.message == (
        f'cannot fetch "{url}": plain http is disabled; use --insecure-options=http'
    )
    assert server.requests == []
    with HttpClient(InsecureOptions(http=True), resolve={}) as http:
        assert http.get_bytes(url) == BODY


def test_redirect_to_plain_http_is_refused(client: HttpClient, server: LocalHttpsServer) -> None:
    server.add_redirect("/moved.aci", server.http_url("/app.aci"))
    with pytest.raises(FetchError, match=r"redirected to .*plain http is disabled"):
        client.download(server.url("/moved.aci"), io.BytesIO())
    assert server.requests_for("/app.aci") == []


def test_redirects_are_followed_and_final_url_reported(
    client: HttpClient, server: LocalHttpsServer
) -> None:
    server.add_redirect("/a", "/b", status=301)
    server.add_redirect("/b", server.url("/app.aci"), status=307)
    dest = io.BytesIO()
    result = client.download(server.url("/a"), dest)
    assert result.final_url == server.url("/app.aci")
    assert dest.getvalue() == BODY


def test_redirect_loop_stops_after_ten_hops(client: HttpClient, server: LocalHttpsServer) -> None:
    server.add_redirect("/loop", "/loop")
    with pytest.raises(FetchError, match="more than 10 redirects"):
        client.get_bytes(server.url("/loop"))
    assert len(server.requests_for("/loop")) == 11


def test_etag_round_trip_gives_not_modified(client: HttpClient, server: LocalHttpsServer) -> None:
    server.add("/cached.aci", BODY, etag='"v1"', cache_control="public, max-age=120")
    first = client.download(server.url("/cached.aci"), io.BytesIO())
    assert (first.status, first.etag, first.max_age) == ("ok", '"v1"', 120)
    dest = io.BytesIO(b"stale")
    second = client.download(server.url("/cached.aci"), dest, etag=first.etag)
    assert (second.status, second.etag, second.max_age, second.size) == (
        "not-modified",
        '"v1"',
        120,
        0,
    )
    assert dest.getvalue() == b""
    log = server.requests_for("/cached.aci")
    assert [r.header("if-none-match") for r in log] == [None, '"v1"']


def test_changed_etag_downloads_again(client: HttpClient, server: LocalHttpsServer) -> None:
    server.add("/cached.aci", b"new body", etag='"v2"')
    result = client.download(server.url("/cached.aci"), io.BytesIO(), etag='"v1"')
    assert (result.status, result.etag, result.size) == ("ok", '"v2"', 8)


@pytest.mark.parametrize(
    ("header", "max_age"),
    [
        (None, 0),
        ("max-age=60", 60),
        ("public, max-age=30", 30),
        ("max-age=60, no-cache", 0),
        ("no-store", 0),
        ("max-age=soon", 0),
        ('max-age="15"', 15),
        ("MAX-AGE=5", 5),
    ],
)
def test_parse_max_age(header: str | None, max_age: int) -> None:
    assert parse_max_age(header) == max_age


def test_truncated_body_is_retried_from_a_clean_file(
    client: HttpClient, server: LocalHttpsServer
) -> None:
    server.add("/flaky.aci", BODY, truncate_at=1000, truncate_times=1)
    dest = io.BytesIO(b"junk from an earlier attempt" * 100_000)
    progress = RecordingProgress()
    result = client.download(server.url("/flaky.aci"), dest, progress=progress)
    assert dest.getvalue() == BODY
    assert result.size == len(BODY)
    assert len(server.requests_for("/flaky.aci")) == 2
    assert [kind for kind, _ in progress.calls].count("start") == 2
    assert progress.calls[-1] == ("finish", None)


def test_truncated_body_twice_is_a_fetch_error(
    client: HttpClient, server: LocalHttpsServer
) -> None:
    server.add("/short.aci", BODY, truncate_at=1000)
    url = server.url("/short.aci")
    with pytest.raises(FetchError) as info:
        client.download(url, io.BytesIO())
    assert info.value.message.startswith(f'cannot fetch "{url}": truncated download')
    assert len(server.requests_for("/short.aci")) == 2


@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (500, "Internal Server Error")])
def test_http_error_status_is_a_fetch_error_naming_url_and_status(
    client: HttpClient, server: LocalHttpsServer, status: int, reason: str
) -> None:
    server.add("/bad", b"nope", status=status)
    url = server.url("/bad")
    with pytest.raises(HttpStatusError) as info:
        client.download(url, io.BytesIO())
    assert info.value.message == f'cannot fetch "{url}": HTTP {status} {reason}'
    assert info.value.status_code == status
    assert isinstance(info.value, FetchError)
    assert len(server.requests_for("/bad")) == 1  # statuses are not retried


def test_get_text_and_size_limit(client: HttpClient, server: LocalHttpsServer) -> None:
    server.add("/page", "héllo".encode("latin-1"), content_type="text/html; charset=latin-1")
    assert client.get_text(server.url("/page")) == "héllo"
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        client.get_bytes(server.url("/app.aci"), max_size=1000)


def test_exists(client: HttpClient, server: LocalHttpsServer) -> None:
    assert client.exists(server.url("/app.aci")) is True
    assert client.exists(server.url("/missing")) is False
    assert server.requests_for("/app.aci")[0].method == "HEAD"


def test_connection_refused_is_named(trust_test_ca: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"https://127.0.0.1:{port}/app.aci"
    with HttpClient(resolve={}) as http, pytest.raises(FetchError) as info:
        http.download(url, io.BytesIO())
    assert info.value.message == f'cannot fetch "{url}": connection refused'


def test_timeout_is_named(trust_test_ca: None) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/app.aci"
        with HttpClient(timeout=0.3, resolve={}) as http, pytest.raises(FetchError) as info:
            http.get_bytes(url)
    assert info.value.message == f'cannot fetch "{url}": timed out'


def test_auth_headers_are_sent_per_host(trust_test_ca: None, server: LocalHttpsServer) -> None:
    seen: list[str] = []

    def auth(host: str) -> dict[str, str]:
        seen.append(host)
        return {"Authorization": "Bearer s3cret"} if host == f"127.0.0.1:{server.port}" else {}

    with HttpClient(auth_headers=auth, resolve={}) as http:
        http.get_bytes(server.url("/app.aci"))
    assert seen == [f"127.0.0.1:{server.port}"]
    assert server.requests_for("/app.aci")[0].header("authorization") == "Bearer s3cret"


def test_resolve_override_keeps_host_header_and_tls_name(
    trust_test_ca: None, server: LocalHttpsServer
) -> None:
    with HttpClient(resolve={"example.com:443": f"127.0.0.1:{server.port}"}) as http:
        result = http.download("https://example.com/app.aci", io.BytesIO())
    assert result.final_url == "https://example.com/app.aci"
    assert server.requests_for("/app.aci")[0].header("host") == "example.com"


def test_resolve_override_from_rkt_resolve_env(
    trust_test_ca: None, server: LocalHttpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RKT_RESOLVE", f"example.com=127.0.0.1:{server.port}")
    with HttpClient() as http:
        assert http.get_bytes("https://example.com/app.aci") == BODY


def test_resolve_override_does_not_bypass_certificate_names(
    trust_test_ca: None, server: LocalHttpsServer
) -> None:
    # the server certificate has no SAN for example.org: the TLS name stays the URL's host
    with (
        HttpClient(resolve={"example.org": f"127.0.0.1:{server.port}"}) as http,
        pytest.raises(FetchError, match="certificate verify failed"),
    ):
        http.get_bytes("https://example.org/app.aci")


@pytest.mark.parametrize("spec", ["example.com", "example.com:x=127.0.0.1", "=127.0.0.1:1"])
def test_parse_resolve_rejects_malformed_entries(spec: str) -> None:
    with pytest.raises(UsageError, match="RKT_RESOLVE"):
        parse_resolve(spec)


def test_parse_resolve_accepts_ports_and_ipv6() -> None:
    assert parse_resolve("a.com:443=127.0.0.1:8443, b.org=[::1]:99,") == {
        "a.com:443": "127.0.0.1:8443",
        "b.org": "[::1]:99",
    }


def test_test_server_serves_a_directory_without_escaping_it(tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.aci").write_bytes(b"from disk")
    (tmp_path / "secret").write_bytes(b"outside")
    with (
        LocalHttpsServer(directory=root) as srv,
        HttpClient(InsecureOptions(tls=True), resolve={}) as http,
    ):
        assert http.get_bytes(srv.url("/images/a.aci")) == b"from disk"
        with pytest.raises(HttpStatusError):
            http.get_bytes(srv.url("/%2e%2e/secret"))
