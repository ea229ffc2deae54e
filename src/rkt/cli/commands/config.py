"""``rkt config``: print the merged stage0 configuration as JSON."""

from __future__ import annotations

from rkt.cli.output import print_json
from rkt.cli.quickparse import add_bool
from rkt.config import load_config
from rkt.settings import GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bool(parser, "--pretty-print", True, "indent the output (--pretty-print=false: one line)")


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    config = load_config(opts.system_config, opts.local_config, opts.user_config)
    print_json(config.to_json(), pretty=args.pretty_print)
    return 0
