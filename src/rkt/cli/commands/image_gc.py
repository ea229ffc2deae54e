"""``rkt image gc``: remove images unused for the grace period, orphan trees and temp files."""

from __future__ import annotations

import sys

from rkt.cli.common import open_store
from rkt.cli.flags import parse_age
from rkt.settings import GlobalOptions
from rkt.stage0.images import gc_images, images_in_use

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grace-period",
        default="24h",
        metavar="DUR",
        help="remove images not used for this long (default 24h)",
    )


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    grace = parse_age(args.grace_period, "--grace-period")
    with open_store(opts, "image gc") as store:
        removed, orphans = gc_images(store, grace, images_in_use(opts))
    for image_id in removed:
        sys.stderr.write(f'successfully removed image "{image_id}"\n')
    for name in orphans:
        sys.stderr.write(f'removed orphan "{name}"\n')
    return 0
