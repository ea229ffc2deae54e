"""appc meta discovery (appc discovery.md) against a local HTTPS server posing as example.com."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from rkt.errors import FetchError, NotFoundError, UsageError
from rkt.fetch.discovery import (
    DiscoveryTag,
    Endpoint,
    discover_image,
    discover_pubkeys,
    parse_discovery_tags,
    prefix_matches,
    render_template,
)
from rkt.fetch.http import HttpClient
from rkt.settings import InsecureOptions
from tests.support.https_server import LocalHttpsServer

LABELS = {"version": "1.0", "os": "linux", "arch": "amd64"}
TEMPLATE = "https://example.com/images/{os}/{arch}/{name}-{version}.{ext}"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHttpsServer]:
    with LocalHttpsServer(plain_http=True) as srv:
        monkeypatch.setenv("SSL_CERT_FILE", str(srv.write_ca_pem(tmp_path / "ca.pem")))
        yield srv


@pytest.fixture
def client(server: LocalHttpsServer) -> Iterator[HttpClient]:
    resolve = {"example.com:443": f"127.0.0.1:{server.port}"}
    with HttpClient(InsecureOptions(), timeout=10, resolve=resolve) as http:
        yield http


def discovery_queries(server: LocalHttpsServer) -> list[str]:
    return [r.path for r in server.requests if r.query == "ac-discovery=1"]


def test_discovery_renders_templates_with_labels(
    server: LocalHttpsServer, client: HttpClient
) -> None:
    server.add_discovery("/app", discovery=[("example.com/app", TEMPLATE)])
    endpoints = discover_image("example.com/app", LABELS, client)
    base = "https://example.com/images/linux/amd64/example.com/app-1.0"
    assert endpoints == [Endpoint(f"{base}.aci", f"{base}.aci.asc")]
    assert server.requests[0].header("host") == "example.com"


def test_discovery_fills_any_label_and_prefers_https(
    server: LocalHttpsServer, client: HttpClient
) -> None:
    server.add_discovery(
        "/app",
        discovery=[
            ("example.com", "http://mirror.example.com/{channel}/{name}.{ext}"),
            ("example.com", "https://example.com/{channel}/{name}.{ext}"),
            ("example.com", "hdfs://store.example.com/{name}.{ext}"),
        ],
    )
    endpoints = discover_image("example.com/app", {**LABELS, "channel": "beta"}, client)
    assert [e.aci_url for e in endpoints] == [
        "https://example.com/beta/example.com/app.aci",
        "http://mirror.example.com/beta/example.com/app.aci",
    ]


def test_discovery_walks_up_to_parent_paths(server: LocalHttpsServer, client: HttpClient) -> None:
    server.add_discovery("/group", pubkeys=[("example.com", "https://example.com/keys.asc")])
    server.add_discovery("/", discovery=[("example.com", TEMPLATE)])
    endpoints = discover_image("example.com/group/app", LABELS, client)
    assert endpoints[0].aci_url.endswith("/example.com/group/app-1.0.aci")
    # /group/app is a 404, /group has no ac-discovery tag, / has the template
    assert discovery_queries(server) == ["/group/app", "/group", "/"]


def test_discovery_ignores_tags_whose_prefix_does_not_match(
    server: LocalHttpsServer, client: HttpClient
) -> None:
    server.add_discovery(
        "/app",
        discovery=[
            ("example.com/other", "https://example.com/wrong/{name}.{ext}"),
            ("example.com/ap", "https://example.com/partial/{name}.{ext}"),
            ("example.com/app/sub", "https://example.com/deeper/{name}.{ext}"),
        ],
    )
    server.add_discovery("/", discovery=[("example.com", "https://example.com/right/{name}.{ext}")])
    endpoints = discover_image("example.com/app", LABELS, client)
    assert [e.aci_url for e in endpoints] == ["https://example.com/right/example.com/app.aci"]


def test_discovery_skips_templates_with_unfilled_placeholders(
    server: LocalHttpsServer, client: HttpClient
) -> None:
    server.add_discovery(
        "/app",
        discovery=[
            ("example.com/app", "https://example.com/{channel}/{name}.{ext}"),
            ("example.com/app", "https://example.com/no-ext/{name}.aci"),
            ("example.com/app", "https://example.com/ok/{name}-{version}.{ext}"),
        ],
    )
    endpoints = discover_image("example.com/app", LABELS, client)
    assert endpoints == [
        Endpoint(
            "https://example.com/ok/example.com/app-1.0.aci",
            "https://example.com/ok/example.com/app-1.0.aci.asc",
        )
    ]


def test_discovery_not_found_names_image_and_what_was_tried(
    server: LocalHttpsServer, client: HttpClient
) -> None:
    server.add_discovery("/app", discovery=[("example.com/app", TEMPLATE)])
    with pytest.raises(NotFoundError) as info:
        discover_image("example.com/app", {"os": "linux"}, client)  # no version, no arch
    message = info.value.message
    assert message.startswith('image "example.com/app": discovery found nothing')
    assert "https://example.com/app?ac-discovery=1: ac-discovery templates need values for: " \
        "arch, version" in message  # fmt: skip
    assert "https://example.com?ac-discovery=1: HTTP 404" in message
    assert "\n" not in message


def test_discovery_transport_failure_stops_the_walk(
    server: LocalHttpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    resolve = {"example.com": f"127.0.0.1:{server.port}"}
    with HttpClient(resolve=resolve) as http, pytest.raises(FetchError) as info:
        discover_image("example.com/group/app", LABELS, http)
    assert not isinstance(info.value, NotFoundError)
    assert "certificate verify failed" in info.value.message
    assert "https://example.com/group?" not in info.value.message
    assert "--insecure-options=tls" in (info.value.hint or "")


def test_discovery_over_plain_http_only_when_allowed(server: LocalHttpsServer) -> None:
    server.add_discovery("/app", discovery=[("example.com/app", TEMPLATE)])
    with socket.socket() as sock:  # a port nobody listens on: https is refused
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    resolve = {
        "example.com:443": f"127.0.0.1:{closed_port}",
        "example.com:80": f"127.0.0.1:{server.http_port}",
    }
    with HttpClient(InsecureOptions(http=True), resolve=resolve) as http:
        with pytest.raises(FetchError, match="connection refused"):
            discover_image("example.com/app", LABELS, http)
        endpoints = discover_image("example.com/app", LABELS, http, insecure_http=True)
    assert endpoints[0].aci_url.endswith("app-1.0.aci")
    assert [r.scheme for r in server.requests] == ["http"]


def test_pubkey_discovery_accepts_parent_prefixes(
    server: LocalHttpsServer, client: HttpClient
) -> None:
    server.add_discovery(
        "/app",
        discovery=[("example.com/app", TEMPLATE)],
        pubkeys=[
            ("example.com", "https://example.com/pubkeys.gpg"),
            ("example.com/application", "https://example.com/not-ours.gpg"),
            ("example.com", "https://example.com/pubkeys.gpg"),
        ],
    )
    assert discover_pubkeys("example.com/app", client) == ["https://example.com/pubkeys.gpg"]


def test_pubkey_discovery_not_found(server: LocalHttpsServer, client: HttpClient) -> None:
    server.add_discovery("/", discovery=[("example.com", TEMPLATE)])
    with pytest.raises(NotFoundError, match=r'prefix "example\.com/app"'):
        discover_pubkeys("example.com/app", client)
    assert discovery_queries(server) == ["/app", "/"]


def test_discovery_rejects_invalid_names(client: HttpClient) -> None:
    with pytest.raises(UsageError):
        discover_image("https://example.com/app", LABELS, client)


def test_parse_discovery_tags_reads_only_well_formed_meta_tags() -> None:
    page = """<html><head>
      <META NAME="ac-discovery" CONTENT="  example.com   https://e.com/{name}.{ext} ">
      <meta name="ac-discovery-pubkeys" content="example.com/ https://e.com/k.gpg" />
      <meta name="ac-discovery" content="only-one-field">
      <meta name="ac-discovery" content="a b c">
      <meta name="go-import" content="example.com git https://e.com/repo">
      <meta name="ac-discovery" content="example.com https://e.com/{name}.{ext}&amp;x=1">
    </head></html>"""
    assert parse_discovery_tags(page) == [
        DiscoveryTag("ac-discovery", "example.com", "https://e.com/{name}.{ext}"),
        DiscoveryTag("ac-discovery-pubkeys", "example.com", "https://e.com/k.gpg"),
        DiscoveryTag("ac-discovery", "example.com", "https://e.com/{name}.{ext}&x=1"),
    ]


@pytest.mark.parametrize(
    ("prefix", "name", "matches"),
    [
        ("example.com", "example.com", True),
        ("example.com", "example.com/app", True),
        ("example.com/app", "example.com/app/sub", True),
        ("example.com/ap", "example.com/app", False),
        ("example.com/app", "example.com", False),
        ("example.co", "example.com", False),
    ],
)
def test_prefix_matches_whole_path_components(prefix: str, name: str, matches: bool) -> None:
    assert prefix_matches(prefix, name) is matches


def test_render_template_is_single_pass_and_strict() -> None:
    variables = {"name": "a.com/{os}", "os": "linux", "ext": "aci"}
    assert render_template("https://{name}/{os}.{ext}", variables) == "https://a.com/{os}/linux.aci"
    assert render_template("https://{name}/{arch}.{ext}", variables) is None
