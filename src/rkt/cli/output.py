"""Human and machine output: aligned tables, JSON, sizes and times. Used only by cli/commands."""

from __future__ import annotations

import sys

from rkt import jsonio

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

FORMATS = ("", "json", "json-pretty")


def add_format_argument(parser: Any) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="",
        help="output format: json or json-pretty (default: a table)",
    )


def print_json(obj: Any, *, pretty: bool = False, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(jsonio.dumps(obj, indent=2 if pretty else None, sort_keys=False))
    stream.write("\n")


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    no_legend: bool = False,
    out: TextIO | None = None,
) -> None:
    """Columns padded with tabs to 8-column stops, as rkt's tabwriter output (padchar '\\t')."""
    stream = out or sys.stdout
    table = [list(headers)] if not no_legend else []
    table += [list(r) for r in rows]
    if not table:
        return
    widths = [-(-(max(len(row[i]) for row in table) + 1) // 8) * 8 for i in range(len(table[0]))]
    for row in table:
        parts = []
        for i, cell in enumerate(row[:-1]):
            parts.append(cell + "\t" * -(-(widths[i] - len(cell)) // 8))
        stream.write("".join(parts) + row[-1] + "\n")


def format_size(size: int) -> str:
    """rkt's humanized sizes: 1.2MiB, 512B."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{size}B"


def format_time(ts: float | None) -> str:
    if not ts:
        return "-"
    from datetime import UTC, datetime  # here: `rkt list` shows relative times (~1 ms)

    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " +0000 UTC"


def iso_time(ts: float | None) -> str | None:
    if not ts:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC).isoformat()
