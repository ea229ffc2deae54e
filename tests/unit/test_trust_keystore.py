"""The trust store: rkt's on-disk layout, masking, whole-component prefixes, refusing bad keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rkt.errors import TrustError
from rkt.trust.keys import format_fingerprint, parse_public_key
from rkt.trust.keystore import Keystore, ancestor_prefixes, validate_prefix
from tests.conftest import require
from tests.support.gpg import GpgHome, GpgKey, have_gpg


@pytest.fixture(autouse=True)
def _needs_gpg() -> None:
    require(have_gpg(), "needs gpg and gpgconf")


@pytest.fixture(scope="module")
def bob(gpg: GpgHome) -> GpgKey:
    return gpg.generate_key("Bob Vendor <bob@example.org>")


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "etc", tmp_path / "usr")


def fingerprints(ks: Keystore, name: str) -> set[str]:
    return {cert.fingerprint for cert in ks.certs_for_name(name)}


def test_add_root_key_writes_rkt_layout(store: Keystore, alice: GpgKey, tmp_path: Path) -> None:
    old = os.umask(0o077)  # the store must stay readable by group rkt whatever the umask
    try:
        key = store.add_root_key(alice.public_armored)
    finally:
        os.umask(old)
    path = tmp_path / "etc" / "trustedkeys" / "root.d" / alice.fingerprint
    assert key.path == path
    assert (key.kind, key.prefix, key.origin) == ("root", None, "local")
    assert key.fingerprint == alice.fingerprint
    assert key.user_ids == ("Alice Publisher <alice@example.com>",)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "etc" / "trustedkeys").stat().st_mode) == 0o755
    assert path.read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert [p.name for p in path.parent.iterdir()] == [alice.fingerprint]  # no temp file left


def test_add_prefix_key_writes_under_prefix_path(
    store: Keystore, alice: GpgKey, tmp_path: Path
) -> None:
    key = store.add_prefix_key("example.com/foo", alice.public_armored)
    expected = tmp_path / "etc/trustedkeys/prefix.d/example.com/foo" / alice.fingerprint
    assert key.path == expected and expected.is_file()
    assert (key.kind, key.prefix) == ("prefix", "example.com/foo")
    assert store.list_keys() == [key]


def test_adding_the_same_key_again_replaces_it(store: Keystore, alice: GpgKey) -> None:
    store.add_prefix_key("example.com", alice.public_armored)
    store.add_prefix_key("example.com", alice.public_armored)
    assert len(store.list_keys()) == 1


def test_add_refuses_secret_key(store: Keystore, gpg: GpgHome, alice: GpgKey) -> None:
    secret = gpg.export_secret(alice.fingerprint)
    with pytest.raises(TrustError, match="secret key material"):
        store.add_root_key(secret)
    with pytest.raises(TrustError, match="secret key material"):
        store.add_prefix_key("example.com", secret)
    assert not store.local_root.exists()


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"],
)
def test_add_refuses_what_is_not_a_public_key(store: Keystore, data: bytes) -> None:
    with pytest.raises(TrustError) as info:
        store.add_root_key(data)
    assert "\n" not in info.value.message
    assert not store.local_root.exists()


def test_add_refuses_a_keyring_of_several_keys(store: Keystore, alice: GpgKey, bob: GpgKey) -> None:
    with pytest.raises(TrustError, match="holds 2 keys"):
        store.add_root_key(alice.public_armored + bob.public_armored)


@pytest.mark.parametrize(
    "prefix",
    [
        "https://example.com/foo",
        "example.com/../etc",
        "../etc",
        "/etc/rkt",
        "Example.com/Foo",
        "example.com/foo/",
        "",
        "example.com//foo",
        "example.com/foo bar",
    ],
)
def test_add_prefix_key_refuses_bad_prefix(store: Keystore, alice: GpgKey, prefix: str) -> None:
    with pytest.raises(TrustError, match="prefix"):
        store.add_prefix_key(prefix, alice.public_armored)
    assert not store.local_root.exists()


def test_validate_prefix_accepts_ac_identifiers() -> None:
    for prefix in ("example.com", "coreos.com/etcd", "a-b.example.com/x_y/z~1"):
        assert validate_prefix(prefix) == prefix


def test_prefix_trust_is_by_whole_path_components(store: Keystore, alice: GpgKey) -> None:
    store.add_prefix_key("example.com/foo", alice.public_armored)
    assert fingerprints(store, "example.com/foo") == {alice.fingerprint}
    assert fingerprints(store, "example.com/foo/bar") == {alice.fingerprint}
    assert fingerprints(store, "example.com/foobar") == set()  # rkt's string-prefix bug
    assert fingerprints(store, "example.com") == set()
    assert fingerprints(store, "example.org/foo") == set()


def test_root_key_covers_every_name(store: Keystore, alice: GpgKey, bob: GpgKey) -> None:
    store.add_root_key(alice.public_armored)
    store.add_prefix_key("example.org", bob.public_armored)
    assert fingerprints(store, "anything.net/app") == {alice.fingerprint}
    assert fingerprints(store, "example.org/app") == {alice.fingerprint, bob.fingerprint}


def test_hostile_names_never_leave_prefix_d(store: Keystore, alice: GpgKey, tmp_path: Path) -> None:
    # A key stored outside prefix.d must not become trusted through ".." in an image name.
    outside = tmp_path / "etc" / "trustedkeys" / alice.fingerprint
    outside.parent.mkdir(parents=True)
    outside.write_bytes(alice.public_armored)
    assert fingerprints(store, "..") == set()
    assert fingerprints(store, "../..") == set()
    assert ancestor_prefixes("example.com/../x") == ["example.com"]
    assert ancestor_prefixes("example.com/foo/bar") == [
        "example.com",
        "example.com/foo",
        "example.com/foo/bar",
    ]


def _put_system_key(tmp_path: Path, rel: str, key: GpgKey) -> Path:
    path = tmp_path / "usr" / "trustedkeys" / rel / key.fingerprint
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.public_armored)
    return path


def test_system_keys_are_trusted_and_listed(store: Keystore, alice: GpgKey, tmp_path: Path) -> None:
    path = _put_system_key(tmp_path, "prefix.d/example.com", alice)
    assert fingerprints(store, "example.com/app") == {alice.fingerprint}
    (key,) = store.list_keys()
    assert (key.origin, key.kind, key.prefix, key.path) == ("system", "prefix", "example.com", path)


def test_empty_local_file_masks_system_key(
    store: Keystore, alice: GpgKey, bob: GpgKey, tmp_path: Path
) -> None:
    _put_system_key(tmp_path, "prefix.d/example.com", alice)
    _put_system_key(tmp_path, "root.d", bob)
    for rel, key in (("prefix.d/example.com", alice), ("root.d", bob)):
        mask = tmp_path / "etc" / "trustedkeys" / rel / key.fingerprint
        mask.parent.mkdir(parents=True, exist_ok=True)
        mask.write_bytes(b"")
    assert fingerprints(store, "example.com/app") == set()
    assert store.list_keys() == []


def test_local_copy_overrides_system_copy(store: Keystore, alice: GpgKey, tmp_path: Path) -> None:
    _put_system_key(tmp_path, "root.d", alice)
    store.add_root_key(alice.public_armored)
    (key,) = store.list_keys()
    assert key.origin == "local"
    assert len(store.certs_for_name("example.com/app")) == 1


def test_unparseable_key_file_is_an_error_naming_it(store: Keystore, tmp_path: Path) -> None:
    bad = tmp_path / "etc/trustedkeys/root.d" / ("ab" * 20)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a key")
    with pytest.raises(TrustError, match=str(bad)):
        store.certs_for_name("example.com/app")
    with pytest.raises(TrustError, match=str(bad)):
        store.list_keys()


def test_key_file_named_for_another_fingerprint_is_refused(
    store: Keystore, alice: GpgKey, tmp_path: Path
) -> None:
    liar = tmp_path / "etc/trustedkeys/root.d" / ("ab" * 20)
    liar.parent.mkdir(parents=True)
    liar.write_bytes(alice.public_armored)
    with pytest.raises(TrustError, match="does not match the key fingerprint"):
        store.certs_for_name("example.com/app")


def test_files_not_named_like_fingerprints_are_ignored(store: Keystore, tmp_path: Path) -> None:
    root = tmp_path / "etc/trustedkeys/root.d"
    root.mkdir(parents=True)
    (root / "README").write_text("not a key")
    (root / ".abc.tmp").write_text("half-written")
    assert store.list_keys() == []


def test_list_keys_orders_root_then_prefixes(store: Keystore, alice: GpgKey, bob: GpgKey) -> None:
    store.add_prefix_key("example.org/b", bob.public_armored)
    store.add_prefix_key("example.com", alice.public_armored)
    store.add_root_key(bob.public_armored)
    assert [(k.kind, k.prefix) for k in store.list_keys()] == [
        ("root", None),
        ("prefix", "example.com"),
        ("prefix", "example.org/b"),
    ]


def test_parse_public_key_reads_fingerprint_and_user_ids(alice: GpgKey) -> None:
    info = parse_public_key(alice.public_armored)
    assert info.fingerprint == alice.fingerprint
    assert info.user_ids == ("Alice Publisher <alice@example.com>",)
    assert alice.fingerprint in info.key_handles


def test_format_fingerprint_like_gpg() -> None:
    assert (
        format_fingerprint("8b86de38890ddb7291867b025210bd8888182190")
        == "8B86 DE38 890D DB72 9186  7B02 5210 BD88 8818 2190"
    )
