"""Fixtures shared by the unit tests: a gpg home with a signing key, made once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require
from tests.support.gpg import GpgHome, GpgKey, have_gpg


@pytest.fixture(scope="module")
def gpg() -> Iterator[GpgHome]:
    require(have_gpg(), "needs gpg and gpgconf")
    with GpgHome() as home:
        yield home


@pytest.fixture(scope="module")
def alice(gpg: GpgHome) -> GpgKey:
    return gpg.generate_key("Alice Publisher <alice@example.com>")
