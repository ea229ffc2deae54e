"""Entry point of the ``rkt`` command: parse global flags, dispatch, map errors to exit codes.

This is the only module that calls ``sys.exit``. Command modules are imported only once chosen (see
``rkt.cli.table``), so ``rkt --help`` stays fast and free of network and crypto imports; argparse
(``rkt.cli.parser``) only for a command line ``rkt.cli.quickparse`` leaves to it, never for
``run`` and ``prepare``.
"""

from __future__ import annotations

import gc
import sys

from rkt.cli.table import COMMANDS, HIDDEN, find_command, group_names
from rkt.errors import EXIT_INTERNAL, EXIT_USAGE, RktError

# typing.TYPE_CHECKING without importing typing (nor collections.abc) before main() has turned
# the garbage collector off (see main); type checkers treat any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Protocol

    from rkt.settings import GlobalOptions

    class CommandModule(Protocol):
        def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

        def run(self, args: argparse.Namespace, opts: GlobalOptions) -> int: ...

    class RawCommandModule(Protocol):
        """A command with its own grammar (run, prepare): it gets the raw arguments."""

        def run_raw(self, argv: list[str]) -> int: ...


# Global flags that take a value (so the command words can be found among them).
_VALUED_GLOBALS = {
    "--dir",
    "--local-config",
    "--system-config",
    "--user-config",
    "--insecure-options",
}


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
    from rkt.cli.parser import global_parser

    lines += ["", "Global flags:"]
    lines.append(global_parser().format_help().split("global flags:", 1)[-1].rstrip("\n"))
    lines += ["", "Run 'rkt COMMAND --help' for the flags of a command."]
    return "\n".join(lines) + "\n"


def _wants_debug(argv: Sequence[str]) -> bool:
    return any(tok in ("--debug", "--debug=true", "--debug=1") for tok in argv)


def dispatch(argv: Sequence[str], *, collecting: bool) -> int:
    """Run the command ``argv`` names; ``collecting``: whether the caller had the garbage collector
    on (main turned it off for the start)."""
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
    if name == "run":
        from rkt.stage0.runmemo import run_from_memo

        run_from_memo(rest)  # a command line run again: its pod laid out from the run memo
    __import__(module_name)  # not importlib: its package imports warnings (~0.5 ms)
    loaded = sys.modules[module_name]
    if hasattr(loaded, "run_raw"):
        raw: RawCommandModule = loaded
        return raw.run_raw(rest)
    if collecting:
        gc.enable()  # (see main) these may run long: fetch, logs, image gc
    module: CommandModule = loaded
    from rkt.cli.quickparse import options_from, quick_parse

    args = quick_parse(module.add_arguments, rest)  # a plain command line, without argparse
    if args is None:  # help, an error, an abbreviation...: argparse's
        from rkt.cli.parser import command_parser

        args = command_parser(name, summary, module.add_arguments).parse_args(rest)
    return module.run(args, options_from(args))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_debug(argv)
    # No cyclic garbage collection while a command starts: loading its modules creates some 100k
    # objects that all stay alive, and the ~25 collections that pass over them cost ~4 ms of every
    # `rkt run`. dispatch turns it back on for the argparse commands; run, prepare, app sandbox and
    # app add end soon after preparing, by exec'ing the stage1 or handing over to it in-process
    # (rkt.stage0.inprocess turns it on again, as a fresh interpreter has it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        code = dispatch(argv, collecting=collecting)
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
    if collecting:
        gc.enable()
    sys.exit(code if code is not None else 0)


if __name__ == "__main__":
    main()
