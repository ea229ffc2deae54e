"""``rkt image list``: the images in the local store."""

from __future__ import annotations

from rkt.cli.common import open_store
from rkt.cli.output import (
    add_format_argument,
    format_size,
    format_time,
    iso_time,
    print_json,
    print_table,
)
from rkt.cli.quickparse import add_bool
from rkt.errors import UsageError
from rkt.settings import GlobalOptions
from rkt.store.records import ImageRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from typing import Any

FIELDS = {
    "id": "ID",
    "name": "NAME",
    "size": "SIZE",
    "importtime": "IMPORT TIME",
    "lastused": "LAST USED",
    "latest": "LATEST",
}
DEFAULT_FIELDS = "id,name,size,importtime,lastused"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fields",
        default=DEFAULT_FIELDS,
        help=f"comma-separated columns to show ({','.join(FIELDS)})",
    )
    parser.add_argument(
        "--sort",
        default="importtime",
        help=f"comma-separated columns to sort by ({','.join(FIELDS)})",
    )
    parser.add_argument("--order", choices=("asc", "desc"), default="asc", help="sort order")
    add_bool(parser, "--full", False, "show whole image IDs and sizes in bytes")
    add_bool(parser, "--no-legend", False, "suppress the header line")
    add_format_argument(parser)


def _columns(text: str, flag: str) -> list[str]:
    cols = [c.strip().lower() for c in text.split(",") if c.strip()]
    for col in cols:
        if col not in FIELDS:
            raise UsageError(f'{flag}: unknown field "{col}" (allowed: {", ".join(FIELDS)})')
    return cols


def _docker_name(rec: ImageRecord) -> str | None:
    """``registry/repository:tag`` for an image pulled from a Docker registry, else None."""
    if not rec.source.startswith("docker://"):
        return None
    return rec.source[len("docker://") :]


def _values(rec: ImageRecord, latest: set[str]) -> dict[str, Any]:
    version = rec.labels.get("version")
    return {
        "id": rec.id,
        "name": _docker_name(rec) or (f"{rec.name}:{version}" if version else rec.name),
        "size": rec.size + rec.tree_size,
        "importtime": rec.import_time,
        "lastused": rec.last_used,
        "latest": rec.id in latest,
    }


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    fields = _columns(args.fields, "--fields")
    sort = _columns(args.sort, "--sort")
    full = args.full
    with open_store(opts, "image list") as store:
        images = store.list_images()
    newest: dict[str, ImageRecord] = {}
    for rec in images:
        if rec.name not in newest or rec.import_time > newest[rec.name].import_time:
            newest[rec.name] = rec
    latest = {rec.id for rec in newest.values()}
    rows = [_values(rec, latest) for rec in images]
    rows.sort(key=lambda v: tuple(v[c] for c in sort), reverse=args.order == "desc")
    if args.format:
        by_id = {rec.id: rec for rec in images}
        print_json(
            [
                {
                    "id": row["id"],
                    "name": by_id[row["id"]].name,
                    "labels": by_id[row["id"]].labels,
                    "import_time": iso_time(row["importtime"]),
                    "last_used": iso_time(row["lastused"]),
                    "size": by_id[row["id"]].size,
                    "tree_size": by_id[row["id"]].tree_size,
                    "latest": row["latest"],
                    "source": by_id[row["id"]].source,
                }
                for row in rows
            ],
            pretty=args.format == "json-pretty",
        )
        return 0

    def cell(row: dict[str, Any], col: str) -> str:
        value = row[col]
        if col == "id":
            return str(value) if full else str(value)[:19]
        if col == "size":
            return str(value) if full else format_size(int(value))
        if col in ("importtime", "lastused"):
            return format_time(float(value))
        if col == "latest":
            return "true" if value else "false"
        return str(value)

    print_table(
        [FIELDS[c] for c in fields],
        [[cell(r, c) for c in fields] for r in rows],
        no_legend=args.no_legend,
    )
    return 0
