"""``rkt run``: the pod's CNI networks started before stage0 prepares the pod (a head start).

The plugins' ADD is the longest step of a pod on ``--net=default`` (~30 ms here, the same for
any runtime that uses them). When this installation's own default stage1 will run the pod in
this very process (stage0/inprocess.py), nothing it needs is learnt from the images: so
``rkt run`` creates the pod right after reading its flags, before the store's modules are even
loaded, and hands the networks to that stage1's attacher at once
(``rkt.stage1.ns.network.head_start``). The attacher works from the pod's directory, which
moves on to ``prepare``, ``prepared`` and ``run`` meanwhile, and keeps the pod's lock (stage0
keeps the lock it took for the embryo until the stage1 runs). The run entrypoint, run
in-process, adopts it instead of starting the networks itself.

Nothing starts early unless the run is certain to be in-process with the ns flavor's run
entrypoint (the built-in default stage1 chosen, no ``RKT_STAGE1_EXEC=1``, no thread) and the
networks need nothing from the pod manifest (no ``--port``, no ``--pod-manifest``). Whatever was
started is undone (``abort``) before stage0 reports an error, and before it ``exec``s a stage1
after all. If stage0 and the attacher are both killed meanwhile, gc undoes the networks: through
the stage1's gc entrypoint, which stage0 calls for aborted pods too, or, in the moment before the
stage1 is laid out, through this installation's own (``undo_orphaned``).

Imports only the standard library and ``rkt``'s stage0 side; the stage1's network modules once
networks are started early (the run entrypoint imports them anyway).
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.errors import PodError
from rkt.paths import Path
from rkt.pod.pod import Pod, PodLock, abandon_pod, create_embryo, ensure_pods_root
from rkt.stage0.run import RunOptions
from rkt.stage0.stage1_image import DEFAULT_FLAVOR, NATIVE_DIR, builtin_flavor_chosen

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.stage0.request import PodRequest
    from rkt.stage1.ns.network import PendingNetwork

# The stage1's network journal (rkt.stage1.common.poddir.NET_JOURNAL): in a pod without a stage1
# it can only have been written by a head start.
EARLY_JOURNAL = "stage1/rootfs/rkt/private/net.json"
GC_TARGET = ("rkt.stage1.ns.gc", "main")  # the default flavor's gc entrypoint


class HeadStart:
    """The early start of one ``rkt run``'s networks, if it can have one."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.eligible = False
        self.pod: Pod | None = None
        self.network: PendingNetwork | None = None

    def decide(self, request: PodRequest, stage1_config: dict[str, str]) -> None:
        """Whether the networks can start early, from the validated request and the stage1
        configuration (``prepare_pod``'s)."""
        self.decide_from(static_eligible(self.options, request, stage1_config))

    def decide_from(self, eligible: bool) -> None:
        """``decide``, given what ``static_eligible`` said of this pod's request (rkt run's
        memo keeps that: stage0/runmemo.py)."""
        from rkt.stage0.inprocess import may_run_in_process

        self.eligible = eligible and may_run_in_process()

    def create_pod(self, data_dir: Path) -> tuple[Pod, PodLock]:
        """The pod (in ``prepare``, locked), its networks started if they can be."""
        pod, lock = create_embryo(ensure_pods_root(data_dir))
        self.pod = pod
        if self.eligible:
            self._start(pod)
        return pod, lock

    def abandon(self, pod: Pod, lock: PodLock) -> None:
        """The pod failed before ``prepare_pod`` took it over: undone, left to gc as garbage."""
        abandon_pod(pod, lock, self.abort)

    def _start(self, pod: Pod) -> None:
        from rkt.errors import RktError
        from rkt.stage1.common.args import parse_run
        from rkt.stage1.ns.network import head_start

        flags = self.options.stage1_flags(abi.INTERFACE_VERSION)
        try:
            self.network = head_start(
                pod.path,
                parse_run([*flags, pod.uuid]),
                str(NATIVE_DIR / "pod-init"),  # the built-in flavor's, as the pod will have
            )
        except (RktError, OSError):
            self.network = None  # the run entrypoint tries again, and reports what fails

    def fds(self) -> tuple[int, ...]:
        """The descriptors the early networks hold (the in-process run keeps them)."""
        return () if self.network is None else self.network.fds()

    def abort(self) -> None:
        """Undo the early networks, if any (errors are swallowed: the caller has its own)."""
        if self.network is None or self.pod is None:
            return
        from rkt.stage1.ns.network import abort_head_start

        self.network = None
        try:
            abort_head_start(self.pod.path)
        except Exception as exc:  # the caller's error is the one to report
            os.write(2, f"rkt: warning: undoing the pod's networks: {exc}\n".encode())


def static_eligible(
    options: RunOptions, request: PodRequest, stage1_config: dict[str, str]
) -> bool:
    """What the request and configuration say of a head start (the process, ``decide_from``)."""
    return (
        options.net not in ("host", "none")  # CNI mode, as RunArgs.net_mode decides it
        and not options.ports
        and request.pod_manifest is None
        and builtin_flavor_chosen(request.stage1, stage1_config) == DEFAULT_FLAVOR
    )


def undo_orphaned(pod: Pod) -> None:
    """gc of a pod whose networks were started early and that died before its stage1 was laid
    out (no stage1 to call): the built-in default flavor's gc, which wrote the journal."""
    from rkt.stage0.inprocess import call_builtin_forked
    from rkt.stage0.run import stage1_env

    argv = ["gc", pod.uuid]
    result = call_builtin_forked(argv, str(pod.path), stage1_env(), 60, target=GC_TARGET)
    if result is None:  # another thread runs: no fork
        raise PodError(f'pod "{pod.uuid}": cannot undo its networks from a threaded process')
    if result[0] != 0:
        tail = (result[1].strip().splitlines() or ["no output"])[-1]
        raise PodError(f'pod "{pod.uuid}": undoing its networks: gc exited {result[0]}: {tail}')
