"""Download progress on the terminal: one line redrawn with ``\\r``, at most 10 times a second.

Draws only when the stream is a terminal; piped or redirected output stays clean. Implements
``rkt.fetch.progress.Progress``; imports ``rkt.cli.output`` for sizes and the standard library.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rkt.cli.output import format_size
from rkt.fetch.progress import NullProgress, Progress

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import TextIO

REDRAW_INTERVAL = 0.1  # seconds: at most 10 redraws per second
_BAR_WIDTH = 20


class TerminalProgress:
    """``label [=====>    ] 1.2MiB/3.4MiB  35%  2.1MiB/s`` on one line of ``stream``."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._width = width
        self._enabled = _is_tty(self._stream)
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._started_at = 0.0
        self._drawn_at: float | None = None
        self._active = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    def start(self, label: str, total: int | None) -> None:
        self._label = label
        self._total = total
        self._done = 0
        self._started_at = self._clock()
        self._drawn_at = None
        self._active = True
        self._draw(force=True)

    def advance(self, n: int) -> None:
        if not self._active:
            return
        self._done += n
        self._draw(force=False)

    def finish(self) -> None:
        if not self._active:
            return
        self._draw(force=True)
        self._active = False
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, *, force: bool) -> None:
        if not self._enabled:
            return
        now = self._clock()
        if not force and self._drawn_at is not None and now - self._drawn_at < REDRAW_INTERVAL:
            return
        self._drawn_at = now
        width = self._width
        if not width:
            import shutil  # only when a bar is drawn: shutil imports bz2 and lzma (~3 ms)

            width = shutil.get_terminal_size((80, 24)).columns
        line = render_line(self._label, self._done, self._total, now - self._started_at, width)
        self._stream.write("\r" + line)
        self._stream.flush()


def render_line(label: str, done: int, total: int | None, elapsed: float, width: int) -> str:
    """The progress line, padded or cut to ``width - 1`` columns (no wrap on the last column)."""
    rate = f"{format_size(int(done / elapsed))}/s" if elapsed > 0 else ""
    if total:
        fraction = min(done / total, 1.0)
        filled = int(fraction * _BAR_WIDTH)
        arrow = ">" if filled < _BAR_WIDTH else ""
        bar = "[" + ("=" * filled + arrow).ljust(_BAR_WIDTH) + "]"
        numbers = f"{bar} {format_size(done)}/{format_size(total)} {fraction:4.0%} {rate}"
    else:
        numbers = f"{format_size(done)} {rate}"
    room = max(width - 1 - len(numbers) - 1, 0)
    if len(label) > room:
        label = "..." + label[-(room - 3) :] if room > 3 else label[:room]
    return f"{label} {numbers}".ljust(width - 1)[: width - 1]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_progress(stream: TextIO | None = None) -> Progress:
    """A terminal bar when ``stream`` (default stderr) is a terminal, otherwise silence."""
    target = sys.stderr if stream is None else stream
    return TerminalProgress(target) if _is_tty(target) else NullProgress()
