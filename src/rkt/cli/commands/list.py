"""``rkt list [--full] [--no-legend] [--format=json|json-pretty]``: the pods, as rkt/list.go shows
them.

Cheap by design: every pod is read from its directory (a lock probe, ``pid``, the status files the
stage1 keeps); no stage1 is called, so the cost does not depend on what the pods are doing.
"""

from __future__ import annotations

import time

from rkt.cli.commands.status import format_networks, pod_json, pods_root
from rkt.cli.output import add_format_argument, format_time, print_json, print_table
from rkt.cli.quickparse import add_bool
from rkt.errors import PrivilegeError
from rkt.settings import GlobalOptions
from rkt.stage0.pods import PodInfo, list_pods

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse

HEADERS = ("UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS")

_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0
_WEEK, _MONTH = 7 * _DAY, 30 * _DAY
_YEAR = 12 * _MONTH
# go-humanize's Time() table, which rkt list uses: (below, format, unit)
_MAGNITUDES: tuple[tuple[float, str, float], ...] = (
    (1, "now", 1),
    (2, "1 second {}", 1),
    (_MINUTE, "{n} seconds {}", 1),
    (2 * _MINUTE, "1 minute {}", 1),
    (_HOUR, "{n} minutes {}", _MINUTE),
    (2 * _HOUR, "1 hour {}", 1),
    (_DAY, "{n} hours {}", _HOUR),
    (2 * _DAY, "1 day {}", 1),
    (_WEEK, "{n} days {}", _DAY),
    (2 * _WEEK, "1 week {}", 1),
    (_MONTH, "{n} weeks {}", _WEEK),
    (2 * _MONTH, "1 month {}", 1),
    (_YEAR, "{n} months {}", _MONTH),
    (18 * _MONTH, "1 year {}", 1),
    (2 * _YEAR, "2 years {}", 1),
    (float("inf"), "{n} years {}", _YEAR),
)


def humanize_time(ts: float, now: float | None = None) -> str:
    """``6 seconds ago``, ``1 minute ago``, ``now``, ``3 hours from now`` (go-humanize)."""
    now = time.time() if now is None else now
    delta = now - ts
    label = "ago"
    if delta < 0:
        delta, label = -delta, "from now"
    for below, fmt, unit in _MAGNITUDES:
        if delta < below:
            return fmt.format(label, n=int(delta // unit)) if fmt != "now" else "now"
    return "a long while " + label  # pragma: no cover - unreachable with the inf bound


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bool(parser, "--full", False, "show full UUIDs and absolute times")
    add_bool(parser, "--no-legend", False, "suppress the header line")
    add_format_argument(parser)


def _versions(info: PodInfo) -> dict[str, str]:
    """The ``version`` label of each app's image (read from the pod manifest by ``pod_info``)."""
    return {app.name: app.image_version for app in info.apps if app.image_version is not None}


def rows_for(info: PodInfo, versions: dict[str, str], *, full: bool, now: float) -> list[list[str]]:
    """One row per app; the pod's columns on its first row only (rkt's layout)."""

    def when(ts: float | None) -> str:
        if ts is None:
            return "-"
        return format_time(ts) if full else humanize_time(ts, now)

    uuid = info.uuid if full else info.uuid[:8]
    pod_cols = [info.state, when(info.created_at), when(info.started_at)]
    nets = format_networks(info.networks)
    if not info.apps:
        return [[uuid, "-", "-", *pod_cols, nets]]
    rows = []
    for i, app in enumerate(info.apps):
        version = versions.get(app.name)
        image = f"{app.image_name}:{version}" if version else app.image_name
        if i == 0:
            rows.append([uuid, app.name, image, *pod_cols, nets])
        else:
            rows.append(["", app.name, image, "", "", "", ""])
    return rows


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    root = pods_root(opts, "list")
    try:
        pods = list_pods(root, app_status=False)  # what the columns need, nothing per app
    except PermissionError as exc:
        raise PrivilegeError(f'list: pods "{root}": {exc.strerror}') from exc
    pods.sort(key=lambda p: (p.created_at or 0.0, p.uuid))
    if args.format:
        print_json([pod_json(p, detailed=False) for p in pods], pretty=args.format == "json-pretty")
        return 0
    now = time.time()
    rows: list[list[str]] = []
    for info in pods:
        rows += rows_for(info, _versions(info), full=args.full, now=now)
    print_table(HEADERS, rows, no_legend=args.no_legend)
    return 0
