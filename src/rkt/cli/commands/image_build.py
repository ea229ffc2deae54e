"""``rkt image build DIR OUT.aci``: build an ACI from a directory with ``manifest`` and ``rootfs/``.

The output is deterministic (sorted members, numeric owners, no user or group names); with
``--mtime`` (default ``$SOURCE_DATE_EPOCH`` when set) every member gets that mtime, so the same
tree gives the same image ID anywhere. Prints the image ID.
"""

from __future__ import annotations

import os

from rkt.errors import UsageError
from rkt.formats.compression import COMPRESSIONS
from rkt.paths import Path
from rkt.settings import GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # (not dest "dir": that is the global --dir's, which would overwrite it)
    parser.add_argument("source", metavar="DIR", help="directory with a manifest file and rootfs/")
    parser.add_argument("out", metavar="OUT.aci", help="the image file to write")
    parser.add_argument(
        "--compression", choices=COMPRESSIONS, default="none", help="of the tar (default none)"
    )
    parser.add_argument(
        "--mtime",
        metavar="EPOCH",
        default=None,
        help="set every member's mtime to EPOCH (default: $SOURCE_DATE_EPOCH if set)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.aci if it exists")


def _parse_epoch(value: str, origin: str) -> int:
    try:
        epoch = int(value.strip())
    except ValueError:
        epoch = -1
    if not 0 <= epoch <= MAX_EPOCH:
        raise UsageError(f'{origin}: invalid epoch "{value}" (want seconds since 1970)')
    return epoch


MAX_EPOCH = (2**63 - 1) // 1_000_000_000  # what a tar member's time may hold for rkt (~2262)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from rkt.formats.aci import build_aci

    mtime: int | None = None
    if args.mtime is not None:
        mtime = _parse_epoch(args.mtime, "--mtime")
    elif os.environ.get("SOURCE_DATE_EPOCH"):
        mtime = _parse_epoch(os.environ["SOURCE_DATE_EPOCH"], "SOURCE_DATE_EPOCH")
    image_id = build_aci(
        Path(args.source),
        Path(args.out),
        compression=args.compression,
        mtime=mtime,
        overwrite=args.overwrite,
    )
    print(image_id)
    return 0
