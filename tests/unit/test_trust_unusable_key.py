"""A key without a valid self-signature (a bare key packet; one made in the future) is refused
on one line, not with pysequoia's Rust backtrace and an internal error."""

from __future__ import annotations

import os
import struct

import pytest

from rkt.errors import TrustError
from rkt.trust.keys import parse_public_key


def _bare_rsa_key_packet() -> bytes:
    n = int.from_bytes(os.urandom(256), "big") | (1 << 2047) | 1

    def mpi(x: int) -> bytes:
        return struct.pack(">H", x.bit_length()) + x.to_bytes((x.bit_length() + 7) // 8, "big")

    body = bytes([4]) + struct.pack(">I", 1_700_000_000) + bytes([1]) + mpi(n) + mpi(65537)
    return bytes([0x99]) + struct.pack(">H", len(body)) + body  # old format, tag 6


def test_a_key_without_a_binding_signature_is_refused_on_one_line() -> None:
    with pytest.raises(TrustError) as info:
        parse_public_key(_bare_rsa_key_packet(), source='key "bare.key"')
    message = str(info.value)
    assert message.startswith('key "bare.key": not a usable openpgp public key: ')
    assert "\n" not in message
