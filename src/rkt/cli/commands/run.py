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
from rkt.errors import PodError, RktError, UsageError
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0.headstart import HeadStart
from rkt.stage0.privileges import require_root
from rkt.stage0.run import RunOptions, exec_stage1, start_run

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.pod.pod import Pod, PodLock
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
    memo_argv: list[str] | None = None,
) -> PreparedPod:
    """Shared by run, prepare and app sandbox: fetch images, lay out the pod, leave it prepared.
    ``head`` (``rkt run``): the pod is created, and its networks started, before the store's
    modules are loaded (stage0/headstart.py); the pod's lock stays held for the run.
    ``memo_argv`` (``rkt run``): the command line, whose pod is laid out from its memo when
    it has one, and memoised when it can be (stage0/runmemo.py)."""
    require_root(action)
    config = load_config(opts.system_config, opts.local_config, opts.user_config)
    request = request if request is not None else pod_request(parsed)
    stage1_config = {
        **config.stage1,
        **{k: v for k, v in config.paths.items() if k == "stage1-images"},
    }
    memo_key = memo = None
    if memo_argv is not None and request.pod_manifest is None:
        from rkt.stage0 import runmemo

        memo_key = runmemo.make_key(["run", *memo_argv], opts.dir, stage1_config)
        memo = None if memo_key is None else runmemo.lookup(opts.dir, memo_key)
    embryo = None
    if head is not None:
        head.decide(request, stage1_config)
        embryo = head.create_pod(opts.dir)
    if memo is not None:
        prepared = runmemo.replay(
            memo,
            opts.dir,
            embryo,
            on_abort=None if head is None else head.abort,
            keep_lock=head is not None,
        )
        if opts.debug:
            sys.stderr.write(f'rkt: pod "{prepared.pod.uuid}": laid out from the run memo\n')
    else:
        prepared = _prepare(parsed, opts, request, stage1_config, embryo, head, memo_key)
    save = parsed.last("--uuid-file-save")
    if save:
        try:
            Path(save).write_text(prepared.pod.uuid + "\n")
        except OSError as exc:
            raise PodError(
                f'pod "{prepared.pod.uuid}": --uuid-file-save "{save}": {exc.strerror}'
            ) from exc
    return prepared


def _prepare(
    parsed: ParsedRun,
    opts: GlobalOptions,
    request: PodRequest,
    stage1_config: dict[str, str],
    embryo: tuple[Pod, PodLock] | None,
    head: HeadStart | None,
    memo_key: str | None,
) -> PreparedPod:
    """The pod prepared from its images (``memo_key``: and memoised, when it can be)."""
    try:
        from rkt.cli.common import progress_bar, warn
        from rkt.stage0.fetch import Fetcher, FetchRequest
        from rkt.stage0.prepare import prepare_pod
        from rkt.store.store import TOUCH_INTERVAL, Store

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
    if memo_key is not None:
        from rkt.stage0 import runmemo
        from rkt.stage0.stage1_image import builtin_flavor_chosen, builtin_name

        flavor = builtin_flavor_chosen(request.stage1, stage1_config)
        if flavor is not None and runmemo.eligible(
            fetcher.fetched,
            len(fetcher.store_hits),
            len(request.apps),
            env_files=bool(parsed.pod.get("--set-env-file")),
        ):
            files = runmemo.name_files(store.names_dir, [*fetcher.store_hits, builtin_name(flavor)])
            last_used = prepared.layout.last_used if prepared.layout is not None else []
            if files is not None and last_used:
                due = min(last_used) + TOUCH_INTERVAL
                runmemo.record(opts.dir, memo_key, prepared, files, flavor, due)
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
        prepared = prepare_from_args(parsed, opts, "run", head=head, memo_argv=argv)
    except BaseException:
        head.abort()  # (a failed prepare has undone them already)
        raise
    try:
        _lock, stage1_argv, env = start_run(prepared.pod, options, prepared.lock)
    except BaseException as exc:
        head.abort()
        if isinstance(exc, RktError):  # (a stage1 too old for the flags): nobody asked to keep it
            from rkt.stage0.pods import remove_pod

            try:
                remove_pod(prepared.pod)
            except (RktError, OSError):
                pass  # the error that matters is the one raised; gc collects the pod
        raise
    sys.stdout.flush()
    sys.stderr.flush()
    exec_stage1(prepared.pod, stage1_argv, env, head)
