"""Flag values (``rkt.cli.flags``): Go's duration syntax as the regular expression that defines it
(the parser is written out, without ``re``), and rkt's booleans."""

from __future__ import annotations

import random
import re

import pytest

from rkt.cli.flags import parse_bool, parse_duration
from rkt.errors import UsageError

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")  # ASCII, as Go


def by_regex(text: str) -> float | None:
    value = text.strip()
    if value in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = PART.match(value, pos)
        if match is None:
            return None
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    return total


def corpus() -> list[str]:
    fixed = ["30m", "24h", "1h30m", "10s", "0", "", " 5s ", "1.5h", ".5s", "5.s", ".", "5", "h",
             "5x", "1h-1m", "500ms", "2us", "3µs", "7ns", "1m1ms", "0.0s", "\u0661\u0662s", "²s",
             "+5s", "-5s", "5 s", "5ss", "5mm", "1e3s", "..5s", "5..s", "00010s"]  # fmt: skip
    rng = random.Random(11)
    alphabet = "0123456789..smhnuµx-+ \u0661"  # (and an Arabic-Indic one)
    fixed += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    return fixed


def test_durations_are_what_the_regular_expression_takes() -> None:
    for text in corpus():
        expected = by_regex(text)
        if expected is None:
            with pytest.raises(UsageError, match=r"--wait: invalid duration"):
                parse_duration(text, "--wait")
        else:
            assert parse_duration(text, "--wait") == expected, text


def test_booleans() -> None:
    assert [parse_bool(v, "--x") for v in ("true", "1", "YES", " t ")] == [True] * 4
    assert [parse_bool(v, "--x") for v in ("false", "0", "no", "F")] == [False] * 4
    with pytest.raises(UsageError, match='--x: invalid boolean "maybe"'):
        parse_bool("maybe", "--x")


def test_durations_beyond_go_s_longest_are_refused() -> None:
    assert parse_duration("2000000h", "--wait") == 2_000_000 * 3600
    with pytest.raises(UsageError, match="longer than Go's longest"):
        parse_duration("3000000h", "--wait")


def test_an_empty_gc_age_is_refused_not_taken_as_zero() -> None:
    from rkt.cli.flags import parse_age

    assert parse_age("0s", "--grace-period") == 0.0
    for empty in ("", "  "):
        with pytest.raises(UsageError, match="--expire-prepared: empty duration"):
            parse_age(empty, "--expire-prepared")
