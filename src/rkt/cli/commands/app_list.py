"""``rkt app list UUID [--no-legend] [--format=json|json-pretty]``: the apps of a pod."""

from __future__ import annotations

from rkt.cli.commands.list import humanize_time
from rkt.cli.commands.status import app_json, lookup, pods_root
from rkt.cli.output import add_format_argument, print_json, print_table
from rkt.cli.quickparse import add_bool
from rkt.settings import GlobalOptions
from rkt.stage0.pods import pod_info

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse

HEADERS = ("NAME", "STATE", "CREATED", "STARTED", "EXIT CODE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", help="pod UUID or unique prefix")
    add_bool(parser, "--no-legend", False, "suppress the header line")
    add_format_argument(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    info = pod_info(lookup(pods_root(opts, "app list"), args.uuid))
    if args.format:
        print_json([app_json(a) for a in info.apps], pretty=args.format == "json-pretty")
        return 0
    rows = [
        (
            a.name,
            a.state,
            humanize_time(a.created_at) if a.created_at else "-",
            humanize_time(a.started_at) if a.started_at else "-",
            "-" if a.exit_code is None else str(a.exit_code),
        )
        for a in info.apps
    ]
    print_table(HEADERS, rows, no_legend=args.no_legend)
    return 0
