"""``rkt image render IMAGE DIR``: the image with all its dependencies, flattened into DIR."""

from __future__ import annotations

from rkt.cli.common import open_store
from rkt.cli.quickparse import add_bool
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0.images import prepare_target, resolve_image, store_resolver
from rkt.store.render import render_to

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="image ID, ID prefix or name")
    parser.add_argument("target", metavar="DIR", help="directory to create")
    add_bool(parser, "--rootfs-only", False, "write only the root filesystem, not the manifest")
    add_bool(parser, "--overwrite", False, "replace DIR if it exists")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    target = Path(args.target)
    with open_store(opts, "image render") as store:
        rec = resolve_image(store, args.image)
        prepare_target(target, store, overwrite=args.overwrite)
        render_to(
            store,
            rec.id,
            target,
            rootfs_only=args.rootfs_only,
            resolve_dependency=store_resolver(store),
        )
    return 0
