"""The stage1's ``interface-version`` annotation, read the same way by prepare and by run
(docs/stage1-abi.md §1): ASCII digits, blanks around them allowed."""

from __future__ import annotations

import pytest

from rkt import abi


@pytest.mark.parametrize(
    ("value", "want"),
    [("3", 3), (" 3", 3), ("2\n", 2), ("01", 1), ("0", 0)],
)
def test_versions(value: str, want: int) -> None:
    assert abi.interface_version(value) == want


@pytest.mark.parametrize(
    "value", ["", " ", "3a", "v3", "²", "٣", "-1", "+3", "3.0", None, 3, ["3"]]
)
def test_not_versions(value: object) -> None:
    """Not a version. str.isdigit takes a superscript two, which int() refuses, and
    Arabic-Indic digits, which int() reads: the ABI's versions are ASCII."""
    assert abi.interface_version(value) is None
