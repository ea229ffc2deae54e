"""``rkt image cat-manifest IMAGE``: print an image's manifest."""

from __future__ import annotations

import sys

from rkt import jsonio
from rkt.cli.common import open_store
from rkt.cli.quickparse import add_bool
from rkt.settings import GlobalOptions
from rkt.stage0.images import resolve_image

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="image ID, ID prefix or name")
    add_bool(parser, "--pretty-print", True, "apply indent to the output (default true)")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    with open_store(opts, "image cat-manifest") as store:
        rec = resolve_image(store, args.image)
    doc = jsonio.loads(rec.manifest)
    pretty = args.pretty_print
    sys.stdout.write(jsonio.dumps(doc, indent=2 if pretty else None) + "\n")
    return 0
