"""``rkt run IMAGE... [--- IMAGE...]``: prepare a pod and exec its stage1 (the pod is this process).

The positional grammar is rkt's (see rkt.cli.run_args); ``rkt run --help`` lists the flags.
"""

from __future__ import annotations

import os
import sys
import time

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
from rkt.errors import PodError, UsageError
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0.headstart import HeadStart
from rkt.stage0.privileges import require_root
from rkt.stage0.run import RunOptions, launch

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.stage0.fetch import Fetcher
    from rkt.stage0.layout import PreparedPod
    from rkt.stage0.request import PodRequest
    from rkt.store.store import Store

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
        prepared = _memoisable(prepared, parsed, request, stage1_config, fetcher, store, head)
    save = parsed.last("--uuid-file-save")
    if save:
        try:
            Path(save).write_text(prepared.pod.uuid + "\n")
        except OSError as exc:
            raise PodError(
                f'pod "{prepared.pod.uuid}": --uuid-file-save "{save}": {exc.strerror}'
            ) from exc
    return prepared


def _memoisable(
    prepared: PreparedPod,
    parsed: ParsedRun,
    request: PodRequest,
    stage1_config: dict[str, str],
    fetcher: Fetcher,
    store: Store,
    head: HeadStart | None,
) -> PreparedPod:
    """``prepared``, with what its memo would depend on when it may be memoised (only images
    named and found in the store, the built-in stage1, no environment file: stage0/runmemo.py)."""
    from rkt.stage0 import runmemo
    from rkt.stage0.headstart import static_eligible
    from rkt.stage0.layout import Memoisable
    from rkt.stage0.stage1_image import builtin_flavor_chosen, builtin_name
    from rkt.store.store import TOUCH_INTERVAL

    flavor = builtin_flavor_chosen(request.stage1, stage1_config)
    last_used = prepared.layout.last_used if prepared.layout is not None else []
    if (
        flavor is None
        or not last_used
        or not runmemo.eligible(
            fetcher.fetched,
            len(fetcher.store_hits),
            len(request.apps),
            env_files=bool(parsed.pod.get("--set-env-file")),
        )
    ):
        return prepared
    files = runmemo.name_files(store.names_dir, [*fetcher.store_hits, builtin_name(flavor)])
    now = time.time()
    if files is None or not all(0 <= now - used < TOUCH_INTERVAL for used in last_used):
        return prepared  # (this run recorded a use: Store.touch)
    early = head is not None and static_eligible(head.options, request, stage1_config)
    return prepared._replace(
        memoisable=Memoisable(
            tuple(files),
            flavor,
            (max(last_used), min(last_used) + TOUCH_INTERVAL),
            early,
            # an existing regular file of that name would be the image (fetch.reference's
            # test, as it makes it: ".." after a symlink is the kernel's to resolve)
            tuple(os.path.join(os.getcwd(), app.image.strip()) for app in request.apps),
        )
    )


def _record_memo(
    argv: list[str],
    parsed: ParsedRun,
    opts: GlobalOptions,
    options: RunOptions,
    prepared: PreparedPod,
) -> None:
    """Memoise the pod ``rkt run ARGV`` just prepared (stage0/runmemo.py)."""
    from rkt.stage0 import runmemo

    full = ["run", *argv]
    key = runmemo.make_key(full)
    if key is None or runmemo.guess_dir(argv) != str(opts.dir):
        return  # (no memo would be found where the next run looks)
    if not runmemo.seen_before(opts.dir, key):
        return  # memoised the second time
    run = {
        "dir": str(opts.dir),
        "options": list(options),
        "uuid_file_save": parsed.last("--uuid-file-save"),
    }
    bases = (opts.system_config, opts.local_config, opts.user_config)
    config = runmemo.config_dependencies([None if b is None else str(b) for b in bases])
    runmemo.record(key, full, prepared, run, config)


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
        memo = os.environ.get("RKT_RUN_MEMO") != "0"  # (stage0/runmemo.py)
        prepared = prepare_from_args(parsed, opts, "run", head=head, memo=memo)
    except BaseException:
        head.abort()  # (a failed prepare has undone them already)
        raise
    if prepared.memoisable is not None:
        _record_memo(argv, parsed, opts, options, prepared)
    launch(prepared.pod, prepared.lock, options, head)
