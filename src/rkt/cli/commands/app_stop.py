"""``rkt app stop UUID --app=NAME``: stop an app of a running mutable pod (SIGTERM, SIGKILL after
10 s); returns once it has exited. The pod keeps running."""

from __future__ import annotations

from rkt.cli.commands.app_status import add_app_arguments, pod_for_app
from rkt.settings import GlobalOptions
from rkt.stage0.app import stop_app

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_app_arguments(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    stop_app(pod_for_app(args, opts, "app stop"), args.app)
    return 0
