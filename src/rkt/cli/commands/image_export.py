"""``rkt image export IMAGE OUT.aci``: write a stored image as an uncompressed ACI."""

from __future__ import annotations

from rkt.cli.common import open_store
from rkt.cli.quickparse import add_bool
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0.images import export_image, resolve_image

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="image ID, ID prefix or name")
    parser.add_argument("output", metavar="OUT.aci", help="file to write")
    add_bool(parser, "--overwrite", False, "overwrite the output file if it exists")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    with open_store(opts, "image export") as store:
        rec = resolve_image(store, args.image)
        export_image(store, rec, Path(args.output), overwrite=args.overwrite)
    return 0
