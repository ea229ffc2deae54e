"""``rkt image rm IMAGE...``: remove images (by ID, ID prefix or name) from the store.

An image a prepared or running pod uses, directly or as an appc dependency its tree was
rendered from, is refused (one line naming the pod, exit 254), the others are removed: such a
pod's app roots are overlays on that tree, and removing the image removes the tree from under
the running apps (rkt removed it). Exited pods do not hold their images (docs/cli.md)."""

from __future__ import annotations

import sys

from rkt.cli.common import open_store
from rkt.errors import ImageError, RktError
from rkt.settings import GlobalOptions
from rkt.stage0.images import images_for_removal, pods_holding_images

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image ID, ID prefix or name")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    failed = 0
    with open_store(opts, "image rm") as store:
        held = pods_holding_images(opts.dir / "pods")
        for text in args.images:
            try:
                for rec in images_for_removal(store, text):
                    trees = store.trees_built_on(rec.id)
                    pods = held.get(rec.id) or next((held[t] for t in trees if t in held), None)
                    if pods:
                        uuid, state = pods[0]
                        more = f" and {len(pods) - 1} more" if len(pods) > 1 else ""
                        raise ImageError(
                            f'image "{rec.id[:19]}": used by {state} pod "{uuid}"{more}; '
                            "stop and remove its pods first"
                        )
                    store.remove_image(rec.id)
                    sys.stderr.write(f'successfully removed image "{rec.id}"\n')
            except RktError as exc:
                sys.stderr.write(f"rkt: {exc.message}\n")
                failed += 1
    return 254 if failed else 0
