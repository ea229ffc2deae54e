"""``rkt.cli.quickparse`` against argparse (``rkt.cli.parser``), command by command.

For every command parsed by argparse, a corpus of command lines: each flag in each of its forms,
with good and bad values, abbreviations, ``--``, ``-h``, values that start with ``-``, positional
arguments in one run or several, too many or too few, and random mixtures of all of these. The
quick parser must either leave a line to argparse (None) or give exactly argparse's namespace;
and it must leave every line argparse refuses. It must also take the plain lines users type, so
that those commands start without argparse (test_cli_startup.py checks what they import).
"""

from __future__ import annotations

import random
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from rkt.cli.parser import command_parser
from rkt.cli.quickparse import Recorder, add_global_flags, quick_parse
from rkt.cli.table import COMMANDS
from rkt.errors import RktError


def _argparse_commands() -> list[tuple[str, str, Callable[[Any], None]]]:
    out = []
    for name, (module_name, summary) in sorted(COMMANDS.items()):
        __import__(module_name)
        module = sys.modules[module_name]
        if hasattr(module, "add_arguments"):
            out.append((name, summary, module.add_arguments))
    return out


COMMAND_PARSERS = _argparse_commands()

VALUES = ["x", "json", "1", "-1", "", "5s", "a=b", "--debug", "-", "text", "asc", "30m", "0"]
WORDS = ["0123abcd", "example.com/img:1", "a b", "-", "-5", "--", "-h", "--help", "--bogus"]


def _corpus(add_arguments: Callable[[Any], None], seed: int) -> list[list[str]]:
    rec = Recorder()
    add_arguments(rec)
    add_global_flags(rec)
    names = sorted(rec.options)
    pieces: list[list[str]] = []
    for name in names:
        spec = rec.options[name]
        pieces.append([name])
        pieces += [[f"{name}={v}"] for v in (*VALUES, "true", "false", "maybe")]
        pieces += [[name, v] for v in VALUES]
        if spec.choices:
            pieces += [[f"{name}={c}"] for c in spec.choices]
            pieces += [[name, str(c)] for c in spec.choices]
        if len(name) > 4:
            pieces.append([name[:-2]])  # an abbreviation (or an unknown flag)
            pieces.append([f"{name[:-2]}=x"])
    pieces += [[w] for w in WORDS]
    lines = [[], *pieces]
    rng = random.Random(seed)
    for _ in range(400):
        line: list[str] = []
        for _ in range(rng.randint(1, 5)):
            line += rng.choice(pieces) if rng.random() < 0.6 else [rng.choice(WORDS[:3])]
        lines.append(line)
    return lines


def _argparse(name: str, summary: str, add: Callable[[Any], None], argv: list[str]) -> Any:
    try:
        return vars(command_parser(name, summary, add).parse_args(argv))
    except RktError:
        return "refused"
    except SystemExit:
        return "help"


@pytest.mark.parametrize(
    ("name", "summary", "add_arguments"), COMMAND_PARSERS, ids=[c[0] for c in COMMAND_PARSERS]
)
def test_quick_parse_agrees_with_argparse(
    name: str, summary: str, add_arguments: Callable[[Any], None]
) -> None:
    taken = 0
    for argv in _corpus(add_arguments, seed=zlib.crc32(name.encode())):
        try:
            quick = quick_parse(add_arguments, argv)
        except RktError:
            quick = "refused"  # (an invalid --flag=BOOL: the same error either way)
        expected = _argparse(name, summary, add_arguments, argv)
        if quick is None:
            continue
        taken += 1
        got = quick if quick == "refused" else vars(quick)
        assert got == expected, f"rkt {name} {argv}"
    if name == "enter":  # its command is argparse.REMAINDER: always argparse's
        assert taken == 0
    else:
        assert taken >= 50, f"rkt {name}: the quick parser took only {taken} lines"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("list", []),
        ("list", ["--format=json", "--full"]),
        ("list", ["--no-legend=false", "--dir=/var/lib/rkt"]),
        ("status", ["0123abcd"]),
        ("status", ["--wait=10s", "0123abcd", "--format", "json"]),
        ("status", ["--wait-ready", "--uuid-file=/run/pod"]),
        ("gc", ["--grace-period=0", "--expire-prepared", "1h", "--mark-only"]),
        ("stop", ["--force", "0123abcd", "4567ef01"]),
        ("rm", ["0123abcd"]),
        ("image list", ["--format=json", "--order=desc"]),
        ("logs", ["--tail", "10", "0123abcd"]),
        ("version", []),
        ("app status", ["--app=web", "0123abcd"]),
    ],
)
def test_plain_command_lines_skip_argparse(command: str, argv: list[str]) -> None:
    module_name, summary = COMMANDS[command]
    __import__(module_name)
    add = sys.modules[module_name].add_arguments
    quick = quick_parse(add, argv)
    assert quick is not None
    assert vars(quick) == vars(command_parser(command, summary, add).parse_args(argv))


def test_every_command_but_enter_is_within_what_the_quick_parser_models() -> None:
    """Including: no argument shares a dest with another (``rkt image build DIR`` did with the
    global ``--dir``, which then replaced it)."""
    outside = []
    for name, _, add_arguments in COMMAND_PARSERS:
        rec = Recorder()
        add_arguments(rec)
        add_global_flags(rec)
        if not rec.supported:
            outside.append(name)
    assert outside == ["enter"]


def test_image_build_keeps_its_source_dir_beside_the_global_dir() -> None:
    module_name, summary = COMMANDS["image build"]
    __import__(module_name)
    add = sys.modules[module_name].add_arguments
    argv = ["src", "out.aci", "--dir=/var/lib/rkt"]
    for args in (
        quick_parse(add, argv),
        command_parser("image build", summary, add).parse_args(argv),
    ):
        assert args is not None and (args.source, args.dir) == ("src", "/var/lib/rkt")
