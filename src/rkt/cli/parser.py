"""argparse for the commands that use it: the ``Parser`` subclass, rkt's boolean flags as an
argparse action, the global flags as argparse options, and the per-command parser ``main``
builds when ``rkt.cli.quickparse`` leaves a command line to argparse (help, errors,
abbreviations and the rest: see there).

Kept apart from ``rkt.cli.flags`` and ``rkt.cli.globals`` (pure value parsing), so a plain command
line, and the commands with a grammar of their own (``run``, ``prepare``, ``app sandbox``,
``app add``), never import argparse, gettext and locale (~10 ms).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from rkt.cli.quickparse import BOOL_ACTION, add_global_flags, bool_overrides
from rkt.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, NoReturn


class BoolAction(argparse.Action):
    """A boolean flag in rkt's (cobra's) style: ``--flag``, ``--flag=true`` or ``--flag=false``
    (``quickparse.add_bool`` declares one, by the action name ``BOOL_ACTION``).

    A bare ``--flag`` never consumes the next argument; ``rewrite_bool_flags`` turns the ``=VALUE``
    forms into what argparse understands before parsing.
    """

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        setattr(namespace, self.dest, True)


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
    return bool_overrides(flags, argv)


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns the exit code.

    ``usage_of``: a callable giving the usage line, called only when a usage or help text is
    printed (formatting one costs more than parsing the command line).
    """

    def __init__(
        self, *args: Any, usage_of: Callable[[], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", BOOL_ACTION, BoolAction)
        self._usage_of = usage_of

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        argv, overrides = rewrite_bool_flags(self._actions, list(args or []))
        parsed = super().parse_args(argv, namespace)
        for dest, value in overrides.items():
            setattr(parsed, dest, value)
        return parsed

    def format_usage(self) -> str:
        self._fill_usage()
        return super().format_usage()

    def format_help(self) -> str:
        self._fill_usage()
        return super().format_help()

    def _fill_usage(self) -> None:
        if self._usage_of is not None:
            self.usage, self._usage_of = self._usage_of(), None

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def global_parser() -> argparse.ArgumentParser:
    """The global flags of rkt (rkt/rkt.go); accepted before or after the command words."""
    parser = Parser(add_help=False)
    add_global_flags(parser)
    return parser


def command_parser(
    name: str, summary: str, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> Parser:
    """The parser of one command: its own flags, then the global flags.

    The usage line shows the command's own flags followed by ``[global flags]``; it is formatted
    only when printed.
    """

    def usage() -> str:
        bare = Parser(prog=f"rkt {name}", add_help=False)
        add_arguments(bare)
        return bare.format_usage().removeprefix("usage: ").strip() + " [global flags]"

    parser = Parser(
        prog=f"rkt {name}", description=summary, usage_of=usage, parents=[global_parser()]
    )
    add_arguments(parser)
    return parser
