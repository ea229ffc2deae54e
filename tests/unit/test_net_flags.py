"""``--hostname`` of run and run-prepared: checked before any pod exists."""

from __future__ import annotations

import pytest

from rkt.cli.net_flags import hostname_option
from rkt.errors import UsageError


@pytest.mark.parametrize("value", ["web", "web-1.example", "a" * 63])
def test_a_valid_hostname_is_kept(value: str) -> None:
    assert hostname_option(value) == value


@pytest.mark.parametrize("value", [None, ""])
def test_no_hostname_is_the_default(value: str | None) -> None:
    assert hostname_option(value) is None


@pytest.mark.parametrize("value", ["bad host", "bad_host!", "-web", "a" * 64])
def test_an_invalid_hostname_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="not a valid hostname"):
        hostname_option(value)
