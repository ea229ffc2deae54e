"""Small flag parsers shared by commands: Go-style durations and booleans.

Pure (no argparse: the ``run`` grammar uses these too); rkt's argparse glue is ``rkt.cli.parser``.
"""

from __future__ import annotations

from rkt.errors import UsageError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# What Go's ParseDuration takes, as the regular expression (\d+(?:\.\d*)?|\.\d+)(UNIT) repeated,
# the units tried in _UNITS's order ("ms" before "m"); written out, without importing re (~5 ms
# of `rkt gc`).


def parse_duration(text: str, flag: str) -> float:
    """Go's time.ParseDuration syntax (``24h``, ``1h30m``, ``10s``, ``0``) in seconds."""
    value = text.strip()
    if value in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        start = pos
        while pos < len(value) and value[pos] in _DIGITS:
            pos += 1
        digits = pos > start
        if pos < len(value) and value[pos] == ".":
            pos += 1
            fraction = pos
            while pos < len(value) and value[pos] in _DIGITS:
                pos += 1
            digits = digits or pos > fraction
        unit = next((u for u in _UNITS if value.startswith(u, pos)), None)
        if not digits or unit is None:
            raise UsageError(f'{flag}: invalid duration "{text}" (examples: 30m, 24h, 1h30m)')
        total += float(value[start:pos]) * _UNITS[unit]
        pos += len(unit)
    if total > MAX_DURATION:
        raise UsageError(f'{flag}: duration "{text}" is longer than Go\'s longest (~2562047h)')
    return total


_DIGITS = "0123456789"  # ASCII, as Go's: str.isdecimal takes fullwidth and other digits
MAX_DURATION = (2**63 - 1) / 1e9  # a Go time.Duration, in seconds


def parse_age(text: str, flag: str) -> float:
    """A gc grace period or expiry: a duration that must be written out (an empty value is not
    0 here: it would collect what the default keeps)."""
    if not text.strip():
        raise UsageError(f"{flag}: empty duration (examples: 0s, 30m, 24h)")
    return parse_duration(text, flag)


def parse_bool(value: str, flag: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "t"):
        return True
    if lowered in ("false", "0", "no", "f"):
        return False
    raise UsageError(f'{flag}: invalid boolean "{value}"')
