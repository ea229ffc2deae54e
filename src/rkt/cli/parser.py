"""argparse for the commands that use it: the ``Parser`` subclass, rkt's boolean flags, the global
flags as argparse options, and the per-command parser ``main`` builds.

Kept apart from ``rkt.cli.flags`` and ``rkt.cli.globals`` (pure value parsing), so the commands
with a grammar of their own (``run``, ``prepare``, ``app sandbox``, ``app add``) never import
argparse, gettext and locale (~3 ms of every ``rkt run``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from rkt.cli.flags import parse_bool
from rkt.cli.globals import global_defaults, global_options
from rkt.errors import UsageError
from rkt.settings import DEFAULT_DIR, GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, NoReturn


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


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns the exit code.

    ``usage_of``: a callable giving the usage line, called only when a usage or help text is
    printed (formatting one costs more than parsing the command line).
    """

    def __init__(
        self, *args: Any, usage_of: Callable[[], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
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
    defaults = global_defaults()
    parser = Parser(add_help=False)
    group = parser.add_argument_group("global flags")
    group.add_argument(
        "--dir", default=None, help=f"rkt data directory (default {DEFAULT_DIR}, or paths.d config)"
    )
    group.add_argument(
        "--local-config", default=defaults["local_config"], help="local configuration directory"
    )
    group.add_argument(
        "--system-config",
        default=defaults["system_config"],
        help="system configuration directory",
    )
    group.add_argument("--user-config", default="", help="user configuration directory")
    group.add_argument(
        "--insecure-options",
        default="none",
        help="comma-separated list of security features to disable "
        "(none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all)",
    )
    add_bool(group, "--trust-keys-from-https", False, "trust gpg keys fetched from https")
    add_bool(group, "--debug", False, "print debug output")
    return parser


def options_from(args: argparse.Namespace) -> GlobalOptions:
    return global_options(
        data_dir=args.dir,
        local_config=args.local_config,
        system_config=args.system_config,
        user_config=args.user_config,
        insecure_options=args.insecure_options,
        trust_keys_from_https=bool(args.trust_keys_from_https),
        debug=bool(args.debug),
    )


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
