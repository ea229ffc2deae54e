"""rkt.textcheck: each check is the regular expression it replaces, on a corpus of awkward text."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from rkt import textcheck
from rkt.net.ports import is_port_name
from tests.conftest import bare_python

ALPHABET = "az09AZ-._~/ \n\t#;!é٣ß0f"
FIXED = [
    "", "a", "-", "a-", "-a", "a--b", "a-b", "a.b", "a/b", "a~b_c", "A", "ab\n", "\na", "a b",
    "0123456789abcdef", "0123456789ABCDEF", "g", "٣", "é", "_", "_x", "x.y-z", "1.2.3", "0755",
    "755", "07555", "0789", "rkt-1", "a" * 63, "a" * 64, ".a", "a.",
    "0b5ac8a4-3a8e-4d9c-9a5e-1f2e3d4c5b6a", "0b5ac8a4-3a8e-4d9c-9a5e-1f2e3d4c5b6a\n",
    "0B5AC8A4-3a8e-4d9c-9a5e-1f2e3d4c5b6a", "0b5ac8a43a8e-4d9c-9a5e-1f2e3d4c5b6a-",
]  # fmt: skip


def _corpus() -> list[str]:
    rng = random.Random(3)
    generated = [
        "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8))) for _ in range(4000)
    ]
    short = ["".join(p) for n in range(4) for p in itertools.product("a-./_~A0 ", repeat=n)]
    return FIXED + generated + short


CORPUS = _corpus()
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.mark.parametrize(
    ("check", "pattern"),
    [
        (textcheck.is_ac_name, r"[a-z0-9]+(?:-[a-z0-9]+)*"),
        (textcheck.is_ac_identifier, r"[a-z0-9]+(?:[-._~/][a-z0-9]+)*"),
        (textcheck.is_lower_hex, r"[0-9a-f]+"),
        (textcheck.is_uuid, UUID),
        (textcheck.is_env_name, r"[A-Za-z_][A-Za-z0-9_.-]*"),
        (textcheck.is_hostname, r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}"),
        (textcheck.is_octal_mode, r"[0-7]{3,4}"),
        (is_port_name, r"[a-z0-9]+([a-z0-9-]*[a-z0-9])?"),
        (textcheck.is_identifier, r"[A-Za-z_][A-Za-z0-9_]*"),
        (textcheck.is_cni_name, r"[A-Za-z0-9][A-Za-z0-9_.\-]*"),
    ],
)
def test_check_is_its_regular_expression(check: Callable[[str], bool], pattern: str) -> None:
    compiled = re.compile(pattern)
    wrong = [text for text in CORPUS if check(text) != bool(compiled.fullmatch(text))]
    assert not wrong, f"{check.__name__} differs from {pattern} on {wrong[:5]!r}"


def test_ac_name_from_is_the_substitution_it_replaces() -> None:
    for text in CORPUS:
        assert textcheck.ac_name_from(text) == re.sub(r"[^a-z0-9]+", "-", text).strip("-"), text


def test_start_path_name_checks_do_not_import_re() -> None:
    code = (
        "import sys\n"
        "from rkt.schema import names\n"
        "from rkt.fetch.reference import parse_image_reference\n"
        "assert names.is_ac_identifier('example.com/app') and names.sanitize_ac_name('My_App')\n"
        "names.validate_ac_version('1.2.3', 'v')\n"
        "parse_image_reference('example.com/app:1.0')\n"
        "print('re' in sys.modules)"
    )
    assert bare_python(code).strip() == "False"
