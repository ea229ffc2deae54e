"""``rkt app add UUID IMAGE [app flags] [--mnt-volume=...] [-- ARGS...]``: add an app to a running
mutable pod (``rkt app sandbox``). The app is prepared, not started: ``rkt app start`` does that.

App flags are those of ``rkt run`` (docs/cli.md); ``--mnt-volume=name=N,kind=host|empty,
source=PATH,target=PATH,readOnly=BOOL`` gives the app a volume of its own and mounts it.
"""

from __future__ import annotations

import sys

from rkt.cli.commands.status import lookup, pods_root
from rkt.cli.common import progress_bar, warn
from rkt.cli.flags import parse_bool
from rkt.cli.globals import parse_globals
from rkt.cli.pod_request import _app_request
from rkt.cli.run_args import APP_FLAGS, parse_run_args, reject_unsupported
from rkt.errors import UsageError
from rkt.paths import Path
from rkt.stage0.app import AppVolume, add_app
from rkt.stage0.fetch import Fetcher, FetchRequest
from rkt.stage0.request import PodRequest
from rkt.store.store import Store

USAGE = f"""Usage: rkt app add UUID IMAGE [app flags] [-- ARGS...]

App flags: --mnt-volume {" ".join(sorted(APP_FLAGS))}
"""


def split_mnt_volumes(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take ``--mnt-volume`` (an ``app add`` flag only) out of the arguments before ``--``."""
    rest: list[str] = []
    values: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest += argv[i:]
            break
        if token == "--mnt-volume":
            if i + 1 >= len(argv):
                raise UsageError("flag needs an argument: --mnt-volume")
            values.append(argv[i + 1])
            i += 2
            continue
        if token.startswith("--mnt-volume="):
            values.append(token.partition("=")[2])
        else:
            rest.append(token)
        i += 1
    return rest, values


def parse_mnt_volume(text: str) -> AppVolume:
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise UsageError(f'--mnt-volume: "{part}" is not KEY=VALUE')
        fields[key.strip()] = value
    name, kind, target = fields.pop("name", ""), fields.pop("kind", ""), fields.pop("target", "")
    source = fields.pop("source", None)
    read_only = parse_bool(fields.pop("readOnly", "false"), "--mnt-volume readOnly")
    if fields:
        raise UsageError(f'--mnt-volume "{text}": unknown field(s) {", ".join(fields)}')
    if not name or kind not in ("host", "empty") or not target.startswith("/"):
        raise UsageError(f'--mnt-volume "{text}": needs name=, kind=host|empty, target=/PATH')
    if kind == "host" and not (source or "").startswith("/"):
        raise UsageError(f'--mnt-volume "{text}": kind=host needs an absolute source=')
    return AppVolume(name, kind, target, source, read_only)


def run_raw(argv: list[str]) -> int:
    argv, mnt = split_mnt_volumes(argv)
    parsed = parse_run_args(argv, allowed_pod={"--pull-policy"})
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    if len(parsed.apps) != 2 or parsed.apps[0].flags or parsed.apps[0].has_args:
        raise UsageError("app add needs a pod UUID, then one image and its flags")
    reject_unsupported(parsed)
    uuid, app = parsed.apps[0].image, parsed.apps[1]
    volumes = tuple(parse_mnt_volume(v) for v in mnt)
    opts = parse_globals(parsed.globals)
    pod = lookup(pods_root(opts, "app add"), uuid)
    policy = parsed.last("--pull-policy", "new") or "new"
    request = PodRequest(apps=(_app_request(app, parsed.shared_app),), pull_policy=policy)
    with Store(opts.dir) as store:
        fetcher = Fetcher(opts, store, progress=progress_bar, warn=warn)

        def fetch(ref: str, signature: Path | None) -> str:
            return fetcher.fetch(FetchRequest(ref, signature, policy))

        add_app(
            pod,
            store,
            request,
            volumes,
            fetch=fetch,
            resolve_dependency=fetcher.resolve_dependency,
        )
    return 0
