"""``rkt app rm UUID --app=NAME``: stop (if needed) and remove an app from a running mutable pod."""

from __future__ import annotations

from rkt.cli.commands.app_status import add_app_arguments, pod_for_app
from rkt.settings import GlobalOptions
from rkt.stage0.app import remove_app

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_app_arguments(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    remove_app(pod_for_app(args, opts, "app rm"), args.app)
    return 0
