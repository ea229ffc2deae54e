"""``rkt image verify [IMAGE...]``: re-hash blobs and rendered trees (all images by default)."""

from __future__ import annotations

from rkt.cli.common import open_store
from rkt.cli.output import add_format_argument, print_json, print_table
from rkt.errors import NotFoundError
from rkt.settings import GlobalOptions
from rkt.stage0.images import resolve_image, verify_image

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images to verify (default all)")
    add_format_argument(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    with open_store(opts, "image verify") as store:
        if args.images:
            records = [resolve_image(store, text) for text in args.images]
            results = [verify_image(store, rec) for rec in records]
        else:
            results = []
            for rec in store.list_images():
                try:
                    results.append(verify_image(store, rec))
                except NotFoundError:
                    continue  # removed by another rkt since the listing
    if args.format:
        print_json(
            [{"id": r.image_id, "name": r.name, "ok": r.ok, "problem": r.problem} for r in results],
            pretty=args.format == "json-pretty",
        )
    else:
        print_table(
            ["ID", "NAME", "STATUS"],
            [[r.image_id[:19], r.name, "ok" if r.ok else f"FAILED: {r.problem}"] for r in results],
        )
    return 0 if all(r.ok for r in results) else 254
