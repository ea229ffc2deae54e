"""HTTP caching (ETag, Cache-Control max-age) and ``--pull-policy=new|update|never``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _signed(rkt: Rkt, publisher: Publisher, path: str, **route: Any) -> Path:
    trust_prefix(rkt, APP, publisher.key_file)
    aci = publisher.build(APP, compression="gzip")
    publisher.sign(aci)
    publisher.serve(aci, path, **route)
    return aci


def _blob_files(rkt: Rkt) -> list[tuple[str, int]]:
    blobs = sorted((rkt.dir / "cas" / "blob").rglob("sha512-*"))
    return [(str(p), p.stat().st_ino) for p in blobs]


def test_second_fetch_revalidates_with_if_none_match_and_reuses_the_image(
    rkt: Rkt, publisher: Publisher
) -> None:
    aci = _signed(rkt, publisher, "/app.aci", etag='"v1"')
    url = publisher.server.url("/app.aci")
    first = rkt.run("fetch", "--full", url).stdout
    blobs = _blob_files(rkt)
    publisher.server.clear_log()

    second = rkt.run("fetch", "--full", url).stdout  # default pull policy: update

    assert first == second == uncompressed_sha512(aci) + "\n"
    (request,) = publisher.server.requests_for("/app.aci")
    assert request.header("If-None-Match") == '"v1"'  # answered 304 by the server
    assert publisher.server.requests_for("/app.aci.asc") == []  # nothing re-verified
    assert _blob_files(rkt) == blobs
    assert len(rkt.image_list()) == 1
    assert list((rkt.dir / "cas" / "tmp").iterdir()) == []


def test_a_changed_etag_downloads_the_new_image(rkt: Rkt, publisher: Publisher) -> None:
    _signed(rkt, publisher, "/app.aci", etag='"v1"')
    url = publisher.server.url("/app.aci")
    first = rkt.run("fetch", "--full", url).stdout.strip()
    newer = publisher.build(APP, "1.0.1", compression="gzip")
    publisher.sign(newer)
    publisher.serve(newer, "/app.aci", etag='"v2"')
    publisher.server.clear_log()

    second = rkt.run("fetch", "--full", url).stdout.strip()

    assert second == uncompressed_sha512(newer) != first
    (request,) = publisher.server.requests_for("/app.aci")
    assert request.header("If-None-Match") == '"v1"'
    assert len(publisher.server.requests_for("/app.aci.asc")) == 1
    assert sorted(str(img["id"]) for img in rkt.image_list()) == sorted([first, second])


def test_fresh_max_age_means_no_request_at_all(rkt: Rkt, publisher: Publisher) -> None:
    aci = _signed(rkt, publisher, "/app.aci", cache_control="max-age=3600")
    url = publisher.server.url("/app.aci")
    rkt.run("fetch", url)
    before = StoreSnapshot.take(rkt)
    publisher.server.clear_log()

    proc = rkt.run("fetch", "--full", url)

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert publisher.server.requests == []
    assert_store_unchanged(rkt, before)


def test_pull_policy_new_uses_the_store_for_a_url(rkt: Rkt, publisher: Publisher) -> None:
    aci = _signed(rkt, publisher, "/app.aci")  # no caching headers at all
    url = publisher.server.url("/app.aci")
    rkt.run("fetch", url)
    publisher.server.clear_log()

    proc = rkt.run("fetch", "--full", "--pull-policy=new", url)

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert publisher.server.requests == []


def test_pull_policy_new_uses_the_store_for_a_name(rkt: Rkt, publisher: Publisher) -> None:
    aci = _signed(rkt, publisher, publisher.image_path(APP))
    publisher.serve_discovery(APP)
    rkt.run("fetch", f"{APP}:1.0.0")
    publisher.server.clear_log()

    proc = rkt.run("fetch", "--full", "--pull-policy=new", f"{APP}:1.0.0")

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert publisher.server.requests == []  # not even discovery


def test_pull_policy_update_rediscovers_a_name(rkt: Rkt, publisher: Publisher) -> None:
    aci = _signed(rkt, publisher, publisher.image_path(APP), etag='"n1"')
    publisher.serve_discovery(APP)
    rkt.run("fetch", f"{APP}:1.0.0")
    publisher.server.clear_log()

    proc = rkt.run("fetch", "--full", f"{APP}:1.0.0")

    assert proc.stdout == uncompressed_sha512(aci) + "\n"
    assert len(publisher.server.requests_for("/app")) == 1
    (request,) = publisher.server.requests_for(publisher.image_path(APP))
    assert request.header("If-None-Match") == '"n1"'


def test_pull_policy_never_uses_the_store(rkt: Rkt, publisher: Publisher) -> None:
    aci = _signed(rkt, publisher, publisher.image_path(APP))
    publisher.serve_discovery(APP)
    rkt.run("fetch", f"{APP}:1.0.0")
    publisher.server.clear_log()

    by_name = rkt.run("fetch", "--full", "--pull-policy=never", f"{APP}:1.0.0")

    assert by_name.stdout == uncompressed_sha512(aci) + "\n"
    assert publisher.server.requests == []


def test_pull_policy_never_refuses_an_unknown_name(rkt: Rkt, publisher: Publisher) -> None:
    rkt.image_list()
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("fetch", "--pull-policy=never", "example.com/unknown:1.0.0", check=False)

    assert_refused(proc, "example.com/unknown", "--pull-policy=never")
    assert publisher.server.requests == []
    assert_store_unchanged(rkt, before)


def test_pull_policy_never_refuses_an_unknown_url(rkt: Rkt, publisher: Publisher) -> None:
    url = publisher.server.url("/app.aci")

    proc = rkt.run("fetch", "--pull-policy=never", url, check=False)

    assert_refused(proc, url, "--pull-policy=never")
    assert publisher.server.requests == []
