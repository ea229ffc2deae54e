"""Privilege separation as rkt has it (issue 2, "Trust and fetch").

Members of group ``rkt`` fetch into and read the store without root, because root made ``cas/``
group ``rkt``, setgid and group-writable; changing trust needs root or group ``rkt-admin``; users in
neither group are refused with one clear line.
"""

from __future__ import annotations

import grp
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.integration.conftest import ImageFactory, Rkt
from tests.support.fetch_env import (
    StoreSnapshot,
    assert_refused,
    assert_store_unchanged,
    gpg_fixture,  # noqa: F401  (a fixture: pytest finds it by name)
    https_server_fixture,  # noqa: F401  (a fixture: pytest finds it by name)
    serve_for,
    trust_prefix,
    uncompressed_sha512,
)
from tests.support.gpg import GpgHome
from tests.support.https_server import LocalHttpsServer

MEMBER = "rkt-tester"  # in group rkt, not in rkt-admin
OUTSIDER = "rkt-outsider"  # in neither group
APP = "example.com/app"


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def _ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        _run("groupadd", "--system", name)


def _ensure_user(name: str, groups: list[str]) -> None:
    """A system user without a home whose supplementary groups are exactly ``groups``."""
    exists = subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode == 0
    if not exists:
        _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name)
    _run("usermod", "-G", ",".join(groups), name)  # an empty list clears them


@pytest.fixture(scope="session")
def unprivileged_users() -> None:
    """Groups rkt and rkt-admin (as scripts/setup.sh makes them) and the two test users."""
    require_root()
    for tool in ("groupadd", "useradd", "usermod", "runuser"):
        require_tool(tool)
    _ensure_group("rkt")
    _ensure_group("rkt-admin")
    _ensure_user(MEMBER, ["rkt"])
    _ensure_user(OUTSIDER, [])


@pytest.fixture
def shared_rkt(unprivileged_users: None) -> Iterator[Rkt]:
    """An rkt bound to dirs every user can traverse (pytest's tmp_path is 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix="rkt-priv-", dir="/tmp"))
    try:
        root.chmod(0o755)
        yield Rkt(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def shared_images(busybox_rootfs: Path, shared_rkt: Rkt) -> ImageFactory:
    work = shared_rkt.root / "images"
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    return ImageFactory(busybox_rootfs, work, shared_rkt)


def _readable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def _make_store_as_root(rkt: Rkt) -> None:
    assert rkt.image_list() == []
    rkt_gid = grp.getgrnam("rkt").gr_gid
    for sub in ("cas", "cas/db", "cas/blob", "cas/tmp", "cas/locks", "cas/tree"):
        st = (rkt.dir / sub).stat()
        assert st.st_gid == rkt_gid, sub
        assert stat.S_IMODE(st.st_mode) == 0o2775, f"{sub}: {oct(st.st_mode)}"
    index = (rkt.dir / "cas" / "db" / "index.sqlite").stat()
    assert index.st_gid == rkt_gid
    assert stat.S_IMODE(index.st_mode) & 0o060 == 0o060


def test_a_member_of_rkt_fetches_a_signed_image_and_lists_it(
    shared_rkt: Rkt, shared_images: ImageFactory, gpg: GpgHome
) -> None:
    rkt = shared_rkt
    key = gpg.generate_key("Publisher <publisher@example.com>")
    key_file = rkt.root / "key.asc"
    key_file.write_bytes(key.public_armored)
    trust_prefix(rkt, APP, key_file)  # as root
    aci = _readable(shared_images.build(APP, compression="gzip"))
    _readable(gpg.write_signature(aci, key.fingerprint))
    _make_store_as_root(rkt)

    fetched = rkt.run("fetch", "--full", str(aci), user=MEMBER)
    listed = rkt.run("image", "list", "--format=json", user=MEMBER)

    assert fetched.stdout == uncompressed_sha512(aci) + "\n"
    assert fetched.stderr == ""
    assert f'"id": "{uncompressed_sha512(aci)}"' in listed.stdout
    assert [img["id"] for img in rkt.image_list()] == [uncompressed_sha512(aci)]  # root sees it
    blob = next((rkt.dir / "cas" / "blob").rglob("sha512-*"))
    assert blob.stat().st_gid == grp.getgrnam("rkt").gr_gid


def test_a_member_of_rkt_may_not_remove_images_the_pods_it_cannot_see_may_use(
    shared_rkt: Rkt, shared_images: ImageFactory
) -> None:
    """Pods are root's (``pods/`` is 0750): ``image rm`` and ``image gc`` cannot tell whether
    one uses an image, so a member of group rkt gets one line and nothing is removed (gc used
    to pass over the pods it could not see); root may."""
    rkt = shared_rkt
    aci = _readable(shared_images.build(APP))
    _make_store_as_root(rkt)
    image_id = rkt.run("--insecure-options=image", "fetch", "--full", str(aci)).stdout.strip()
    rkt.run("--insecure-options=image", "prepare", "--quiet", APP, "--exec=/bin/true")
    refused = rkt.run("image", "rm", image_id, user=MEMBER, check=False)
    assert refused.returncode == 254 and refused.stderr.count("\n") == 1
    assert "cannot see which pods use images" in refused.stderr and "run as root" in refused.stderr
    assert "Traceback" not in refused.stderr
    gc = rkt.run("image", "gc", "--grace-period=0s", user=MEMBER, check=False)
    assert gc.returncode == 254 and "cannot see which pods use images" in gc.stderr
    assert image_id in {img["id"] for img in rkt.image_list()}
    rkt.run("gc", "--grace-period=0s", "--expire-prepared=0s")
    rkt.run("image", "rm", image_id)  # root, no pod left


def test_a_member_of_rkt_fetches_with_insecure_image_and_reads_the_manifest(
    shared_rkt: Rkt, shared_images: ImageFactory
) -> None:
    rkt = shared_rkt
    aci = _readable(shared_images.build(APP))
    _make_store_as_root(rkt)

    fetched = rkt.run("--insecure-options=image", "fetch", "--full", str(aci), user=MEMBER)
    image_id = fetched.stdout.strip()
    manifest = rkt.run("image", "cat-manifest", image_id, user=MEMBER)

    assert image_id == uncompressed_sha512(aci)
    assert f'"{APP}"' in manifest.stdout
    assert "signature verification has been disabled" in fetched.stderr


def test_a_member_of_rkt_refetches_an_image_root_fetched(
    shared_rkt: Rkt, shared_images: ImageFactory
) -> None:
    # root's files in the store (lock files included) must stay usable by the group.
    rkt = shared_rkt
    aci = _readable(shared_images.build(APP))
    _make_store_as_root(rkt)
    first = rkt.run("--insecure-options=image", "fetch", "--full", str(aci)).stdout

    again = rkt.run("--insecure-options=image", "fetch", "--full", str(aci), user=MEMBER)

    assert again.stdout == first
    assert len(rkt.image_list()) == 1


def test_a_member_of_rkt_is_refused_trust_without_rkt_admin(shared_rkt: Rkt, gpg: GpgHome) -> None:
    rkt = shared_rkt
    key = gpg.generate_key("Publisher <publisher@example.com>")
    key_file = rkt.root / "key.asc"
    key_file.write_bytes(key.public_armored)
    _readable(key_file)

    proc = rkt.run(
        "trust",
        f"--prefix={APP}",
        "--skip-fingerprint-review",
        str(key_file),
        user=MEMBER,
        check=False,
    )

    assert_refused(proc, "rkt-admin")
    assert not (rkt.local_config / "trustedkeys").exists()


def test_a_user_outside_group_rkt_is_refused_fetch_and_list(
    shared_rkt: Rkt, shared_images: ImageFactory
) -> None:
    rkt = shared_rkt
    aci = _readable(shared_images.build(APP))
    _make_store_as_root(rkt)
    before = StoreSnapshot.take(rkt)

    fetch = rkt.run("--insecure-options=image", "fetch", str(aci), user=OUTSIDER, check=False)
    listing = rkt.run("image", "list", user=OUTSIDER, check=False)

    assert_refused(fetch, '"rkt"', "fetch")
    assert_refused(listing, '"rkt"')
    assert_store_unchanged(rkt, before)


def test_a_user_outside_group_rkt_is_refused_on_a_fresh_dir(shared_rkt: Rkt) -> None:
    # No store yet: the refusal must come before anything is created.
    proc = shared_rkt.run("image", "list", user=OUTSIDER, check=False)

    assert_refused(proc, '"rkt"')
    assert not shared_rkt.dir.exists()


def test_a_member_of_rkt_cannot_trust_keys_from_https_while_fetching(
    shared_rkt: Rkt, shared_images: ImageFactory, gpg: GpgHome, https_server: LocalHttpsServer
) -> None:
    # --trust-keys-from-https changes trust, which needs rkt-admin just as `rkt trust` does.
    rkt = shared_rkt
    serve_for(rkt, https_server, rkt.root / "ca.pem")
    _readable(rkt.root / "ca.pem")
    key = gpg.generate_key("Publisher <publisher@example.com>")
    aci = shared_images.build(APP)
    gpg.write_signature(aci, key.fingerprint)
    https_server.add("/keys/app.asc", key.public_armored)
    https_server.add("/images/app-1.0.0-linux-amd64.aci", aci.read_bytes())
    https_server.add(
        "/images/app-1.0.0-linux-amd64.aci.asc", aci.with_suffix(".aci.asc").read_bytes()
    )
    https_server.add_discovery(
        "/app",
        discovery=[(APP, "https://example.com/images/app-{version}-{os}-{arch}.{ext}")],
        pubkeys=[(APP, "https://example.com/keys/app.asc")],
    )
    _make_store_as_root(rkt)
    before = StoreSnapshot.take(rkt)

    proc = rkt.run("--trust-keys-from-https", "fetch", f"{APP}:1.0.0", user=MEMBER, check=False)

    assert_refused(proc, "rkt-admin")
    assert https_server.requests_for("/keys/app.asc") == []
    assert not (rkt.local_config / "trustedkeys").exists()
    assert_store_unchanged(rkt, before)
