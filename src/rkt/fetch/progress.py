"""The progress plug: fetchers report bytes through ``Progress``; the CLI decides how to show them.

Library code never draws: it receives a ``Progress`` (``NullProgress`` by default) and the CLI
passes a terminal implementation (``rkt.cli.progress``). Imports only the standard library.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # a structural type for the checker, a plain base class at run time


class Progress(Protocol):
    """One transfer at a time: ``start`` (again on a restart), ``advance`` per chunk, ``finish``."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing; the default for library callers and non-interactive output."""

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass
