"""``rkt cat-manifest [--pretty-print=true] [--uuid-file=F] UUID``: print a pod's PodManifest."""

from __future__ import annotations

import json
import sys

from rkt.cli.commands.status import add_uuid_file, lookup, pods_root, uuid_args
from rkt.cli.quickparse import add_bool
from rkt.errors import PodError
from rkt.settings import GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", nargs="?", help="pod UUID or unique prefix")
    add_bool(parser, "--pretty-print", True, "indent the manifest (--pretty-print=false: one line)")
    add_uuid_file(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    (uuid,) = uuid_args([args.uuid] if args.uuid else [], args.uuid_file, single=True)
    pod = lookup(pods_root(opts, "cat-manifest"), uuid)
    raw = pod.read_manifest()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise PodError(f'pod "{pod.uuid}": its pod manifest is not valid JSON') from exc
    # rkt: json.MarshalIndent(manifest, "", "\t")
    text = json.dumps(doc, indent="\t") if args.pretty_print else json.dumps(doc)
    sys.stdout.write(text + "\n")
    return 0
