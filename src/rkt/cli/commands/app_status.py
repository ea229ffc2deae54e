"""``rkt app status UUID --app=NAME [--format=json|json-pretty]``: one app of a pod.

Plain output is rkt's ``key=value`` lines; JSON is rkt's lib.App (``name``, ``state``,
``created_at``, ``started_at``, ``finished_at`` in ns, ``exit_code``, ``image_id``). Also the
arguments the other ``app`` commands share.
"""

from __future__ import annotations

from rkt.cli.commands.status import app_json, lookup, pods_root
from rkt.cli.output import add_format_argument, format_time, print_json
from rkt.errors import PodError
from rkt.pod.pod import Pod
from rkt.settings import GlobalOptions
from rkt.stage0.pods import AppInfo, pod_info

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", help="pod UUID or unique prefix")
    parser.add_argument("--app", required=True, help="the app's name")


def pod_for_app(args: argparse.Namespace, opts: GlobalOptions, action: str) -> Pod:
    return lookup(pods_root(opts, action), args.uuid)


def find_app(pod: Pod, name: str) -> AppInfo:
    for app in pod_info(pod).apps:
        if app.name == name:
            return app
    raise PodError(f'pod "{pod.uuid}": has no app "{name}"')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_app_arguments(parser)
    add_format_argument(parser)


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    app = find_app(pod_for_app(args, opts, "app status"), args.app)
    if args.format:
        print_json(app_json(app), pretty=args.format == "json-pretty")
        return 0
    lines = [f"name={app.name}", f"state={app.state}", f"image_id={app.image_id}"]
    for key, ts in (
        ("created", app.created_at),
        ("started", app.started_at),
        ("finished", app.finished_at),
    ):
        if ts is not None:
            lines.append(f"{key}={format_time(ts)}")
    if app.exit_code is not None:
        lines.append(f"exit_code={app.exit_code}")
    print("\n".join(lines))
    return 0
