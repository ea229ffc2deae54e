"""Plumbing shared by the fetch, trust and privilege integration tests.

- ``gpg`` / ``https_server`` fixtures: a throw-away GNUPGHOME (its agent killed afterwards) and a
  started ``LocalHttpsServer`` (HTTPS plus plain HTTP on 127.0.0.1), stopped afterwards.
- ``serve_for(rkt, server, ca_pem)``: point the test's ``rkt`` at that server: its CA as
  ``SSL_CERT_FILE`` and ``example.com:443`` resolved to the server (``RKT_RESOLVE``).
- ``Publisher``: one signing key; builds, signs and serves images the way an appc publisher does
  (``/images/<basename>-<version>-linux-amd64.aci`` + ``.asc``, discovery page, pubkeys).
- ``StoreSnapshot``: everything under ``--dir`` (path, type, mode, size, sha256) plus the index as
  ``rkt image list --format=json`` sees it, to show that a refused fetch changed nothing.
- ``assert_refused``: exit 254, exactly one line on stderr, no traceback.

Test modules import the fixtures (``from tests.support.fetch_env import gpg_fixture``); pytest
finds them by their ``name=``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_root, require_tool
from tests.integration.conftest import ImageFactory, Rkt
from tests.support.gpg import GpgHome, GpgKey, have_gpg
from tests.support.https_server import LocalHttpsServer

DISCOVERY_HOST = "example.com"


@pytest.fixture(name="gpg")
def gpg_fixture() -> Iterator[GpgHome]:
    require_tool("gpg")
    require(have_gpg(), "needs gpg and gpgconf (run make setup)")
    with GpgHome() as home:
        yield home


@pytest.fixture(name="https_server")
def https_server_fixture() -> Iterator[LocalHttpsServer]:
    with LocalHttpsServer(plain_http=True) as server:
        yield server


@pytest.fixture(name="publisher")
def publisher_fixture(
    rkt: Rkt,
    images: ImageFactory,
    gpg: GpgHome,
    https_server: LocalHttpsServer,
    tmp_path: Path,
) -> Publisher:
    """A signing key and the https server, with ``rkt`` set up to reach it as example.com."""
    require_root()
    serve_for(rkt, https_server, tmp_path / "ca.pem")
    key = gpg.generate_key("Example Publisher <publisher@example.com>")
    keydir = tmp_path / "keys"
    keydir.mkdir()
    return Publisher(gpg, key, images, https_server, keydir)


def serve_for(rkt: Rkt, server: LocalHttpsServer, ca_pem: Path) -> None:
    """Make ``rkt`` trust the server's CA and reach ``example.com`` (https) at the server."""
    server.write_ca_pem(ca_pem)
    rkt.env["SSL_CERT_FILE"] = str(ca_pem)
    rkt.env["RKT_RESOLVE"] = f"{DISCOVERY_HOST}:443=127.0.0.1:{server.port}"


def uncompressed_sha512(aci: Path) -> str:
    """The appc image ID of ``aci``: sha512 of the tar, gunzipped first if it is gzip."""
    data = aci.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return "sha512-" + hashlib.sha512(data).hexdigest()


def sha512sum_of_tar(aci: Path) -> str:
    """The same through the system's ``zcat | sha512sum`` (the acceptance test's wording)."""
    tool = require_tool("sha512sum")
    tar = subprocess.run(["zcat", "-f", str(aci)], capture_output=True, check=True).stdout
    out = subprocess.run([tool], input=tar, capture_output=True, check=True).stdout
    return "sha512-" + out.split()[0].decode()


@dataclass
class Publisher:
    """A signing key plus helpers that build, sign and serve images under it."""

    gpg: GpgHome
    key: GpgKey
    images: ImageFactory
    server: LocalHttpsServer
    keydir: Path

    @property
    def key_file(self) -> Path:
        path = self.keydir / f"{self.key.fingerprint}.asc"
        if not path.exists():
            path.write_bytes(self.key.public_armored)
        return path

    def build(self, name: str, version: str = "1.0.0", **options: Any) -> Path:
        return self.images.build(name, version, **options)

    def sign(self, aci: Path, signer: GpgKey | None = None) -> Path:
        return self.gpg.write_signature(aci, (signer or self.key).fingerprint)

    def serve(self, aci: Path, path: str, *, signature: bool = True, **route: Any) -> str:
        """Serve ``aci`` (and its ``.asc`` if ``signature``) at ``path``; return the https URL."""
        self.server.add(path, aci.read_bytes(), **route)
        if signature:
            self.server.add(path + ".asc", aci.with_name(aci.name + ".asc").read_bytes())
        return self.server.url(path)

    def serve_discovery(
        self, name: str, *, discovery: bool = True, pubkey_path: str | None = None
    ) -> None:
        """A discovery page at ``https://<name>?ac-discovery=1`` (name under example.com)."""
        host, _, rest = name.partition("/")
        assert host == DISCOVERY_HOST, name
        base = rest.rsplit("/", 1)[-1]
        tags = []
        if discovery:
            template = f"https://{DISCOVERY_HOST}/images/{base}-{{version}}-{{os}}-{{arch}}.{{ext}}"
            tags.append((name, template))
        pubkeys = []
        if pubkey_path is not None:
            pubkeys.append((name, f"https://{DISCOVERY_HOST}{pubkey_path}"))
        self.server.add_discovery("/" + rest, discovery=tags, pubkeys=pubkeys)

    def image_path(self, name: str, version: str = "1.0.0") -> str:
        return f"/images/{name.rsplit('/', 1)[-1]}-{version}-linux-amd64.aci"


def trust_prefix(rkt: Rkt, prefix: str, key_file: Path) -> None:
    rkt.run("trust", f"--prefix={prefix}", "--skip-fingerprint-review", str(key_file))


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 254 with exactly one non-empty line on stderr containing each needle; no traceback."""
    detail = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode == 254, detail
    assert "Traceback" not in proc.stderr, detail
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), detail
    assert proc.stderr.endswith("\n"), detail
    assert proc.stdout == "", detail
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in stderr\n{detail}"
    return lines[0]


@dataclass(frozen=True)
class Entry:
    kind: str  # "dir", "file" or "link"
    mode: int
    size: int
    digest: str  # sha256 of a file, target of a link, "" for a directory


@dataclass(frozen=True)
class StoreSnapshot:
    files: dict[str, Entry]
    images: list[dict[str, object]]

    @classmethod
    def take(cls, rkt: Rkt) -> StoreSnapshot:
        # The listing first: it is an rkt command itself, so the files are taken after it ran.
        images = rkt.image_list()
        return cls(_walk(rkt.dir), images)

    def diff(self, other: StoreSnapshot) -> list[str]:
        changes = []
        for path in sorted(self.files.keys() | other.files.keys()):
            before, after = self.files.get(path), other.files.get(path)
            if before != after:
                changes.append(f"{path}: {before} -> {after}")
        if self.images != other.images:
            changes.append(f"image list: {self.images} -> {other.images}")
        return changes


def _walk(root: Path) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISDIR(st.st_mode):
                entries[rel] = Entry("dir", st.st_mode, 0, "")
            elif stat.S_ISLNK(st.st_mode):
                entries[rel] = Entry("link", st.st_mode, 0, os.readlink(path))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[rel] = Entry("file", st.st_mode, st.st_size, digest)
    return entries


def assert_store_unchanged(rkt: Rkt, before: StoreSnapshot) -> None:
    after = StoreSnapshot.take(rkt)
    changes = before.diff(after)
    assert not changes, "store changed:\n" + "\n".join(changes)
    assert list((rkt.dir / "cas" / "tmp").iterdir()) == []


def image_ids(rkt: Rkt) -> list[str]:
    return [str(img["id"]) for img in rkt.image_list()]


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
