"""``rkt app start UUID --app=NAME``: start an app added to a running mutable pod."""

from __future__ import annotations

from rkt.cli.commands.app_status import add_app_arguments, pod_for_app
from rkt.settings import GlobalOptions
from rkt.stage0.app import start_app

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_app_arguments(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    start_app(pod_for_app(args, opts, "app start"), args.app)
    return 0
