"""``rkt run IMAGE... [--- IMAGE...]``: prepare a pod and exec its stage1 (the pod is this process).

The positional grammar is rkt's (see rkt.cli.run_args); ``rkt run --help`` lists the flags.
"""

from __future__ import annotations

import sys

from rkt.cli.globals import parse_globals
from rkt.cli.net_flags import (  # noqa: F401  (re-exported)
    DEFAULT_NET,
    NETWORKS,
    hostname_option,
    network_options,
)
from rkt.cli.pod_request import pod_request
from rkt.cli.run_args import (
    APP_FLAGS,
    POD_FLAGS,
    RUN_TIME_FLAGS,
    ParsedRun,
    parse_run_args,
    reject_unsupported,
)
from rkt.config import load_config
from rkt.errors import UsageError
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0.headstart import HeadStart
from rkt.stage0.privileges import require_root
from rkt.stage0.run import RunOptions, launch, save_uuid

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.stage0.layout import PreparedPod
    from rkt.stage0.request import PodRequest

USAGE = """Usage: rkt {command} [pod flags] IMAGE [app flags] [-- ARGS... ---] [IMAGE ...]

Pod flags (before the first image): {pod}
App flags (after an image; before the first image they apply to every app): {app}
Global flags (rkt --help) may appear anywhere a flag may.{note}
"""


def usage(command: str = "run") -> str:
    pod = sorted(POD_FLAGS)
    note = ""
    if command == "prepare":
        pod = [f for f in pod if f not in RUN_TIME_FLAGS]
        note = "\nHow the pod runs (--net, --dns, --hostname, ...): rkt run-prepared's flags."
    return USAGE.format(
        command=command, pod=" ".join(pod), app=" ".join(sorted(APP_FLAGS)), note=note
    )


def prepare_from_args(
    parsed: ParsedRun,
    opts: GlobalOptions,
    action: str,
    request: PodRequest | None = None,
    *,
    head: HeadStart | None = None,
    memo: bool = False,
) -> PreparedPod:
    """Shared by run, prepare and app sandbox: fetch images, lay out the pod, leave it prepared.
    ``head`` (``rkt run``): the pod is created, and its networks started, before the store's
    modules are loaded (stage0/headstart.py); the pod's lock stays held for the run. ``memo``
    (``rkt run``): say in ``PreparedPod.memoisable`` whether the pod may be memoised."""
    require_root(action)
    config = load_config(opts.system_config, opts.local_config, opts.user_config)
    request = request if request is not None else pod_request(parsed)
    stage1_config = {
        **config.stage1,
        **{k: v for k, v in config.paths.items() if k == "stage1-images"},
    }
    embryo = None
    if head is not None:
        head.decide(request, stage1_config)
        embryo = head.create_pod(opts.dir)
    try:
        from rkt.cli.common import progress_bar, warn
        from rkt.stage0.fetch import Fetcher, FetchRequest
        from rkt.stage0.prepare import prepare_pod
        from rkt.store.store import Store

        store = Store(opts.dir)
    except BaseException:
        if embryo is not None and head is not None:
            head.abandon(*embryo)
        raise
    with store:
        fetcher = Fetcher(opts, store, progress=progress_bar, warn=warn)

        def fetch(ref: str, signature: Path | None) -> str:
            return fetcher.fetch(FetchRequest(ref, signature, request.pull_policy))

        prepared = prepare_pod(
            opts.dir,
            store,
            request,
            fetch=fetch,
            resolve_dependency=fetcher.resolve_dependency,
            stage1_config=stage1_config,
            embryo=embryo,
            on_abort=None if head is None else head.abort,
            keep_lock=head is not None,
        )
    if memo:
        from rkt.stage0.runmemo import memoisable

        env_files = bool(parsed.pod.get("--set-env-file"))
        prepared = memoisable(prepared, request, stage1_config, fetcher, store, head, env_files)
    save = parsed.last("--uuid-file-save")
    if save:
        save_uuid(prepared.pod, save)
    return prepared


def run_options(parsed: ParsedRun, opts: GlobalOptions) -> RunOptions:
    network = network_options(
        opts,
        net=parsed.last("--net", DEFAULT_NET) or "default",
        dns=parsed.pod.get("--dns", []),
        dns_search=parsed.pod.get("--dns-search", []),
        dns_opt=parsed.pod.get("--dns-opt", []),
        dns_domain=parsed.last("--dns-domain"),
        hosts_entries=parsed.pod.get("--hosts-entry", []),
        ports=parsed.pod.get("--port", []),
    )
    return RunOptions(
        hostname=hostname_option(parsed.last("--hostname")),
        interactive=parsed.flag_bool("--interactive"),
        private_users=parsed.flag_bool("--private-users"),
        debug=opts.debug,
        insecure=tuple(
            n for n in opts.insecure.names() if n in ("capabilities", "paths", "seccomp")
        ),
        **network,  # type: ignore[arg-type]
    )


def run_raw(argv: list[str]) -> int:
    parsed = parse_run_args(argv)
    if parsed.help:
        sys.stdout.write(usage())
        return 0
    reject_unsupported(parsed)
    opts = parse_globals(parsed.globals)
    options = run_options(parsed, opts)
    if options.interactive and len(parsed.apps) > 1:
        raise UsageError("--interactive works with exactly one app")
    head = HeadStart(options)  # the pod's networks start before it is prepared
    try:
        from rkt.stage0.runmemo import enabled  # (loaded already: rkt.cli.main looked for a memo)

        prepared = prepare_from_args(parsed, opts, "run", head=head, memo=enabled())
    except BaseException:
        head.abort()  # (a failed prepare has undone them already)
        raise
    if prepared.memoisable is not None:
        from rkt.stage0.runmemo import record_run

        record_run(argv, opts, options, prepared, parsed.last("--uuid-file-save"))
    launch(prepared.pod, prepared.lock, options, head)
