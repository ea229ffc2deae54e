"""Real OpenPGP keys and detached signatures made with gpg, for tests of trust and fetching.

A ``GpgHome`` is a throw-away GNUPGHOME; it makes keys fast (Ed25519, no passphrase, no expiry),
exports armored public (and, for hostile-input tests, secret) keys, and detached-signs files the
way an image publisher does (``gpg --armor --detach-sign``). ``close()`` kills the gpg-agent that
gpg started for the home, so test runs leave no daemons behind.

Use as a context manager, or through a pytest fixture::

    @pytest.fixture
    def gpg():
        with GpgHome() as home:  # a short temp dir, removed on exit
            yield home

Needs ``gpg`` and ``gpgconf`` (GnuPG 2.1+) on PATH; ``have_gpg()`` tells whether they are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_TIMEOUT = 60.0
# Loopback pinentry with an empty passphrase: no agent prompts, no tty needed.
_BATCH = ("--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "")


def have_gpg() -> bool:
    return shutil.which("gpg") is not None and shutil.which("gpgconf") is not None


@dataclass(frozen=True)
class GpgKey:
    """A key made by ``GpgHome.generate_key``: its user ID, primary fingerprint and public key."""

    uid: str
    fingerprint: str  # primary key, lowercase hex (the trust-store file name)
    public_armored: bytes


class GpgError(RuntimeError):
    pass


class GpgHome:
    """A temporary GNUPGHOME and the gpg operations tests need."""

    def __init__(self, home: Path | None = None) -> None:
        # gpg-agent's socket lives in the home unless /run/user/UID exists, and socket paths are
        # limited to ~107 bytes: pytest's tmp_path can be too long, so default to a short mkdtemp.
        self._owned = home is None
        self.home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp")) if home is None else home
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)  # gpg warns about (and gpg-agent refuses) group-readable homes

    def __enter__(self) -> GpgHome:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, *argv: str, stdin: bytes | None = None) -> bytes:
        """Run ``gpg --homedir HOME ARGV...``; return stdout, raise GpgError with stderr's tail."""
        cmd = ["gpg", "--homedir", str(self.home), *argv]
        env = {**os.environ, "GNUPGHOME": str(self.home), "LC_ALL": "C"}
        proc = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            timeout=_TIMEOUT,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise GpgError(f"{' '.join(cmd)}: exit {proc.returncode}: {' | '.join(tail)}")
        return proc.stdout

    def generate_key(self, uid: str, algo: str = "ed25519") -> GpgKey:
        """A new signing key (primary key signs, never expires) with one user ID."""
        self.run(*_BATCH, "--quick-gen-key", uid, algo, "sign", "never")
        fingerprint = self.fingerprint_of(uid)
        return GpgKey(
            uid=uid, fingerprint=fingerprint, public_armored=self.export_public(fingerprint)
        )

    def add_signing_subkey(self, fingerprint: str, algo: str = "ed25519") -> str:
        """Add a signing subkey (gpg then signs with it); return the subkey's fingerprint."""
        before = set(self._subkey_fingerprints(fingerprint))
        self.run(*_BATCH, "--quick-add-key", fingerprint.upper(), algo, "sign", "never")
        (added,) = set(self._subkey_fingerprints(fingerprint)) - before
        return added

    def fingerprint_of(self, uid_or_fpr: str) -> str:
        """The primary fingerprint (lowercase hex) of the one key matching ``uid_or_fpr``."""
        out = self.run("--with-colons", "--fingerprint", "--list-keys", uid_or_fpr).decode()
        primaries: list[str] = []
        expect_primary_fpr = False
        for line in out.splitlines():
            fields = line.split(":")
            if fields[0] == "pub":
                expect_primary_fpr = True
            elif fields[0] == "fpr" and expect_primary_fpr:
                primaries.append(fields[9].lower())
                expect_primary_fpr = False
        if len(primaries) != 1:
            raise GpgError(f'"{uid_or_fpr}" matches {len(primaries)} keys')
        return primaries[0]

    def _subkey_fingerprints(self, fingerprint: str) -> list[str]:
        out = self.run("--with-colons", "--fingerprint", "--list-keys", fingerprint.upper())
        subkeys: list[str] = []
        in_subkey = False
        for line in out.decode().splitlines():
            fields = line.split(":")
            if fields[0] in ("pub", "sub"):
                in_subkey = fields[0] == "sub"
            elif fields[0] == "fpr" and in_subkey:
                subkeys.append(fields[9].lower())
        return subkeys

    def revoke(self, fingerprint: str) -> bytes:
        """Import the revocation gpg made along with the key; return the revoked public key."""
        rev = self.home / "openpgp-revocs.d" / f"{fingerprint.upper()}.rev"
        # gpg prefixes the armor header with ":" so that the file is not imported by accident.
        text = rev.read_text().replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"
        )
        self.run("--batch", "--import", stdin=text.encode())
        return self.export_public(fingerprint)

    def export_public(self, fingerprint: str) -> bytes:
        return self.run("--armor", "--export", fingerprint.upper())

    def export_secret(self, fingerprint: str) -> bytes:
        return self.run(*_BATCH, "--armor", "--export-secret-keys", fingerprint.upper())

    def sign_detached(self, data: Path, fingerprint: str, *, armor: bool = True) -> bytes:
        """A detached signature over ``data`` by the key ``fingerprint`` (armored by default).

        gpg signs with the newest signing-capable (sub)key of that certificate, as a publisher's
        gpg does; after ``add_signing_subkey`` that is the subkey.
        """
        argv = [*_BATCH, "--local-user", fingerprint.upper(), "--detach-sign", "--output", "-"]
        if armor:
            argv.insert(len(_BATCH), "--armor")
        return self.run(*argv, str(data))

    def write_signature(self, data: Path, fingerprint: str) -> Path:
        """Sign ``data`` and write ``data.asc`` next to it, as servers serve ``NAME.aci.asc``."""
        sig = data.with_name(data.name + ".asc")
        sig.write_bytes(self.sign_detached(data, fingerprint))
        return sig

    def close(self) -> None:
        """Kill the gpg-agent (and any other daemon) started for this home."""
        try:
            subprocess.run(
                ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self._owned:
            shutil.rmtree(self.home, ignore_errors=True)
