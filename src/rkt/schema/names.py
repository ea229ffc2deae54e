"""appc name types and image IDs (appc spec 0.8.11, types.md).

Owns: AC Name and AC Identifier validation, app and volume names (``MAX_FILE_NAME``), deriving
an app name from an image name, and the ``sha512-<hex>`` Image ID type (full IDs, prefixes,
short forms).

Pure: no I/O. Imports only ``rkt.errors`` and its sibling ``rkt.schema._fields``.
"""

from __future__ import annotations

from rkt import textcheck
from rkt.errors import ManifestError
from rkt.schema._fields import show

# types.md "AC Name Type" and "AC Identifier Type": rkt.textcheck (no re on the start path).

# SemVer 2.0.0 (types.md "AC Version Type").
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
# A pattern, imported (re) and compiled only for a version that is not a plain MAJOR.MINOR.PATCH
# (see _is_plain_version).
_SEMVER = (
    rf"{_NUM}\.{_NUM}\.{_NUM}"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

IMAGE_ID_PREFIX = "sha512-"
"""types.md "Image ID Type": only sha512 is permitted."""

IMAGE_ID_HEX_LEN = 128
_HEX_DIGITS = frozenset("0123456789abcdef")


def is_ac_name(value: object) -> bool:
    return isinstance(value, str) and textcheck.is_ac_name(value)


def is_ac_identifier(value: object) -> bool:
    return isinstance(value, str) and textcheck.is_ac_identifier(value)


def validate_ac_name(value: str, what: str) -> str:
    """Return ``value`` if it is an AC Name; ``what`` names the field in the error."""
    if not is_ac_name(value):
        raise ManifestError(
            f"{what}: {show(value)} is not a valid AC Name (lower-case letters, digits and"
            " - separators)"
        )
    return value


MAX_FILE_NAME = 200
"""The longest app or volume name rkt takes. Both are in the names of files and directories of
the pod (``appsinfo/<app>``, an app's status, plan, log and temporary files such as
``.<app>.json.<pid>.tmp``, its ``app-<app>`` cgroups, ``volumes/<volume>``): 200 characters
leave every such name below the file systems' 255."""


def validate_file_name(value: str, what: str) -> str:
    """An AC Name (``validate_ac_name``) no longer than ``MAX_FILE_NAME``: an app's or a
    volume's, which name files in the pod."""
    validate_ac_name(value, what)
    if len(value) > MAX_FILE_NAME:
        raise ManifestError(
            f'{what}: "{value[:24]}..." is {len(value)} characters long; at most'
            f" {MAX_FILE_NAME} (it names files in the pod)"
        )
    return value


def validate_ac_identifier(value: str, what: str) -> str:
    """Return ``value`` if it is an AC Identifier; ``what`` names the field in the error."""
    if not is_ac_identifier(value):
        raise ManifestError(
            f"{what}: {show(value)} is not a valid AC Identifier (lower-case letters, digits and"
            " -._~/ separators)"
        )
    return value


def validate_ac_version(value: str, what: str) -> str:
    """Return ``value`` if it is a SemVer 2.0.0 version (the AC Version type)."""
    if not isinstance(value, str) or not (_is_plain_version(value) or _is_semver(value)):
        raise ManifestError(f"{what}: {show(value)} is not a semantic version (like 0.8.11)")
    return value


def _is_semver(value: str) -> bool:
    import re

    return re.fullmatch(_SEMVER, value) is not None


def _is_plain_version(value: str) -> bool:
    """``MAJOR.MINOR.PATCH`` (each ``0`` or without a leading zero): what nearly every manifest's
    ``acVersion`` is, and a subset of what _SEMVER accepts."""
    parts = value.split(".")
    return len(parts) == 3 and all(
        part.isascii() and part.isdigit() and (part == "0" or part[0] != "0") for part in parts
    )


def sanitize_ac_name(value: str) -> str:
    """Derive an AC Name from an image name: its last path component, lower-cased, with every run
    of other characters turned into "-" (``example.com/My_App`` -> ``my-app``)."""
    last = value.rstrip("/").rsplit("/", 1)[-1]
    name = textcheck.ac_name_from(last.lower())
    if not name:
        raise ManifestError(f"cannot derive an app name from {show(value)}")
    return name[: MAX_FILE_NAME - 8].rstrip("-")  # room for _unique_name's "-N"


def is_full_image_id(value: object) -> bool:
    """``sha512-`` followed by exactly 128 lower-case hex digits."""
    return _is_id(value, IMAGE_ID_HEX_LEN, IMAGE_ID_HEX_LEN)


def is_image_id_prefix(value: object) -> bool:
    """``sha512-`` followed by 1 to 128 lower-case hex digits (a full ID is also a prefix)."""
    return _is_id(value, 1, IMAGE_ID_HEX_LEN)


def _is_id(value: object, low: int, high: int) -> bool:
    if not isinstance(value, str) or not value.startswith(IMAGE_ID_PREFIX):
        return False
    digest = value[len(IMAGE_ID_PREFIX) :]
    return low <= len(digest) <= high and set(digest) <= _HEX_DIGITS


def image_id_from_digest(hexdigest: str) -> str:
    """The Image ID of a sha512 hex digest (``hashlib.sha512(tar).hexdigest()``)."""
    image_id = IMAGE_ID_PREFIX + hexdigest.lower()
    if not is_full_image_id(image_id):
        raise ValueError(f"not a sha512 hex digest: {show(hexdigest)}")
    return image_id


def short_image_id(image_id: str, n: int = 12) -> str:
    """``sha512-`` and the first ``n`` hex digits of an Image ID, for display."""
    if not is_image_id_prefix(image_id):
        raise ValueError(f"not an image ID: {show(image_id)}")
    return image_id[: len(IMAGE_ID_PREFIX) + n]
