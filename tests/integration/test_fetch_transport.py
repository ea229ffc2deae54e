"""Transport policy of ``rkt fetch``: plain http and unverified TLS only when asked for."""

from __future__ import annotations

from pathlib import Path

import trustme

from tests.integration.conftest import Rkt
from tests.support.fetch_env import (
    Publisher,
    StoreSnapshot,
    assert_refused,
    assert_store_unchanged,
    gpg_fixture,  # noqa: F401  (a fixture: pytest finds it by name)
    https_server_fixture,  # noqa: F401  (a fixture: pytest finds it by name)
    publisher_fixture,  # noqa: F401  (a fixture: pytest finds it by name)
    trust_prefix,
    uncompressed_sha512,
)

APP = "example.com/app"


def _signed(rkt: Rkt, publisher: Publisher, path: str) -> Path:
    trust_prefix(rkt, APP, publisher.key_file)
    aci = publisher.build(APP, compression="gzip")
    publisher.sign(aci)
    publisher.serve(aci, path)
    return aci


def test_plain_http_is_refused_without_insecure_http(rkt: Rkt, publisher: Publisher) -> None:
    _signed(rkt, publisher, "/app.aci")
    url = publisher.server.http_url("/app.aci")
    rkt.image_list()  # create the store, so that "unchanged" means something
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, url, "--insecure-options=http")
    assert publisher.server.requests == []  # refused before connecting
    assert_store_unchanged(rkt, before)


def test_plain_http_is_fetched_with_insecure_http(rkt: Rkt, publisher: Publisher) -> None:
    aci = _signed(rkt, publisher, "/app.aci")
    url = publisher.server.http_url("/app.aci")

    proc = rkt.run("--insecure-options=http", "fetch", "--full", url)

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert [r.scheme for r in publisher.server.requests_for("/app.aci")] == ["http"]
    assert [r.scheme for r in publisher.server.requests_for("/app.aci.asc")] == ["http"]
    assert [img["id"] for img in rkt.image_list()] == [uncompressed_sha512(aci)]


def test_https_redirect_to_plain_http_is_refused(rkt: Rkt, publisher: Publisher) -> None:
    _signed(rkt, publisher, "/app.aci")
    publisher.server.add_redirect("/moved.aci", publisher.server.http_url("/app.aci"))

    proc = rkt.run("fetch", publisher.server.url("/moved.aci"), check=False)

    assert_refused(proc, "plain http", "--insecure-options=http")
    assert publisher.server.requests_for("/app.aci") == []


def test_tls_with_an_unknown_ca_is_refused(rkt: Rkt, publisher: Publisher, tmp_path: Path) -> None:
    _signed(rkt, publisher, "/app.aci")
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    rkt.env["SSL_CERT_FILE"] = str(other_ca)
    rkt.image_list()
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", publisher.server.url("/app.aci"), check=False)

    assert_refused(proc, publisher.server.url("/app.aci"), "certificate", "--insecure-options=tls")
    assert publisher.server.requests == []  # the handshake failed: no request was sent
    assert_store_unchanged(rkt, before)


def test_tls_with_an_unknown_ca_is_accepted_with_insecure_tls(
    rkt: Rkt, publisher: Publisher, tmp_path: Path
) -> None:
    aci = _signed(rkt, publisher, "/app.aci")
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    rkt.env["SSL_CERT_FILE"] = str(other_ca)

    proc = rkt.run("--insecure-options=tls", "fetch", "--full", publisher.server.url("/app.aci"))

    # tls only loosens the transport: the signature was still fetched and checked.
    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert len(publisher.server.requests_for("/app.aci.asc")) == 1


def test_discovery_over_tls_with_an_unknown_ca_is_refused(
    rkt: Rkt, publisher: Publisher, tmp_path: Path
) -> None:
    _signed(rkt, publisher, publisher.image_path(APP))
    publisher.serve_discovery(APP)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    rkt.env["SSL_CERT_FILE"] = str(other_ca)

    proc = rkt.run("fetch", f"{APP}:1.0.0", check=False)

    assert_refused(proc, APP, "certificate")
    assert publisher.server.requests == []


def test_a_missing_image_is_refused_with_the_http_status(rkt: Rkt, publisher: Publisher) -> None:
    url = publisher.server.url("/nowhere.aci")

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, url, "404")
