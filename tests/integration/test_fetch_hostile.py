"""Broken and hostile downloads: each refused with exit 254 and one line, the store untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.fixture
def signed(rkt: Rkt, publisher: Publisher) -> Path:
    """A trusted, signed gzip ACI (not yet served), and a store that already exists."""
    trust_prefix(rkt, APP, publisher.key_file)
    aci = publisher.build(APP, compression="gzip")
    publisher.sign(aci)
    rkt.image_list()
    return aci


def _signature(aci: Path) -> bytes:
    return aci.with_name(aci.name + ".asc").read_bytes()


def test_a_missing_signature_file_for_a_url_is_refused(
    rkt: Rkt, publisher: Publisher, signed: Path, tmp_path: Path
) -> None:
    url = publisher.serve(signed, "/app.aci")
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", f"--signature={tmp_path / 'absent.asc'}", url, check=False)

    assert_refused(proc, f'"{APP}"', "no signature", "absent.asc")
    assert publisher.server.requests_for("/app.aci.asc") == []  # --signature replaces it
    assert_store_unchanged(rkt, before)


def test_a_corrupt_compressed_stream_is_refused_naming_the_url(
    rkt: Rkt, publisher: Publisher, signed: Path
) -> None:
    data = bytearray(signed.read_bytes())
    data[20] ^= 0xFF  # inside the deflate stream, before the manifest
    publisher.server.add("/corrupt.aci", bytes(data))
    publisher.server.add("/corrupt.aci.asc", _signature(signed))
    url = publisher.server.url("/corrupt.aci")
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, f'image "{url}"')
    assert_store_unchanged(rkt, before)


def test_a_file_that_is_not_an_aci_is_refused(rkt: Rkt, publisher: Publisher, signed: Path) -> None:
    publisher.server.add("/junk.aci", b"junk" * 1000)
    publisher.server.add("/junk.aci.asc", _signature(signed))
    url = publisher.server.url("/junk.aci")
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, f'image "{url}"')
    assert_store_unchanged(rkt, before)


def test_a_malformed_signature_is_refused(rkt: Rkt, publisher: Publisher, signed: Path) -> None:
    publisher.server.add("/app.aci", signed.read_bytes())
    publisher.server.add("/app.aci.asc", b"-----BEGIN PGP SIGNATURE-----\n\nnope\n")
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", publisher.server.url("/app.aci"), check=False)

    assert_refused(proc, f'"{APP}"', "signature")
    assert_store_unchanged(rkt, before)


def test_a_signature_of_another_image_is_refused(
    rkt: Rkt, publisher: Publisher, signed: Path
) -> None:
    other = publisher.build(APP, "2.0.0")
    publisher.sign(other)
    publisher.server.add("/app.aci", signed.read_bytes())
    publisher.server.add("/app.aci.asc", _signature(other))  # right key, wrong data
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", publisher.server.url("/app.aci"), check=False)

    assert_refused(proc, f'"{APP}"', "signature verification failed")
    assert_store_unchanged(rkt, before)


def test_a_download_truncated_every_time_is_refused(
    rkt: Rkt, publisher: Publisher, signed: Path
) -> None:
    publisher.serve(signed, "/app.aci", truncate_at=1000)
    url = publisher.server.url("/app.aci")
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, url, "truncated")
    assert len(publisher.server.requests_for("/app.aci")) == 2  # one clean retry
    assert_store_unchanged(rkt, before)


def test_a_download_truncated_once_is_retried(rkt: Rkt, publisher: Publisher, signed: Path) -> None:
    url = publisher.serve(signed, "/app.aci", truncate_at=1000, truncate_times=1)

    proc = rkt.run("fetch", "--full", url)

    assert proc.stdout == uncompressed_sha512(signed) + "\n"
    assert len(publisher.server.requests_for("/app.aci")) == 2
    assert [img["id"] for img in rkt.image_list()] == [uncompressed_sha512(signed)]
