"""Detached-signature verification of an image against the keys trusted for its name.

rkt fetches ``NAME.aci`` with ``NAME.aci.asc`` and accepts the image only if a key trusted for
the image name (a root key, or a key of an ancestor prefix) made the signature
(rkt/image/namefetcher.go, Documentation/signing-and-verification-guide.md). Sequoia streams the
data from its file, and its StandardPolicy also rejects revoked or expired keys and weak hashes.

Sequoia reports every failure as "no valid signatures found"; to tell the user *why*, the issuer
named in the signature is matched against the trusted keys first: if no trusted (sub)key has that
fingerprint the image is refused as signed by an untrusted key without hashing it at all.
Imports only ``rkt.errors`` and ``rkt.trust``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from rkt.errors import ImageError, SignatureError
from rkt.paths import Path
from rkt.trust.keys import KeyInfo, sequoia_reason
from rkt.trust.keystore import Keystore

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


def verify_detached(data: Path, signature: bytes, *, name: str, keystore: Keystore) -> str:
    """Check that ``signature`` over the file ``data`` was made by a key trusted for ``name``.

    Return the signer's primary fingerprint (lowercase hex). Raise SignatureError when no key is
    trusted for the name, the signature is malformed, signed by an untrusted key, or does not
    match the data; ImageError when ``data`` cannot be read; TrustError for a broken key file.
    """
    import pysequoia

    hint = f"rkt trust --prefix={name}"
    try:
        os.stat(data)
    except OSError as exc:
        raise ImageError(f'image "{name}": cannot read "{data}": {exc.strerror or exc}') from exc
    sig = _parse_signature(signature, name)
    trusted = keystore.key_infos_for_name(name)
    if not trusted:
        raise SignatureError(f'image "{name}": no keys trusted for this image', hint=hint)

    issuers = {h.lower() for h in (sig.issuer_fingerprint, sig.issuer_key_id) if h}
    candidates = [info for info in trusted if issuers & info.key_handles] if issuers else trusted
    if not candidates:
        signer = sig.issuer_fingerprint or sig.issuer_key_id
        raise SignatureError(
            f'image "{name}": signed by key {signer}, which is not trusted for "{name}"', hint=hint
        )

    def store(_key_ids: list[str]) -> list[Any]:
        return [info.cert for info in candidates]

    try:
        result = pysequoia.verify(file=str(data), signature=sig, store=store)
    except Exception as exc:
        raise SignatureError(
            f'image "{name}": signature verification failed: {_why_failed(candidates)}'
        ) from exc
    fingerprints = {info.fingerprint for info in candidates}
    for valid in result.valid_sigs:
        signer = str(valid.certificate).lower()
        if signer in fingerprints:
            return signer
    raise SignatureError(f'image "{name}": signature verification failed: bad signature')


def _parse_signature(signature: bytes, name: str) -> Any:
    import pysequoia

    if not signature.strip():
        raise SignatureError(f'image "{name}": malformed signature: empty signature file')
    try:
        return pysequoia.Sig.from_bytes(signature)
    except Exception as exc:
        reason = sequoia_reason(exc)
        raise SignatureError(f'image "{name}": malformed signature: {reason}') from exc


def _why_failed(candidates: list[KeyInfo]) -> str:
    """Name the likely cause when the signer is trusted but Sequoia still refused."""
    if len(candidates) == 1:
        info = candidates[0]
        if info.cert.is_revoked:
            return f"key {info.fingerprint} is revoked"
        expiration = info.cert.expiration
        if expiration is not None and expiration <= datetime.now(UTC):
            return f"key {info.fingerprint} expired on {expiration.date().isoformat()}"
    return "bad signature"
