"""rkt's trust store: which OpenPGP keys may sign which image names (rkt pkg/keystore).

Layout, in both the local (admin, writable) and the system (vendor, read-only) config dirs::

    <config>/trustedkeys/root.d/<fingerprint>                    trusted for every image
    <config>/trustedkeys/prefix.d/<prefix path>/<fingerprint>    trusted for <prefix> and below

File names are the primary key's lowercase hex fingerprint; contents are armored public keys. An
empty file under the local dir with the same relative path masks the system key of that name.

Prefix trust is hierarchical by whole path components: a key for ``example.com/foo`` covers
``example.com/foo`` and ``example.com/foo/bar`` but not ``example.com/foobar`` (rkt's keystore
compared plain string prefixes and so got that wrong). Keys are written atomically (temp file,
fsync, rename, fsync of the directory). Imports only ``rkt.errors`` and ``rkt.trust.keys``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from rkt.errors import TrustError
from rkt.paths import Path
from rkt.trust.keys import KeyInfo, parse_public_key

TRUSTED_KEYS_DIR = "trustedkeys"
ROOT_DIR = "root.d"
PREFIX_DIR = "prefix.d"

_DIR_MODE = 0o755
_FILE_MODE = 0o644
# appc spec/types.md, AC Identifier: lower-case alphanumerics separated by one of "-._~/".
_AC_IDENTIFIER = re.compile(r"^[a-z0-9]+(?:[-._~/][a-z0-9]+)*$")
_FINGERPRINT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

Kind = Literal["root", "prefix"]
Origin = Literal["local", "system"]


@dataclass(frozen=True)
class TrustedKey:
    """One key file of the trust store, after masking."""

    kind: Kind
    prefix: str | None  # None for root keys
    fingerprint: str
    user_ids: tuple[str, ...]
    origin: Origin
    path: Path


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a usable image-name prefix, else raise TrustError saying why."""
    if "://" in prefix:
        raise TrustError(
            f'prefix "{prefix}": must not contain a url scheme (use "example.com/app")'
        )
    if ".." in prefix.split("/") or prefix.startswith("/"):
        raise TrustError(f'prefix "{prefix}": must be a relative name without ".." components')
    if prefix.endswith("/"):
        raise TrustError(f'prefix "{prefix}": must not end with "/"')
    if prefix != prefix.lower():
        raise TrustError(f'prefix "{prefix}": must be lower-case, like an image name')
    if not _AC_IDENTIFIER.match(prefix):
        raise TrustError(
            f'prefix "{prefix}": not an image name prefix '
            "(lower-case letters, digits and -._~ separated by /)"
        )
    return prefix


def ancestor_prefixes(name: str) -> list[str]:
    """``a.com/b/c`` -> ``["a.com", "a.com/b", "a.com/b/c"]``: ancestors by whole components.

    Stops at the first component that could not belong to a valid prefix (empty, ``.``, ``..``,
    upper case...), so a hostile name can never walk out of ``prefix.d``.
    """
    out: list[str] = []
    parts: list[str] = []
    for component in name.split("/"):
        parts.append(component)
        candidate = "/".join(parts)
        if not _AC_IDENTIFIER.match(candidate):
            break
        out.append(candidate)
    return out


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TrustError(f'trusted key "{path}": cannot read: {exc.strerror or exc}') from exc


class Keystore:
    """The merged local + system trust store; writes go to the local config only."""

    def __init__(self, local_config: Path, system_config: Path) -> None:
        self.local_root = Path(local_config) / TRUSTED_KEYS_DIR
        self.system_root = Path(system_config) / TRUSTED_KEYS_DIR

    # -- writing ---------------------------------------------------------------------------

    def add_root_key(self, armored: bytes) -> TrustedKey:
        """Trust a key for every image (``rkt trust --root``)."""
        info = parse_public_key(armored, source="root key")
        path = self._store(self.local_root / ROOT_DIR, info)
        return TrustedKey("root", None, info.fingerprint, info.user_ids, "local", path)

    def add_prefix_key(self, prefix: str, armored: bytes) -> TrustedKey:
        """Trust a key for ``prefix`` and every image name below it."""
        validate_prefix(prefix)
        info = parse_public_key(armored, source=f'key for prefix "{prefix}"')
        path = self._store(self.local_root / PREFIX_DIR / prefix, info)
        return TrustedKey("prefix", prefix, info.fingerprint, info.user_ids, "local", path)

    def _store(self, directory: Path, info: KeyInfo) -> Path:
        target = directory / info.fingerprint
        try:
            _make_dirs(directory)
            _write_atomic(target, info.armored)
        except OSError as exc:
            raise TrustError(
                f'trusted key "{target}": cannot write: {exc.strerror or exc}'
            ) from exc
        return target

    # -- reading ---------------------------------------------------------------------------

    def list_keys(self) -> list[TrustedKey]:
        """Every trusted key after masking: root keys first, then prefixes in name order."""
        keys = [self._load(f, "root", None, o) for f, o in self._key_files(Path(ROOT_DIR))]
        for prefix in self._all_prefixes():
            rel = Path(PREFIX_DIR) / prefix
            keys += [self._load(f, "prefix", prefix, o) for f, o in self._key_files(rel)]
        return keys

    def certs_for_name(self, name: str) -> list[Any]:
        """The pysequoia ``Cert``s trusted to sign image ``name``: root keys + ancestor prefixes."""
        return [info.cert for info in self.key_infos_for_name(name)]

    def key_infos_for_name(self, name: str) -> list[KeyInfo]:
        """Like ``certs_for_name``, with fingerprints and subkey handles; no duplicates."""
        rels = [Path(ROOT_DIR)] + [Path(PREFIX_DIR) / p for p in ancestor_prefixes(name)]
        seen: dict[str, KeyInfo] = {}
        for rel in rels:
            for path, _origin in self._key_files(rel):
                info = self._parse(path)
                seen.setdefault(info.fingerprint, info)
        return list(seen.values())

    def _load(self, path: Path, kind: Kind, prefix: str | None, origin: Origin) -> TrustedKey:
        info = self._parse(path)
        return TrustedKey(kind, prefix, info.fingerprint, info.user_ids, origin, path)

    @staticmethod
    def _parse(path: Path) -> KeyInfo:
        info = parse_public_key(_read_key_file(path), source=f'trusted key "{path}"')
        if info.fingerprint != path.name.lower():
            # A file whose name lies about its key would defeat masking and review.
            raise TrustError(
                f'trusted key "{path}": file name does not match the key fingerprint '
                f"{info.fingerprint}"
            )
        return info

    def _key_files(self, rel: Path) -> Iterator[tuple[Path, Origin]]:
        """Key files directly in ``rel`` (local first), skipping masked and masking files."""
        local = dict(_fingerprint_files(self.local_root / rel))
        for _name, path in sorted(local.items()):
            if _is_empty(path):
                continue  # a mask (or an empty file nobody should trust)
            yield path, "local"
        for name, path in sorted(_fingerprint_files(self.system_root / rel)):
            if name in local:
                continue  # masked by an empty local file, or overridden by the local copy
            yield path, "system"

    def _all_prefixes(self) -> list[str]:
        found: set[str] = set()
        for base in (self.local_root / PREFIX_DIR, self.system_root / PREFIX_DIR):
            if not base.is_dir():
                continue
            for dirpath, dirnames, _files in os.walk(base):
                dirnames.sort()
                rel = Path(dirpath).relative_to(base).as_posix()
                if rel != "." and _AC_IDENTIFIER.match(rel):
                    found.add(rel)
        return sorted(found)


def _fingerprint_files(directory: Path) -> Iterator[tuple[str, Path]]:
    """(lowercase name, path) of the regular files in ``directory`` named like fingerprints."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return
    except OSError as exc:
        raise TrustError(f'trusted keys "{directory}": cannot list: {exc.strerror or exc}') from exc
    for entry in entries:
        # Sub-directories are nested prefixes; dot files are our temp files; anything not named
        # like a fingerprint is not a key file of rkt's layout.
        if entry.name.startswith(".") or not _FINGERPRINT.match(entry.name.lower()):
            continue
        if entry.is_file():
            yield entry.name.lower(), Path(entry.path)


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError as exc:
        raise TrustError(f'trusted key "{path}": cannot read: {exc.strerror or exc}') from exc


def _make_dirs(directory: Path) -> None:
    """mkdir -p with mode 0755 whatever the umask, so group rkt can read the store."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent `rkt trust` made it
            path.mkdir(mode=_DIR_MODE)
            path.chmod(_DIR_MODE)


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), _FILE_MODE)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
