"""``rkt app sandbox [pod flags]``: prepare an empty, mutable pod and run it (this process becomes
the stage1 run entrypoint, as ``rkt run``; run it under ``systemd-run`` or in the background).

Apps are then added with ``rkt app add`` and driven with ``rkt app start|stop|rm``; ``rkt stop``
ends the pod. The ``app`` commands are always available (rkt hid them behind
``RKT_EXPERIMENT_APP=true``; here they are a versioned part of the stage1 ABI, docs/cli.md).
"""

from __future__ import annotations

import sys

from rkt import abi
from rkt.cli.commands.run import prepare_from_args, run_options
from rkt.cli.globals import parse_globals
from rkt.cli.pod_request import check_output_file, check_text, parse_env, stage1_choice
from rkt.cli.run_args import ParsedRun, parse_run_args, reject_unsupported
from rkt.errors import UsageError
from rkt.stage0.headstart import HeadStart
from rkt.stage0.request import PodRequest
from rkt.stage0.run import launch

SANDBOX_FLAGS = {
    "--uuid-file-save",
    "--net",
    "--hostname",
    "--dns",
    "--dns-search",
    "--dns-opt",
    "--dns-domain",
    "--hosts-entry",
    "--port",
    "--pull-policy",
    "--stage1-url",
    "--stage1-path",
    "--stage1-name",
    "--stage1-hash",
    "--stage1-from-dir",
    "--user-annotation",
    "--user-label",
    "--no-overlay",
}
USAGE = f"""Usage: rkt app sandbox [flags]

Start an empty mutable pod; add apps with rkt app add.
Flags: --annotation {" ".join(sorted(SANDBOX_FLAGS))}
"""


def sandbox_request(parsed: ParsedRun) -> PodRequest:
    if parsed.apps:
        raise UsageError(f'app sandbox takes no images (got "{parsed.apps[0].image}")')
    unknown = set(parsed.shared_app) - {"--annotation"}
    if unknown:
        raise UsageError(f"app sandbox: {sorted(unknown)[0]} is an app flag (use rkt app add)")
    pod = parsed.pod
    check_output_file(parsed.last("--uuid-file-save"), "--uuid-file-save")
    check_text(parsed)
    policy = parsed.last("--pull-policy", "new") or "new"
    if policy not in ("new", "update", "never"):
        raise UsageError(f'--pull-policy: "{policy}" is not one of new, update, never')
    annotations = parse_env(parsed.shared_app.get("--annotation", []), "--annotation")
    return PodRequest(
        apps=(),
        mutable=True,
        pull_policy=policy,
        annotations=(*annotations, (abi.ANN_POD_MUTABLE, "true")),
        user_annotations=parse_env(pod.get("--user-annotation", []), "--user-annotation"),
        user_labels=parse_env(pod.get("--user-label", []), "--user-label"),
        stage1=stage1_choice(parsed),
    )


def run_raw(argv: list[str]) -> int:
    parsed = parse_run_args(argv, allowed_pod=SANDBOX_FLAGS)
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    reject_unsupported(parsed)
    opts = parse_globals(parsed.globals)
    options = run_options(parsed, opts)._replace(mutable=True)
    head = HeadStart(options)  # the sandbox's networks start before it is prepared
    request = sandbox_request(parsed)
    try:
        prepared = prepare_from_args(parsed, opts, "app sandbox", request, head=head)
    except BaseException:
        head.abort()  # (a failed prepare has undone them already)
        raise
    # an empty pod nobody asked to keep when its stage1 cannot run it (e.g. below v3): removed
    launch(prepared.pod, prepared.lock, options, head)
