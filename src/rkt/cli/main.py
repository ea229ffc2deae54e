"""Entry point of the ``rkt`` command: parse global flags, dispatch, map errors to exit codes.

This is the only module that calls ``sys.exit``. Command modules are imported only once chosen (see
``rkt.cli.table``), so ``rkt --help`` stays fast and free of network and crypto imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, Protocol

from rkt.cli.flags import add_bool, rewrite_bool_flags
from rkt.cli.table import COMMANDS, HIDDEN, find_command, group_names
from rkt.errors import EXIT_INTERNAL, EXIT_USAGE, RktError, UsageError
from rkt.settings import (
    DEFAULT_DIR,
    DEFAULT_LOCAL_CONFIG,
    DEFAULT_SYSTEM_CONFIG,
    GlobalOptions,
    InsecureOptions,
)

# Global flags that take a value (so the command words can be found among them).
_VALUED_GLOBALS = {
    "--dir",
    "--local-config",
    "--system-config",
    "--user-config",
    "--insecure-options",
}


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, opts: GlobalOptions) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns the exit code."""

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        argv, overrides = rewrite_bool_flags(self._actions, list(args or []))
        parsed = super().parse_args(argv, namespace)
        for dest, value in overrides.items():
            setattr(parsed, dest, value)
        return parsed

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _env_path(name: str, default: Path) -> str:
    return os.environ.get(name, str(default))


def global_parser() -> argparse.ArgumentParser:
    """The global flags of rkt (rkt/rkt.go); accepted before or after the command words."""
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("global flags")
    group.add_argument(
        "--dir", default=_env_path("RKT_DIR", DEFAULT_DIR), help="rkt data directory"
    )
    group.add_argument(
        "--local-config",
        default=_env_path("RKT_LOCAL_CONFIG", DEFAULT_LOCAL_CONFIG),
        help="local configuration directory",
    )
    group.add_argument(
        "--system-config",
        default=_env_path("RKT_SYSTEM_CONFIG", DEFAULT_SYSTEM_CONFIG),
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
    return GlobalOptions(
        dir=Path(args.dir),
        local_config=Path(args.local_config),
        system_config=Path(args.system_config),
        user_config=Path(args.user_config) if args.user_config else None,
        insecure=InsecureOptions.parse(args.insecure_options),
        trust_keys_from_https=bool(args.trust_keys_from_https),
        debug=bool(args.debug),
    )


def split_command(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Find the command words in ``argv``; return the command and the remaining arguments."""
    words: list[str] = []
    positions: list[int] = []
    skip_next = False
    for index, token in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if token == "--":
            break
        if token.startswith("-"):
            if token in _VALUED_GLOBALS:
                skip_next = True
            continue
        words.append(token)
        positions.append(index)
        if len(words) == 2:
            break
    name, used = find_command(words)
    if name is None:
        return None, list(argv)
    drop = set(positions[:used])
    return name, [tok for i, tok in enumerate(argv) if i not in drop]


def usage_text(prefix: str = "") -> str:
    lines = ["Usage: rkt [global flags] COMMAND [flags] [args]", "", "Commands:"]
    for name, (_, summary) in sorted(COMMANDS.items()):
        if name in HIDDEN or not name.startswith(prefix):
            continue
        lines.append(f"  {name:<22} {summary}")
    lines += ["", "Global flags:"]
    lines.append(global_parser().format_help().split("global flags:", 1)[-1].rstrip("\n"))
    lines += ["", "Run 'rkt COMMAND --help' for the flags of a command."]
    return "\n".join(lines) + "\n"


def _wants_debug(argv: Sequence[str]) -> bool:
    return any(tok in ("--debug", "--debug=true", "--debug=1") for tok in argv)


def dispatch(argv: Sequence[str]) -> int:
    name, rest = split_command(argv)
    if name is None:
        words = [tok for tok in argv if not tok.startswith("-")]
        if words and words[0] in group_names():
            sys.stdout.write(usage_text(words[0] + " "))
            return 0 if len(words) == 1 else EXIT_USAGE
        if not words and any(tok in ("-h", "--help") for tok in argv):
            sys.stdout.write(usage_text())
            return 0
        if words:
            sys.stderr.write(f'rkt: unknown command "{words[0]}"\n')
        sys.stderr.write(usage_text())
        return EXIT_USAGE
    module_name, summary = COMMANDS[name]
    module: CommandModule = importlib.import_module(module_name)
    parser = _Parser(prog=f"rkt {name}", description=summary, parents=[global_parser()])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return module.run(args, options_from(args))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_debug(argv)
    try:
        code = dispatch(argv)
    except SystemExit as exc:  # argparse --help
        code = exc.code if isinstance(exc.code, int) else 0
    except RktError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        text = exc.message if exc.hint is None else f"{exc.message} (hint: {exc.hint})"
        sys.stderr.write(f"rkt: {text}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("rkt: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(
            f"rkt: internal error: {exc.__class__.__name__}: {exc} (run with --debug)\n"
        )
        code = EXIT_INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code if code is not None else 0)


if __name__ == "__main__":
    main()
