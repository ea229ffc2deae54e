"""The pod's networking in the ns flavor: set up while the pod starts, torn down by gc.

``--net=host`` keeps the caller's namespace; ``--net=none`` gets a fresh one with ``lo`` only
(``run.namespace_flags``); anything else is CNI (``rkt.net``): the run process creates the pod's
namespace pinned at ``/run/netns/rkt-<uuid>`` (``pod-init --pin-netns``) and forks the network
attacher, which ADDs every selected network from the host side (journalled in
``stage1/rootfs/rkt/private/net.json`` before each step), one network after the other, then
writes ``net-info.json`` and signals the pod's network barrier. Meanwhile the run process,
still in the host's namespace, starts the pod: pod-init joins the namespace, brings ``lo`` up
and makes the pod's other namespaces and its init inside it; the apps wait on the barrier
(``PendingNetwork``). A failed ADD is undone at once, by the attacher (DEL of
everything attempted, the namespace removed); gc undoes a pod that died, however it died, from
the journal alone. ``rkt run`` with this flavor in-process starts all that earlier still, from
stage0, before the pod is prepared (``head_start``, stage0/headstart.py); the run entrypoint
then adopts the attacher.

resolv.conf and hosts: ``rkt.stage1.ns.namefiles`` (the attacher writes them once the
networks are up).

Imports only the standard library, ``rkt.errors``, ``rkt.host``, ``rkt.net``, ``rkt.stage1``.
"""

from __future__ import annotations

import os

from rkt import jsonio
from rkt.errors import EXIT_ERROR, NetworkError, RktError
from rkt.host.netns import NETNS_DIR, remove_netns
from rkt.host.signals import signal
from rkt.paths import Path
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.entry import describe_error
from rkt.stage1.common.poddir import NET_JOURNAL, PRIVATE_DIR, PodDir
from rkt.stage1.ns.namefiles import (
    dns_options,
    replace_file,
    save_name_files,
    write_name_file_texts,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from rkt.net import cni, config
    from rkt.net.state import Entry, NetJournal

# rkt.net.cni, rkt.net.config and rkt.net.state are imported only where a pod joins CNI
# networks: --net=none and --net=host pods start without them.

NET_INFO = "net-info.json"
NET_ERROR = f"{PRIVATE_DIR}/net-error"  # the network attacher's failure, one line


def netns_path(uuid: str) -> Path:
    return NETNS_DIR / f"rkt-{uuid}"


def pin_netns(path: Path, helper: str) -> None:
    """A new network namespace pinned at ``path``, by ``helper --pin-netns`` (pod-init.c):
    this process stays where it is and loads no ctypes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        try:
            pid = os.posix_spawn(
                helper,
                ["pod-init", "--pin-netns", str(path)],
                {},
                file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 2)],
            )
        finally:
            os.close(write_end)
        message = b""
        while chunk := os.read(read_end, 4096):
            message += chunk
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        text = message.decode(errors="replace").strip()
        raise NetworkError(text or f"cannot create the network namespace {path}")


class PendingNetwork:
    """The pod's networks while the network attacher, a child of the run process, ADDs them.

    ``start`` creates the pod's namespace and forks the attacher (``_attach``), which stays in
    the host's network namespace and ADDs every selected network there, one after the other
    (each chain in order: CNI allows no parallel operations on one container), journalling each
    step; then it writes ``net-info.json`` and the pod's generated resolv.conf/hosts and writes
    "1" on the barrier pipe. It works relative to the pod's directory (its working directory),
    which may be renamed meanwhile. If anything fails it undoes everything (DEL of every network
    attempted, the namespace removed), leaves the error in ``NET_ERROR`` and exits without
    writing: the barrier then reads end of file. It stays until this process has taken the
    networks over (``_release``: it holds a descriptor of the pod's namespace); if this process
    ends or aborts before that, it undoes the networks itself. ``start`` returns at once, so the
    apps are resolved, the cgroups made and the plans written while the plugins run. This
    process stays in the host's namespace: pod-init joins the pod's through the descriptor
    (``netns_for_init``, or ``settle`` once the networks are up). No Python process loads
    ctypes for any of it: the namespace is created and pinned by ``pod-init --pin-netns``.
    With ``rkt run`` and this flavor in-process, stage0 has
    usually forked the attacher already (``head_start``, before the pod was even prepared):
    ``start`` adopts it.

    Then one of: ``barrier`` hands the pipe's read end on (pod-init and app-exec wait on it:
    each app before its resolv.conf/hosts binds, the init before the pod is ready), ``settle``
    waits here and raises the attacher's error, and ``abort`` (a caller that failed meanwhile)
    waits and undoes whatever was attached, from the host's network namespace.
    """

    def __init__(self, pod: PodDir) -> None:
        self.pod = pod
        self.journal: NetJournal | None = None
        self._attacher = 0  # its pid while it runs
        self._barrier = -1  # the barrier's read end
        self._netns = -1  # the pod's, until this process enters it (it outlives a failed ADD)
        self._hold = -1  # keeps the attacher until this process has the networks (``_release``)

    @classmethod
    def start(cls, pod: PodDir, args: RunArgs) -> PendingNetwork:
        """Start attaching the pod's networks (CNI mode only) and save which resolv.conf/hosts
        each app binds where (every mode). A network stage0 started early for this pod
        (``head_start``) is adopted instead of started again."""
        net = _adopt_head_start(pod, args)
        if net is not None:
            try:
                save_name_files(pod, args, cni=True)
            except BaseException:
                net.abort()
                raise
        else:
            attachments = _cni_attachments(pod, args)
            save_name_files(pod, args, cni=attachments is not None)
            if attachments is None:
                return cls(pod)
            from rkt.stage1.ns.native import INIT, program

            net = cls._attach(pod, args, attachments, program(pod.path, INIT))
        # This process holds the pod's namespace (the descriptor: a failed ADD may unpin it,
        # and the pod then learns the attacher's error at the barrier).
        net._release()
        return net

    @classmethod
    def _attach(
        cls,
        pod: PodDir,
        args: RunArgs,
        attachments: list[tuple[config.Attachment, dict[str, Any]]],
        pin_helper: str,
    ) -> PendingNetwork:
        """Journal, create the pod's namespace (``pin_helper``: a pod-init), fork the
        attacher; this process stays in the host's namespace."""
        from rkt.net.state import NetJournal

        net = cls(pod)
        path = netns_path(pod.uuid)
        net.journal = journal = NetJournal(pod.uuid, str(path))
        journal_file = pod.file(NET_JOURNAL)
        journal_file.parent.mkdir(parents=True, exist_ok=True)
        journal.save(journal_file)
        try:
            pin_netns(path, pin_helper)
            net._netns = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            read_end, write_end = os.pipe()  # both close-on-exec
            hold_read, net._hold = os.pipe()
            # The attacher works in the pod's directory, opened here: stage0 may rename it
            # (prepare -> prepared -> run) before the child runs at all.
            pod_dir = os.open(pod.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            parent = os.getpid()
            try:
                pid = os.fork()
                if pid == 0:
                    os.close(read_end)
                    os.close(net._hold)
                    _attach(parent, pod_dir, pod, args, journal, attachments, write_end, hold_read)
            finally:
                os.close(pod_dir)
            os.sched_yield()  # the attacher first: its plugins are the longest path
            os.close(hold_read)
            net._attacher = pid
            net._barrier = read_end
            os.close(write_end)
        except BaseException:
            net.abort()
            raise
        return net

    def netns_for_init(self) -> int | None:
        """The pod's namespace for pod-init to join (its "netns" step): the descriptor, now
        inheritable; None without CNI networks."""
        if self._netns < 0:
            return None
        os.set_inheritable(self._netns, True)
        return self._netns

    def fds(self) -> tuple[int, ...]:
        """The descriptors this object holds (stage0 keeps them across the in-process run)."""
        return tuple(fd for fd in (self._barrier, self._netns, self._hold) if fd >= 0)

    def barrier(self) -> tuple[int, str] | None:
        """The barrier's read end (inheritable now) and the attacher's error file, for the pod
        plan; None without CNI networks. The attacher is left to the programs this process
        execs (run-waiter reaps it)."""
        if self._barrier < 0:
            return None
        os.set_inheritable(self._barrier, True)
        return self._barrier, str(self.pod.file(NET_ERROR))

    def settle(self) -> int | None:
        """Wait until the networks are up, raise the attacher's error if they are not; then the
        pod's namespace for pod-init to join (``netns_for_init``; this process stays in the
        host's). For ``--private-users`` pods, whose resolv.conf/hosts must exist before
        pod-init runs."""
        self._wait_up()
        return self.netns_for_init()

    def abort(self) -> None:
        """Undo whatever was attached; errors are swallowed (the caller has its own)."""
        if self.journal is None:
            return
        journal: NetJournal | None = self.journal
        journal_file = self.pod.file(NET_JOURNAL)
        self._close_hold()  # not ours: an attacher done with its ADDs undoes them itself
        if self._attacher:
            self._wait()  # an attacher that undid its own work left no journal
            from rkt.net.state import NetJournal

            try:
                journal = NetJournal.load(journal_file)  # with the results it recorded
            except NetworkError:
                journal = self.journal
        if journal is not None:  # (this process never left the host's namespace)
            teardown_journal(journal, journal_file, raise_errors=False)
        self._close_netns()

    def _wait_up(self) -> None:
        if self._attacher and not self._wait():
            try:
                message = self.pod.file(NET_ERROR).read_text().strip()
            except OSError:
                message = ""
            raise NetworkError(message or "the network attacher died")

    def _wait(self) -> bool:
        """Wait for the attacher to finish: True if the networks are up."""
        try:
            up = os.read(self._barrier, 1) == b"1"
        finally:
            os.close(self._barrier)
            self._barrier = -1
        os.waitpid(self._attacher, 0)
        self._attacher = 0
        return up

    def _release(self) -> None:
        """This process has the networks now (it holds the pod's namespace): the attacher may
        end once they are up."""
        if self._hold >= 0:
            try:
                os.write(self._hold, b"a")
            except BrokenPipeError:
                pass  # the attacher failed and is gone: the barrier tells the pod
            self._close_hold()

    def _close_hold(self) -> None:
        if self._hold >= 0:
            os.close(self._hold)
            self._hold = -1

    def _close_netns(self) -> None:
        if self._netns >= 0:
            os.close(self._netns)
            self._netns = -1


# A pod's networks stage0 started before the run entrypoint (``head_start``): (the run
# arguments they were started for, the attacher), until this process's run entrypoint adopts
# them (``PendingNetwork.start``) or stage0 undoes them (``abort_head_start``).
_head_started: list[tuple[RunArgs, PendingNetwork]] = []


def head_start(pod_path: Path, args: RunArgs, pin_helper: str) -> PendingNetwork | None:
    """Start attaching the pod's CNI networks before its run entrypoint (stage0, in the process
    that will run this flavor's run entrypoint in-process: stage0/headstart.py), so the plugins
    work while stage0 still resolves images and lays the pod out. ``pod_path``: the pod's
    directory now (it moves on to ``prepared`` and ``run``; the attacher follows it). Nothing is
    started (None) outside CNI mode, for forwarded ports (they need the pod manifest) and for a
    configuration the run entrypoint would refuse: it refuses it then, as without a head start.
    ``pin_helper``: this flavor's pod-init (the pod's stage1 is not laid out yet)."""
    if args.net_mode != "cni" or args.port:
        return None
    pod = PodDir(pod_path, args.uuid)
    try:
        dns_options(args)  # refused by the run entrypoint: nothing to start
        attachments = _cni_attachments(pod, args, manifest_ports=False)
    except RktError:
        return None
    if attachments is None:
        return None
    net = PendingNetwork._attach(pod, args, attachments, pin_helper)
    _head_started.append((_head_key(args), net))
    return net


def abort_head_start(pod_path: Path) -> None:
    """Undo head-started networks nobody adopted (stage0 failed, or execs its stage1 after all);
    ``pod_path``: where the pod's directory is now."""
    while _head_started:
        _, net = _head_started.pop()
        net.pod = PodDir(pod_path, net.pod.uuid)
        net.abort()


def _adopt_head_start(pod: PodDir, args: RunArgs) -> PendingNetwork | None:
    if not _head_started:
        return None
    key, net = _head_started[-1]
    if net.pod.uuid != pod.uuid or key != _head_key(args):
        abort_head_start(pod.path)  # started for other arguments: undone, started afresh
        return None
    _head_started.pop()
    net.pod = pod
    return net


def _head_key(args: RunArgs) -> RunArgs:
    # stage0 adds --private-users (its uid range) only when it starts the run; the networks
    # do not depend on it.
    return args._replace(private_users=None)


def _cni_attachments(
    pod: PodDir, args: RunArgs, *, manifest_ports: bool = True
) -> list[tuple[config.Attachment, dict[str, Any]]] | None:
    """The CNI networks to attach, in order, each with its runtimeConfig; None outside CNI
    mode. Refusals (an unknown network, a bad port) are raised here, before anything exists.
    ``manifest_ports``: the pod manifest may forward ports (False: it does not exist yet, and
    only ``--pod-manifest`` gives it ports)."""
    if len(args.net) == 1 and args.net[0] in ("host", "none"):
        return None  # what net_mode() says of these; without importing rkt.net.config
    from rkt.net import config

    requests = config.parse_net_flag(",".join(args.net))
    if config.net_mode(requests) != "cni":
        return None
    local = Path(args.local_config) if args.local_config else None
    attachments = config.select_networks(requests, config.load_user_networks(local))
    if not args.port and not manifest_ports:
        return [(att, {}) for att in attachments]
    runtime = _port_config(pod, args, attachments)
    return list(zip(attachments, runtime, strict=True))


def _attach(
    parent: int,
    pod_dir: int,
    pod: PodDir,
    args: RunArgs,
    journal: NetJournal,
    attachments: list[tuple[config.Attachment, dict[str, Any]]],
    barrier: int,
    hold: int,
) -> NoReturn:
    """The network attacher (see ``PendingNetwork``); never returns. Once the networks are up
    it stays until the run process has taken them over ("a" on ``hold``); if that process
    ends first (``hold`` at end of file: killed, interrupted, failed, or ``abort``), or this
    one is stopped meanwhile, it undoes them: no one else would before gc. ``pod_dir``: the
    pod's directory, open."""
    code = EXIT_ERROR
    try:
        # Relative to the pod directory from here on: stage0 may still move it between phases
        # (a network started early, ``head_start``); the working directory follows renames.
        os.fchdir(pod_dir)
        os.close(pod_dir)
        pod = PodDir.relative(pod.uuid)
        # No parent-death signal (it would need ctypes here, beside the plugins): a run
        # process that dies is seen at the hold pipe, and its networks undone then.
        signal.signal(signal.SIGTERM, _interrupted)  # stopped: undo, as for ^C
        if os.getppid() != parent:
            raise NetworkError("the run process is gone")
        from rkt.net import cni
        from rkt.net.state import Entry, net_info, write_atomic

        journal_file = pod.file(NET_JOURNAL)
        results: list[dict[str, Any]] = []

        try:
            for attachment, runtime in attachments:
                entry = Entry(attachment, runtime)
                journal.entries.append(entry)
                journal.save(journal_file)
                entry.result = cni.add_network(attachment.network, _invocation(journal, entry))
                journal.save(journal_file)
                results.append(entry.result)
        except BaseException:
            _undo(journal, journal_file)
            raise
        write_atomic(pod.file(NET_INFO), jsonio.dumps(net_info(journal)).encode())
        write_name_file_texts(pod, args, results)
        os.write(barrier, b"1")
        try:
            adopted = os.read(hold, 1) == b"a"
        except KeyboardInterrupt:  # SIGTERM (the run process died), ^C
            adopted = False
        if not adopted:
            _undo(journal, journal_file)
        code = 0
    except BaseException as exc:
        if not isinstance(exc, (RktError, OSError, KeyboardInterrupt)):
            import traceback

            traceback.print_exc()
        try:
            replace_file(pod.file(NET_ERROR), f"{describe_error(exc)}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _undo(journal: NetJournal, journal_file: Path) -> None:
    """The attacher undoes what it attached, to the end: a stop often comes twice (the signal
    to the whole process group, then the parent-death signal) and must not cut the DELs short."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    teardown_journal(journal, journal_file, raise_errors=False)


def _port_config(pod: PodDir, args: RunArgs, atts: list[config.Attachment]) -> list[dict[str, Any]]:
    """Per attachment, its runtimeConfig; the forwarding network gets portmap and the ports."""
    manifest = pod.read_manifest()
    if not args.port and not manifest.ports:
        return [{} for _ in atts]  # and rkt.net.ports (with ipaddress) stays unloaded
    from rkt.net import config, ports

    requests = [ports.parse_port_flag(p) for p in args.port]
    requests += [
        ports.PortRequest(p.name, p.host_port, p.host_ip or "")
        for p in manifest.ports
        if p.name not in {r.name for r in requests}
    ]
    runtime: list[dict[str, Any]] = [{} for _ in atts]
    if not requests:
        return runtime
    image_ports = []
    for pod_app in manifest.apps:
        app = pod_app.app or pod.read_image_manifest(pod_app.name).app
        image_ports += [(p.name, p.protocol, p.port, p.count) for p in (app.ports if app else ())]
    mappings = ports.resolve_ports(requests, image_ports)
    index = config.forwarding_network(atts)
    if index is None:
        raise NetworkError("--port: the pod has no network to forward ports on")
    att = atts[index]
    atts[index] = config.Attachment(ports.with_portmap(att.network), att.ifname, att.cni_args)
    runtime[index] = ports.runtime_config(mappings)
    return runtime


def _invocation(journal: NetJournal, entry: Entry) -> cni.Invocation:
    from rkt.net import cni

    return cni.invocation(
        entry.attachment, journal.container_id, journal.netns, entry.runtime_config
    )


def teardown_journal(journal: NetJournal, journal_file: Path, *, raise_errors: bool) -> None:
    """DEL every network in reverse order (with its cached result), remove the namespace, and
    forget the journal. Every step is tried; the first failure is raised at the end."""
    from rkt.net import cni

    first: BaseException | None = None
    for entry in reversed(journal.entries):
        try:
            cni.del_network(entry.attachment.network, _invocation(journal, entry), entry.result)
        except NetworkError as exc:
            first = first or exc
    path = Path(journal.netns)
    if path.parent == NETNS_DIR and path.name == f"rkt-{journal.container_id}":
        try:
            remove_netns(path)
        except OSError as exc:
            first = first or exc
    try:
        journal_file.unlink()
    except FileNotFoundError:
        pass
    if first is not None and raise_errors:
        raise first


def teardown_network(pod: PodDir) -> None:
    """gc: undo whatever the journal says was set up; nothing recorded, nothing to do."""
    from rkt.net.state import NetJournal

    journal_file = pod.file(NET_JOURNAL)
    journal = NetJournal.load(journal_file)
    if journal is None:
        return
    if journal.container_id != pod.uuid:
        raise NetworkError(f'pod "{pod.uuid}": its network journal names another pod')
    teardown_journal(journal, journal_file, raise_errors=True)
