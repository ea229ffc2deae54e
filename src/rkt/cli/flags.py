"""Small flag parsers shared by commands: Go-style durations and booleans."""

from __future__ import annotations

import argparse
import re
from typing import Any

from rkt.errors import UsageError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, flag: str) -> float:
    """Go's time.ParseDuration syntax (``24h``, ``1h30m``, ``10s``, ``0``) in seconds."""
    value = text.strip()
    if value in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None:
            raise UsageError(f'{flag}: invalid duration "{text}" (examples: 30m, 24h, 1h30m)')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total


def parse_bool(value: str, flag: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "t"):
        return True
    if lowered in ("false", "0", "no", "f"):
        return False
    raise UsageError(f'{flag}: invalid boolean "{value}"')


class BoolAction(argparse.Action):
    """A boolean flag in rkt's (cobra's) style: ``--flag``, ``--flag=true`` or ``--flag=false``.

    A bare ``--flag`` never consumes the next argument; ``rewrite_bool_flags`` turns the ``=VALUE``
    forms into what argparse understands before parsing.
    """

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        setattr(namespace, self.dest, True)


def add_bool(
    parser: argparse.ArgumentParser | Any, name: str, default: bool, help_text: str
) -> None:
    parser.add_argument(name, action=BoolAction, default=default, help=help_text)


def rewrite_bool_flags(
    actions: list[argparse.Action], argv: list[str]
) -> tuple[list[str], dict[str, bool]]:
    """``--flag=true`` -> ``--flag``; ``--flag=false`` -> dropped and returned as an override."""
    flags = {
        opt: action.dest
        for action in actions
        if isinstance(action, BoolAction | argparse._StoreTrueAction)
        for opt in action.option_strings
    }
    out: list[str] = []
    overrides: dict[str, bool] = {}
    for index, token in enumerate(argv):
        if token == "--":
            out.extend(argv[index:])
            break
        name, eq, value = token.partition("=")
        if eq and name in flags:
            if parse_bool(value, name):
                out.append(name)
            else:
                overrides[flags[name]] = False
            continue
        out.append(token)
    return out, overrides
