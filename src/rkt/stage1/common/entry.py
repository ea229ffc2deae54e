"""The one place a stage1 entrypoint turns errors into exit codes (docs/stage1-abi.md §3):
a refusal or failure is one line on stderr and exit 254; a bug is a traceback and exit 255.

Imports only the standard library, ``rkt.errors`` and ``rkt.host.signals``.
"""

from __future__ import annotations

import sys

from rkt.errors import EXIT_ERROR, EXIT_INTERNAL, RktError
from rkt.host.signals import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable


def run_entrypoint(name: str, func: Callable[[list[str]], int], argv: list[str]) -> int:
    debug = "--debug" in argv
    # A SIGCHLD the caller ignored survives its execve (and so reaches an exec'd entrypoint):
    # the kernel would reap our children itself, and nothing could wait for them.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        return func(argv)
    except (RktError, OSError) as exc:
        print(f"stage1 {name}: {describe_error(exc)}", file=sys.stderr)
        if debug and exc.__cause__ is not None:
            print(f"  caused by: {exc.__cause__!r}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        import traceback

        traceback.print_exc()
        return EXIT_INTERNAL


def describe_error(exc: BaseException) -> str:
    """The line a refusal or failure is reported with (after the entrypoint's prefix); for
    anything else (a bug), its repr, and the caller prints the traceback."""
    if isinstance(exc, RktError):
        return exc.message
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}".lower()
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"internal error: {exc!r}"
