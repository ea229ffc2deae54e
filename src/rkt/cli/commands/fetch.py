"""``rkt fetch IMAGE...``: fetch images into the store and print their IDs on stdout."""

from __future__ import annotations

from rkt.cli.common import open_store, warn
from rkt.cli.progress import make_progress
from rkt.cli.quickparse import add_bool
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0.fetch import PULL_POLICIES, Fetcher, FetchRequest

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image file, URL (https://, http://, file://), name[:version] or ID",
    )
    parser.add_argument(
        "--signature",
        action="append",
        default=[],
        metavar="FILE",
        help="local signature file for the image (repeat in image order)",
    )
    add_bool(parser, "--full", False, "print the full image ID")
    parser.add_argument(
        "--pull-policy",
        choices=PULL_POLICIES,
        default="update",
        help="new: only if not in the store; update: check the remote (default); never: store only",
    )


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    full = args.full
    with open_store(opts, "fetch") as store:
        fetcher = Fetcher(opts, store, progress=make_progress, warn=warn)
        for index, image in enumerate(args.images):
            sig = Path(args.signature[index]) if index < len(args.signature) else None
            image_id = fetcher.fetch(FetchRequest(image, sig, args.pull_policy))
            print(image_id if full else image_id[:71])
    return 0
