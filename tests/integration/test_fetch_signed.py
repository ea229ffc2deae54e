"""Verified fetch over https (issue 2, acceptance items 2 and 3; "Trust and fetch").

An ACI built by ``rkt image build`` from busybox-static, signed by a gpg key made in the test and
trusted by prefix, is fetched over https from a local server, by URL and by appc name through meta
discovery. Tampered, wrongly signed, sibling-prefix and unsigned images are refused with exit 254
and one line, and leave the store byte-for-byte as it was.
"""

from __future__ import annotations

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
    sha512sum_of_tar,
    trust_prefix,
    uncompressed_sha512,
)

APP = "example.com/app"


def test_fetch_signed_gzip_aci_by_url_lists_it_with_the_tar_sha512_as_id(
    rkt: Rkt, publisher: Publisher
) -> None:
    trust_prefix(rkt, APP, publisher.key_file)
    aci = publisher.build(APP, compression="gzip")
    assert aci.read_bytes()[:2] == b"\x1f\x8b"  # compressed: the ID is not the file's hash
    publisher.sign(aci)
    url = publisher.serve(aci, "/app.aci")

    proc = rkt.run("fetch", "--full", url)

    expected = uncompressed_sha512(aci)
    assert expected == sha512sum_of_tar(aci)
    assert proc.stdout == expected + "\n"
    (listed,) = rkt.image_list()
    assert listed["id"] == expected
    assert listed["name"] == APP
    assert listed["labels"] == {"version": "1.0.0", "os": "linux", "arch": "amd64"}
    assert [r.header("If-None-Match") for r in publisher.server.requests_for("/app.aci")] == [None]
    assert len(publisher.server.requests_for("/app.aci.asc")) == 1


def test_fetch_by_name_uses_meta_discovery_and_verifies(rkt: Rkt, publisher: Publisher) -> None:
    trust_prefix(rkt, APP, publisher.key_file)
    aci = publisher.build(APP, compression="gzip")
    publisher.sign(aci)
    publisher.serve(aci, publisher.image_path(APP))
    publisher.serve_discovery(APP)

    proc = rkt.run("fetch", "--full", f"{APP}:1.0.0")

    expected = uncompressed_sha512(aci)
    assert proc.stdout == expected + "\n"
    assert [img["id"] for img in rkt.image_list()] == [expected]
    (page,) = publisher.server.requests_for("/app")
    assert page.query == "ac-discovery=1"
    assert page.header("Host") == "example.com"
    assert len(publisher.server.requests_for(publisher.image_path(APP))) == 1
    assert len(publisher.server.requests_for(publisher.image_path(APP) + ".asc")) == 1


def test_fetch_by_name_refuses_an_image_with_another_name(rkt: Rkt, publisher: Publisher) -> None:
    trust_prefix(rkt, "example.com", publisher.key_file)
    aci = publisher.build("example.com/other")
    publisher.sign(aci)
    publisher.serve(aci, publisher.image_path(APP))
    publisher.serve_discovery(APP)

    proc = rkt.run("fetch", f"{APP}:1.0.0", check=False)

    assert_refused(proc, APP, "example.com/other")


# -- refusals: exit 254, one line, the store byte-for-byte unchanged ----------------------------


@pytest.fixture
def populated(rkt: Rkt, publisher: Publisher) -> StoreSnapshot:
    """A store holding one good, verified image, and its snapshot."""
    trust_prefix(rkt, APP, publisher.key_file)
    good = publisher.build(APP, "0.9.0", compression="gzip")
    publisher.sign(good)
    rkt.run("fetch", publisher.serve(good, "/good.aci"))
    return StoreSnapshot.take(rkt)


def test_refuses_a_tampered_image(rkt: Rkt, publisher: Publisher, populated: StoreSnapshot) -> None:
    aci = publisher.build(APP, extra_files={"etc/motd": b"hello from the publisher\n"})
    publisher.sign(aci)
    data = bytearray(aci.read_bytes())
    at = data.index(b"hello from the publisher")
    data[at] = ord("j")  # still a valid tar with a valid manifest: only the signature can tell
    aci.write_bytes(bytes(data))
    url = publisher.serve(aci, "/tampered.aci")

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, f'"{APP}"', "signature")
    assert_store_unchanged(rkt, populated)


def test_refuses_an_image_signed_by_an_untrusted_key(
    rkt: Rkt, publisher: Publisher, populated: StoreSnapshot
) -> None:
    stranger = publisher.gpg.generate_key("Stranger <stranger@example.org>")
    aci = publisher.build(APP, "2.0.0")
    publisher.sign(aci, signer=stranger)
    url = publisher.serve(aci, "/stranger.aci")

    proc = rkt.run("fetch", url, check=False)

    line = assert_refused(proc, f'"{APP}"', f"rkt trust --prefix={APP}")
    assert "not trusted" in line
    assert_store_unchanged(rkt, populated)


def test_refuses_an_image_whose_key_is_trusted_only_for_a_sibling_prefix(
    rkt: Rkt, publisher: Publisher, populated: StoreSnapshot
) -> None:
    # rkt's keystore matched string prefixes, so a key for example.com/foo verified
    # example.com/foobar; prefixes must match whole path components.
    trust_prefix(rkt, "example.com/foo", publisher.key_file)
    before = StoreSnapshot.take(rkt)  # trusting touches config, not the store
    assert not before.diff(populated)
    aci = publisher.build("example.com/foobar")
    publisher.sign(aci)
    url = publisher.serve(aci, "/foobar.aci")

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, '"example.com/foobar"', "rkt trust --prefix=example.com/foobar")
    assert_store_unchanged(rkt, populated)


def test_a_prefix_key_still_verifies_names_below_it(rkt: Rkt, publisher: Publisher) -> None:
    trust_prefix(rkt, "example.com/foo", publisher.key_file)
    aci = publisher.build("example.com/foo/bar")
    publisher.sign(aci)

    proc = rkt.run("fetch", "--full", publisher.serve(aci, "/foo-bar.aci"))

    assert proc.stdout.strip() == uncompressed_sha512(aci)


def test_refuses_an_unsigned_image(
    rkt: Rkt, publisher: Publisher, populated: StoreSnapshot
) -> None:
    aci = publisher.build(APP, "3.0.0")
    url = publisher.serve(aci, "/unsigned.aci", signature=False)

    proc = rkt.run("fetch", url, check=False)

    assert_refused(proc, f'"{APP}"', "no signature", "--insecure-options=image")
    assert_store_unchanged(rkt, populated)


def test_refuses_an_unsigned_local_file(
    rkt: Rkt, publisher: Publisher, populated: StoreSnapshot
) -> None:
    aci = publisher.build(APP, "3.1.0")

    proc = rkt.run("fetch", str(aci), check=False)

    assert_refused(proc, f'"{APP}"', "no signature")
    assert_store_unchanged(rkt, populated)


def test_refuses_a_signed_image_when_no_key_is_trusted_for_it(
    rkt: Rkt, publisher: Publisher, populated: StoreSnapshot
) -> None:
    aci = publisher.build("example.com/nobody")
    publisher.sign(aci)

    proc = rkt.run("fetch", publisher.serve(aci, "/nobody.aci"), check=False)

    assert_refused(proc, '"example.com/nobody"', "rkt trust --prefix=example.com/nobody")
    assert_store_unchanged(rkt, populated)


def test_insecure_image_fetches_an_unsigned_image_and_warns(rkt: Rkt, publisher: Publisher) -> None:
    aci = publisher.build(APP, compression="gzip")
    url = publisher.serve(aci, "/unsigned.aci", signature=False)

    proc = rkt.run("--insecure-options=image", "fetch", "--full", url)

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert "warning" in proc.stderr and "signature verification" in proc.stderr
    assert "--insecure-options=image" in proc.stderr
    assert publisher.server.requests_for("/unsigned.aci.asc") == []
    assert [img["id"] for img in rkt.image_list()] == [uncompressed_sha512(aci)]


def test_fetch_with_a_local_signature_file(rkt: Rkt, publisher: Publisher) -> None:
    trust_prefix(rkt, APP, publisher.key_file)
    aci = publisher.build(APP)
    sig = publisher.sign(aci)
    moved = sig.rename(sig.with_name("elsewhere.sig"))

    proc = rkt.run("fetch", "--full", f"--signature={moved}", str(aci))

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
