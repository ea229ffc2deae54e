"""``rkt image rm IMAGE...``: remove images (by ID, ID prefix or name) from the store."""

from __future__ import annotations

import sys

from rkt.cli.common import open_store
from rkt.errors import RktError
from rkt.settings import GlobalOptions
from rkt.stage0.images import images_for_removal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image ID, ID prefix or name")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    failed = 0
    with open_store(opts, "image rm") as store:
        for text in args.images:
            try:
                for rec in images_for_removal(store, text):
                    store.remove_image(rec.id)
                    sys.stderr.write(f'successfully removed image "{rec.id}"\n')
            except RktError as exc:
                sys.stderr.write(f"rkt: {exc.message}\n")
                failed += 1
    return 254 if failed else 0
