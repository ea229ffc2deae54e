"""Download progress: the terminal bar, its throttle, silence off a terminal; fetch stays light."""

from __future__ import annotations

import io
import subprocess
import sys

from rkt.cli.progress import TerminalProgress, make_progress, render_line
from rkt.fetch.progress import NullProgress, Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_progress_draws_one_line_with_carriage_returns() -> None:
    out, clock = FakeTerminal(), FakeClock()
    progress = TerminalProgress(out, clock=clock, width=100)
    progress.start("https://example.com/app.aci", 4 * 1024 * 1024)
    clock.now += 1.0
    progress.advance(1024 * 1024)
    progress.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = text.rstrip("\n").split("\r")[1:]
    assert len(frames) == 3  # start, the advance, finish
    assert "https://example.com/app.aci" in frames[1]
    assert "1.0MiB/4.0MiB" in frames[1] and " 25%" in frames[1] and "1.0MiB/s" in frames[1]
    assert all(len(frame) == 99 for frame in frames)


def test_terminal_progress_redraws_at_most_ten_times_a_second() -> None:
    out, clock = FakeTerminal(), FakeClock()
    progress = TerminalProgress(out, clock=clock, width=80)
    progress.start("app.aci", 1000)
    for _ in range(50):  # 50 chunks within 0.25 s
        clock.now += 0.005
        progress.advance(10)
    assert out.getvalue().count("\r") <= 1 + 3


def test_terminal_progress_is_silent_off_a_terminal() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, width=80)
    progress.start("app.aci", 10)
    progress.advance(10)
    progress.finish()
    assert out.getvalue() == ""
    assert isinstance(make_progress(out), NullProgress)
    assert isinstance(make_progress(FakeTerminal()), TerminalProgress)


def test_finish_without_start_draws_nothing() -> None:
    out = FakeTerminal()
    TerminalProgress(out, width=80).finish()
    assert out.getvalue() == ""


def test_render_line_fits_the_width_and_handles_unknown_totals() -> None:
    line = render_line("x" * 200, 5000, None, 2.0, 60)
    assert len(line) == 59
    assert line.startswith("...") and "4.9KiB" in line and "2.4KiB/s" in line


def test_progress_implementations_satisfy_the_protocol() -> None:
    implementations: list[Progress] = [NullProgress(), TerminalProgress(io.StringIO())]
    assert len(implementations) == 2


def test_importing_fetch_modules_does_not_import_httpx() -> None:
    code = (
        "import rkt.fetch.reference, rkt.fetch.progress, rkt.fetch.discovery, rkt.fetch.http, "
        "rkt.cli.progress, sys; assert 'httpx' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "rkt.fetch.http" in imported
    assert not [name for name in imported if name.split(".")[0] in ("httpx", "httpcore")]
