"""OpenPGP public keys as rkt's trust store holds them: parsing, validation and display.

Owns the pysequoia boundary for certificates: ``parse_public_key`` turns bytes into a ``KeyInfo``
(or a ``TrustError``), refusing secret key material and key rings holding more than one key, and
``format_fingerprint`` renders a fingerprint the way rkt's review prompt (and gpg) prints it.
pysequoia is imported inside the functions that need it, so importing this module stays cheap.
Imports only ``rkt.errors``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from rkt.errors import TrustError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class KeyInfo:
    """A parsed public key: primary fingerprint (lowercase hex), user IDs, normalised armor."""

    fingerprint: str
    user_ids: tuple[str, ...]
    # The certificate re-armored by Sequoia: public packets only, the form the store writes.
    armored: bytes = field(repr=False)
    # Fingerprints and key IDs (lowercase hex) of the primary key and every subkey: a signature's
    # issuer names the signing (sub)key, not necessarily the primary one.
    key_handles: frozenset[str] = field(repr=False)
    cert: Any = field(repr=False, compare=False)  # pysequoia.Cert


def sequoia_reason(exc: BaseException) -> str:
    """pysequoia errors carry a Rust backtrace after the first line; keep only the reason."""
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".").lower() if text else exc.__class__.__name__.lower()


def _has_secret_packets(data: bytes) -> bool:
    from pysequoia.packet import PacketPile, Tag

    try:
        packets = list(PacketPile.from_bytes(data))
    except Exception:  # unparseable: Cert parsing below reports why
        return False
    return any(p.tag in (Tag.SecretKey, Tag.SecretSubkey) for p in packets)


def key_handles_of(cert: Any) -> frozenset[str]:
    """The fingerprints and key IDs of all (sub)keys of a pysequoia ``Cert``."""
    from pysequoia.packet import PacketPile

    handles: set[str] = set()
    for packet in PacketPile.from_bytes(bytes(cert)):
        if packet.fingerprint:
            handles.add(packet.fingerprint.lower())
        if packet.key_id:
            handles.add(packet.key_id.lower())
    return frozenset(handles)


def parse_public_key(armored: bytes, *, source: str = "key") -> KeyInfo:
    """Parse one OpenPGP public certificate (armored or binary); ``source`` names it in errors.

    Refuses secret keys outright: a trust store holds public keys, and a secret key handed to
    ``rkt trust`` is a mistake that must not be written to a world-readable file.
    """
    import pysequoia

    if not armored.strip():
        raise TrustError(f"{source}: empty key file")
    if _has_secret_packets(armored):
        raise TrustError(f"{source}: contains secret key material; export the public key only")
    # pysequoia 0.1.35 emits "Use Tsk::from_* functions" DeprecationWarnings from Cert parsing
    # and from has_secret_keys; they concern its API, not the key.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            certs = pysequoia.Cert.split_bytes(armored)
        except Exception as exc:
            reason = sequoia_reason(exc)
            raise TrustError(f"{source}: not an openpgp public key: {reason}") from exc
        if not certs:
            raise TrustError(f"{source}: not an openpgp public key")
        if len(certs) > 1:
            fprs = ", ".join(c.fingerprint for c in certs)
            raise TrustError(
                f"{source}: holds {len(certs)} keys ({fprs}); trust them one at a time"
            )
        cert = certs[0]
        if cert.has_secret_keys:  # belt and braces: the packet scan above should have caught it
            raise TrustError(f"{source}: contains secret key material; export the public key only")
        try:  # a key without a valid self-signature (made in the future, unknown algorithm, ...)
            return KeyInfo(
                fingerprint=cert.fingerprint.lower(),
                user_ids=tuple(str(uid) for uid in cert.user_ids),
                armored=str(cert).encode(),
                key_handles=key_handles_of(cert),
                cert=cert,
            )
        except Exception as exc:
            reason = sequoia_reason(exc)
            raise TrustError(f"{source}: not a usable openpgp public key: {reason}") from exc


def format_fingerprint(fingerprint: str) -> str:
    """gpg's display form, as rkt's review prompt prints it (rkt/pubkey fingerToString).

    ``8b86de38890ddb7291867b025210bd8888182190`` -> ``8B86 DE38 890D DB72 9186  7B02 5210 BD88
    8818 2190``: upper-case groups of four, two spaces between the halves of a v4 fingerprint.
    """
    hexits = fingerprint.replace(" ", "").upper()
    groups = [hexits[i : i + 4] for i in range(0, len(hexits), 4)]
    if len(groups) == 10:
        return " ".join(groups[:5]) + "  " + " ".join(groups[5:])
    return " ".join(groups)
