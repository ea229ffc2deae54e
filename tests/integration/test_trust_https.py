"""``rkt trust`` with keys over https, ``ac-discovery-pubkeys``, and ``--trust-keys-from-https``."""

from __future__ import annotations

import json
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
    uncompressed_sha512,
)

APP = "example.com/app"
KEY_PATH = "/keys/app.asc"
KEY_URL = f"https://example.com{KEY_PATH}"


def _trusted(rkt: Rkt) -> list[dict[str, object]]:
    return list(json.loads(rkt.run("trust", "--list", "--format=json").stdout))


def _serve_key(publisher: Publisher) -> None:
    publisher.server.add(KEY_PATH, publisher.key.public_armored, content_type="text/plain")


def _key_file_path(rkt: Rkt, prefix: str, fingerprint: str) -> Path:
    return rkt.local_config / "trustedkeys" / "prefix.d" / prefix / fingerprint


def test_trust_a_key_url_over_https_with_trust_keys_from_https(
    rkt: Rkt, publisher: Publisher
) -> None:
    _serve_key(publisher)

    proc = rkt.run("--trust-keys-from-https", "trust", f"--prefix={APP}", KEY_URL)

    assert proc.stdout == ""
    fpr = publisher.key.fingerprint
    assert _key_file_path(rkt, APP, fpr).read_bytes().strip() != b""
    (listed,) = _trusted(rkt)
    assert (listed["kind"], listed["prefix"], listed["fingerprint"]) == ("prefix", APP, fpr)
    (request,) = publisher.server.requests_for(KEY_PATH)
    assert request.header("Host") == "example.com"


def test_trust_a_key_url_without_review_or_a_terminal_is_refused(
    rkt: Rkt, publisher: Publisher
) -> None:
    _serve_key(publisher)

    proc = rkt.run("trust", f"--prefix={APP}", KEY_URL, check=False)

    assert_refused(proc, KEY_URL, "--skip-fingerprint-review")
    assert _trusted(rkt) == []


def test_trust_refuses_a_key_over_plain_http(rkt: Rkt, publisher: Publisher) -> None:
    _serve_key(publisher)
    url = publisher.server.http_url(KEY_PATH)

    proc = rkt.run("--trust-keys-from-https", "trust", f"--prefix={APP}", url, check=False)

    assert_refused(proc, url, "plain http")
    assert publisher.server.requests == []
    assert _trusted(rkt) == []


def test_trust_refuses_a_key_over_tls_with_an_unknown_ca(
    rkt: Rkt, publisher: Publisher, tmp_path: Path
) -> None:
    _serve_key(publisher)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    rkt.env["SSL_CERT_FILE"] = str(other_ca)

    proc = rkt.run("--trust-keys-from-https", "trust", f"--prefix={APP}", KEY_URL, check=False)

    assert_refused(proc, KEY_URL, "certificate")
    assert _trusted(rkt) == []


def test_trust_without_prefix_or_root_is_refused(rkt: Rkt, publisher: Publisher) -> None:
    proc = rkt.run("trust", "--skip-fingerprint-review", str(publisher.key_file), check=False)

    assert_refused(proc, "--prefix")
    assert _trusted(rkt) == []


def test_trust_prefix_without_key_uses_discovered_pubkeys(rkt: Rkt, publisher: Publisher) -> None:
    _serve_key(publisher)
    publisher.serve_discovery(APP, discovery=False, pubkey_path=KEY_PATH)

    rkt.run("trust", f"--prefix={APP}", "--skip-fingerprint-review")

    (page,) = publisher.server.requests_for("/app")
    assert page.query == "ac-discovery=1"
    assert len(publisher.server.requests_for(KEY_PATH)) == 1
    (listed,) = _trusted(rkt)
    assert (listed["prefix"], listed["fingerprint"]) == (APP, publisher.key.fingerprint)


def test_trust_prefix_without_key_finds_pubkeys_of_a_parent_path(
    rkt: Rkt, publisher: Publisher
) -> None:
    _serve_key(publisher)
    publisher.server.add_discovery("/", pubkeys=[("example.com", f"https://example.com{KEY_PATH}")])

    rkt.run("trust", "--prefix=example.com/team/app", "--skip-fingerprint-review")

    (listed,) = _trusted(rkt)
    assert listed["prefix"] == "example.com/team/app"


def test_trust_prefix_without_key_and_nothing_discovered_is_refused(
    rkt: Rkt, publisher: Publisher
) -> None:
    publisher.serve_discovery(APP)  # ac-discovery only, no ac-discovery-pubkeys

    proc = rkt.run("trust", f"--prefix={APP}", "--skip-fingerprint-review", check=False)

    assert_refused(proc, APP, "ac-discovery-pubkeys")
    assert _trusted(rkt) == []


def _discoverable_signed_image(publisher: Publisher) -> Path:
    _serve_key(publisher)
    aci = publisher.build(APP, compression="gzip")
    publisher.sign(aci)
    publisher.serve(aci, publisher.image_path(APP))
    publisher.serve_discovery(APP, pubkey_path=KEY_PATH)
    return aci


def test_fetch_with_trust_keys_from_https_trusts_discovered_keys(
    rkt: Rkt, publisher: Publisher
) -> None:
    aci = _discoverable_signed_image(publisher)

    proc = rkt.run("--trust-keys-from-https", "fetch", "--full", f"{APP}:1.0.0")

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert publisher.key.fingerprint in proc.stderr  # said loudly which key it trusted
    (listed,) = _trusted(rkt)
    assert (listed["prefix"], listed["fingerprint"]) == (APP, publisher.key.fingerprint)
    assert [img["id"] for img in rkt.image_list()] == [uncompressed_sha512(aci)]


def test_fetch_without_trust_keys_from_https_does_not_trust_discovered_keys(
    rkt: Rkt, publisher: Publisher
) -> None:
    _discoverable_signed_image(publisher)
    rkt.image_list()
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", f"{APP}:1.0.0", check=False)

    assert_refused(proc, f'"{APP}"', f"rkt trust --prefix={APP}")
    assert publisher.server.requests_for(KEY_PATH) == []
    assert _trusted(rkt) == []
    assert_store_unchanged(rkt, before)


def test_fetch_with_trust_keys_from_https_keeps_existing_trust(
    rkt: Rkt, publisher: Publisher
) -> None:
    # A prefix that already has keys is not extended by discovery (trust on first use only).
    other = publisher.gpg.generate_key("Other <other@example.com>")
    other_file = publisher.keydir / "other.asc"
    other_file.write_bytes(other.public_armored)
    rkt.run("trust", f"--prefix={APP}", "--skip-fingerprint-review", str(other_file))
    _discoverable_signed_image(publisher)

    proc = rkt.run("--trust-keys-from-https", "fetch", f"{APP}:1.0.0", check=False)

    assert_refused(proc, f'"{APP}"', "not trusted")
    assert publisher.server.requests_for(KEY_PATH) == []
    assert [k["fingerprint"] for k in _trusted(rkt)] == [other.fingerprint]
