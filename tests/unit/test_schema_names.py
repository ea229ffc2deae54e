"""AC Name / AC Identifier validation and Image ID helpers (appc types.md)."""

from __future__ import annotations

import pytest

from rkt.errors import ManifestError
from rkt.schema.names import (
    IMAGE_ID_PREFIX,
    MAX_FILE_NAME,
    image_id_from_digest,
    is_ac_identifier,
    is_full_image_id,
    is_image_id_prefix,
    sanitize_ac_name,
    short_image_id,
    validate_ac_identifier,
    validate_ac_name,
    validate_ac_version,
    validate_file_name,
)

HEX = "0123456789abcdef" * 8


@pytest.mark.parametrize("value", ["database", "product-database", "a1-b2-c3", "0"])
def test_valid_ac_names_are_accepted(value: str) -> None:
    assert validate_ac_name(value, "app name") == value


@pytest.mark.parametrize(
    "value",
    ["", "Database", "-db", "db-", "db--x", "db_x", "db.x", "db/x", "db\n", "dé", " db"],
)
def test_invalid_ac_names_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ManifestError, match=r'^app name: ".*" is not a valid AC Name \('):
        validate_ac_name(value, "app name")


@pytest.mark.parametrize(
    "value",
    [
        "database",
        "example.com/database",
        "example.com/user~x/app_v1",
        "sub-domain.example.com/org/product/release",
        "a~b",
    ],
)
def test_valid_ac_identifiers_are_accepted(value: str) -> None:
    assert is_ac_identifier(value)
    assert validate_ac_identifier(value, "name") == value


@pytest.mark.parametrize(
    # types.md lists "example.com/~user/app_v1" as an example, but its own regex refuses "/~".
    "value",
    ["", "Foo", "/abs", "trailing/", "a//b", "a..b", "_lead", "a b", "a\n", "example.com/~user"],
)
def test_invalid_ac_identifiers_are_refused(value: str) -> None:
    assert not is_ac_identifier(value)
    with pytest.raises(ManifestError, match="is not a valid AC Identifier"):
        validate_ac_identifier(value, "name")


def test_error_message_is_one_line_lower_case_without_period() -> None:
    with pytest.raises(ManifestError) as info:
        validate_ac_identifier("Foo", 'image manifest: field "name"')
    assert str(info.value) == (
        'image manifest: field "name": "Foo" is not a valid AC Identifier'
        " (lower-case letters, digits and -._~/ separators)"
    )


def test_hostile_values_are_escaped_and_truncated_in_messages() -> None:
    with pytest.raises(ManifestError) as info:
        validate_ac_name("x\n" * 500, "name")
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 200


def test_non_string_is_not_an_identifier() -> None:
    assert not is_ac_identifier(42)
    with pytest.raises(ManifestError):
        validate_ac_name(42, "name")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["0.8.11", "0.0.0", "1.0.0-rc.1", "1.0.0+build.5", "10.20.30-alpha-1"]
)
def test_semantic_versions_are_accepted(value: str) -> None:
    assert validate_ac_version(value, "acVersion") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0.8",
        "v0.8.11",
        "01.0.0",
        "1.02.0",
        "1.0.0.0",
        "\u0663.0.0",
        "1.0.0-",
        "1.0.0-01",
        "1.0.0\n",
    ],
)
def test_non_semantic_versions_are_refused(value: str) -> None:
    with pytest.raises(ManifestError, match="is not a semantic version"):
        validate_ac_version(value, "acVersion")


@pytest.mark.parametrize(
    ("image_name", "app_name"),
    [
        ("example.com/reduce-worker", "reduce-worker"),
        ("example.com/My_App", "my-app"),
        ("docker.io/library/nginx", "nginx"),
        ("coreos.com/etcd/", "etcd"),
        ("__Weird__..Name!!", "weird-name"),
        ("busybox", "busybox"),
    ],
)
def test_sanitize_ac_name_derives_app_names(image_name: str, app_name: str) -> None:
    assert sanitize_ac_name(image_name) == app_name
    validate_ac_name(sanitize_ac_name(image_name), "app name")


def test_app_and_volume_names_are_short_enough_to_name_files() -> None:
    """An app's or a volume's name is in file names of the pod: at most 200 characters (an
    AC Name has no limit of its own; longer ones failed deep in the pod's layout with "File name
    too long")."""
    assert validate_file_name("a" * MAX_FILE_NAME, "--name") == "a" * MAX_FILE_NAME
    with pytest.raises(ManifestError) as err:
        validate_file_name("a" * 300, "--name")
    assert str(err.value) == (
        f'--name: "{"a" * 24}..." is 300 characters long; at most 200 (it names files in the pod)'
    )
    with pytest.raises(ManifestError, match="is not a valid AC Name"):
        validate_file_name("A" * 300, "--name")


def test_an_app_name_derived_from_a_long_image_name_is_cut_to_fit() -> None:
    """... with room for the "-N" that tells two apps of one image apart; never ending in -."""
    name = sanitize_ac_name("example.com/" + "ab-" * 100)
    assert len(name) <= MAX_FILE_NAME - 8 and not name.endswith("-")
    validate_file_name(name + "-99", "app name")


def test_sanitize_ac_name_refuses_names_without_usable_characters() -> None:
    with pytest.raises(ManifestError, match="cannot derive an app name"):
        sanitize_ac_name("example.com/___")


def test_full_image_ids() -> None:
    assert IMAGE_ID_PREFIX == "sha512-"
    assert is_full_image_id("sha512-" + HEX)
    assert not is_full_image_id("sha512-" + HEX[:-1])
    assert not is_full_image_id("sha512-" + HEX + "0")
    assert not is_full_image_id("sha512-" + HEX.upper())
    assert not is_full_image_id("sha256-" + HEX)
    assert not is_full_image_id(None)


@pytest.mark.parametrize("value", ["sha512-a", "sha512-0123abcd", "sha512-" + HEX])
def test_image_id_prefixes_are_recognised(value: str) -> None:
    assert is_image_id_prefix(value)


@pytest.mark.parametrize("value", ["sha512-", "sha512-xyz", "sha512-" + HEX + "a", "abc", ""])
def test_non_prefixes_are_refused(value: str) -> None:
    assert not is_image_id_prefix(value)


def test_image_id_from_digest_and_short_form() -> None:
    image_id = image_id_from_digest(HEX)
    assert image_id == "sha512-" + HEX
    assert short_image_id(image_id) == "sha512-0123456789ab"
    assert short_image_id(image_id, 4) == "sha512-0123"


def test_image_id_from_digest_refuses_other_digests() -> None:
    with pytest.raises(ValueError, match="not a sha512 hex digest"):
        image_id_from_digest("abc")


def test_short_image_id_refuses_non_ids() -> None:
    with pytest.raises(ValueError, match="not an image ID"):
        short_image_id("nginx")
