"""Detached-signature verification against the trust store, with real gpg signatures."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkt.errors import ImageError, SignatureError, TrustError
from rkt.trust.keystore import Keystore
from rkt.trust.verify import verify_detached
from tests.conftest import require
from tests.support.gpg import GpgHome, GpgKey, have_gpg


@pytest.fixture(autouse=True)
def _needs_gpg() -> None:
    require(have_gpg(), "needs gpg and gpgconf")


@pytest.fixture(scope="module")
def mallory(gpg: GpgHome) -> GpgKey:
    return gpg.generate_key("Mallory <mallory@example.net>")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "app.aci"
    path.write_bytes(b"pretend this is an ACI\n" * 4096)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "etc", tmp_path / "usr")


def test_root_key_verifies_any_name(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path
) -> None:
    store.add_root_key(alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint)
    for name in ("example.com/app", "other.org/x/y"):
        assert verify_detached(image, sig, name=name, keystore=store) == alice.fingerprint


def test_prefix_key_verifies_its_name_and_sub_names(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path
) -> None:
    store.add_prefix_key("example.com/foo", alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint)
    assert verify_detached(image, sig, name="example.com/foo", keystore=store) == alice.fingerprint
    assert (
        verify_detached(image, sig, name="example.com/foo/bar", keystore=store) == alice.fingerprint
    )


def test_prefix_key_does_not_cover_sibling_with_same_string_prefix(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path
) -> None:
    store.add_prefix_key("example.com/foo", alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint)
    with pytest.raises(SignatureError) as info:
        verify_detached(image, sig, name="example.com/foobar", keystore=store)
    assert info.value.message == 'image "example.com/foobar": no keys trusted for this image'
    assert info.value.hint == "rkt trust --prefix=example.com/foobar"


def test_no_trusted_keys_is_refused_with_hint(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path
) -> None:
    sig = gpg.sign_detached(image, alice.fingerprint)
    with pytest.raises(SignatureError) as info:
        verify_detached(image, sig, name="example.com/app", keystore=store)
    assert info.value.message == 'image "example.com/app": no keys trusted for this image'
    assert info.value.hint == "rkt trust --prefix=example.com/app"
    assert info.value.exit_code == 254


def test_tampered_data_is_refused(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path, tmp_path: Path
) -> None:
    store.add_prefix_key("example.com", alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint)
    tampered = tmp_path / "tampered.aci"
    tampered.write_bytes(image.read_bytes() + b"\x00")
    with pytest.raises(SignatureError) as info:
        verify_detached(tampered, sig, name="example.com/app", keystore=store)
    assert info.value.message == (
        'image "example.com/app": signature verification failed: bad signature'
    )


def test_key_trusted_for_another_prefix_is_refused_with_hint(
    store: Keystore, gpg: GpgHome, alice: GpgKey, mallory: GpgKey, image: Path
) -> None:
    store.add_prefix_key("example.com", alice.public_armored)
    store.add_prefix_key("example.net", mallory.public_armored)
    sig = gpg.sign_detached(image, mallory.fingerprint)
    with pytest.raises(SignatureError) as info:
        verify_detached(image, sig, name="example.com/app", keystore=store)
    assert info.value.message == (
        f'image "example.com/app": signed by key {mallory.fingerprint}, '
        'which is not trusted for "example.com/app"'
    )
    assert info.value.hint == "rkt trust --prefix=example.com/app"


def test_signature_by_unknown_key_is_refused(
    store: Keystore, gpg: GpgHome, alice: GpgKey, mallory: GpgKey, image: Path
) -> None:
    store.add_root_key(alice.public_armored)
    sig = gpg.sign_detached(image, mallory.fingerprint)
    with pytest.raises(SignatureError, match="which is not trusted for"):
        verify_detached(image, sig, name="example.com/app", keystore=store)


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"garbage",
        b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
    ],
)
def test_malformed_signature_is_refused(
    store: Keystore, alice: GpgKey, image: Path, signature: bytes
) -> None:
    store.add_root_key(alice.public_armored)
    with pytest.raises(SignatureError) as info:
        verify_detached(image, signature, name="example.com/app", keystore=store)
    assert info.value.message.startswith('image "example.com/app": malformed signature: ')
    assert "\n" not in info.value.message


def test_public_key_given_as_signature_is_malformed(
    store: Keystore, alice: GpgKey, image: Path
) -> None:
    store.add_root_key(alice.public_armored)
    with pytest.raises(SignatureError, match="malformed signature"):
        verify_detached(image, alice.public_armored, name="example.com/app", keystore=store)


def test_binary_signature_verifies(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path
) -> None:
    store.add_root_key(alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint, armor=False)
    assert verify_detached(image, sig, name="example.com/app", keystore=store) == alice.fingerprint


def test_signature_by_signing_subkey_returns_primary_fingerprint(
    store: Keystore, image: Path
) -> None:
    with GpgHome() as home:  # its own home: the subkey would change alice for other tests
        key = home.generate_key("Subkey Signer <sub@example.com>")
        subkey = home.add_signing_subkey(key.fingerprint)
        store.add_prefix_key("example.com", home.export_public(key.fingerprint))
        sig = home.sign_detached(image, key.fingerprint)
    assert subkey != key.fingerprint
    assert verify_detached(image, sig, name="example.com/app", keystore=store) == key.fingerprint


def test_revoked_key_is_refused(store: Keystore, image: Path) -> None:
    with GpgHome() as home:
        key = home.generate_key("Revoked <revoked@example.com>")
        sig = home.sign_detached(image, key.fingerprint)
        store.add_root_key(home.revoke(key.fingerprint))
    with pytest.raises(SignatureError) as info:
        verify_detached(image, sig, name="example.com/app", keystore=store)
    assert info.value.message == (
        f'image "example.com/app": signature verification failed: key {key.fingerprint} is revoked'
    )


def test_masked_system_key_no_longer_verifies(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path, tmp_path: Path
) -> None:
    system = tmp_path / "usr/trustedkeys/prefix.d/example.com" / alice.fingerprint
    system.parent.mkdir(parents=True)
    system.write_bytes(alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint)
    assert verify_detached(image, sig, name="example.com/app", keystore=store) == alice.fingerprint
    mask = tmp_path / "etc/trustedkeys/prefix.d/example.com" / alice.fingerprint
    mask.parent.mkdir(parents=True)
    mask.write_bytes(b"")
    with pytest.raises(SignatureError, match="no keys trusted"):
        verify_detached(image, sig, name="example.com/app", keystore=store)


def test_missing_data_file_is_an_image_error(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path, tmp_path: Path
) -> None:
    store.add_root_key(alice.public_armored)
    sig = gpg.sign_detached(image, alice.fingerprint)
    with pytest.raises(ImageError, match="cannot read") as info:
        verify_detached(tmp_path / "gone.aci", sig, name="example.com/app", keystore=store)
    assert not isinstance(info.value, SignatureError)


def test_corrupt_trusted_key_file_is_a_trust_error(
    store: Keystore, gpg: GpgHome, alice: GpgKey, image: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "etc/trustedkeys/root.d" / ("cd" * 20)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n")
    sig = gpg.sign_detached(image, alice.fingerprint)
    with pytest.raises(TrustError, match=str(bad)):
        verify_detached(image, sig, name="example.com/app", keystore=store)
