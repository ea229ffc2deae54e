"""The pod's networking in the ns flavor: set up before the apps start, torn down by gc.

``--net=host`` keeps the caller's namespace; ``--net=none`` gets a fresh one with ``lo`` only
(``run.namespace_flags``); anything else is CNI (``rkt.net``): the run process creates the pod's
namespace pinned at ``/run/netns/rkt-<uuid>``, ADDs every selected network from the host side
(journalled in ``stage1/rootfs/rkt/private/net.json`` before each step), one network after the
other; while the last one's plugins run it enters the namespace and brings ``lo`` up (so the
pod's other namespaces and its init are made inside it), then takes the result and writes
``net-info.json`` (``PendingNetwork``: ``start`` returns while those plugins run, ``finish``
waits). A failed ADD is undone at once (DEL of everything attempted, the namespace removed); gc
undoes a pod that died, however it died, from the journal alone.

resolv.conf and hosts (``rkt.net.dns``): once the networks are up, ``write_name_files`` generates
the pod's files under ``stage1/rootfs/rkt/private/name-files/`` and saves which file each app
binds where (``plan.json``); the app launch binds them inside the app's root
(``launch.plan_filesystem``): flags and CNI DNS over the volumes, the fallback hosts under them,
``host`` the host's own file read-only (so later changes to it show in the pod).

Imports only the standard library, ``rkt.errors``, ``rkt.host``, ``rkt.net``, ``rkt.stage1``.
"""

from __future__ import annotations

import os

from rkt import abi, jsonio
from rkt.errors import NetworkError
from rkt.host.api import MNT_DETACH, MS_PRIVATE, MS_REC, Host
from rkt.host.flags import CLONE_NEWNET
from rkt.host.netns import NETNS_DIR, create_netns, enter_netns, netns_pins, remove_netns
from rkt.net import dns
from rkt.paths import Path
from rkt.stage1.common.appspec import AppSpec, NameFile
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.poddir import NET_JOURNAL, PRIVATE_DIR, PodDir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from rkt.net import cni, config
    from rkt.net.state import Entry, NetJournal

# rkt.net.cni, rkt.net.config and rkt.net.state are imported only where a pod joins CNI
# networks: --net=none and --net=host pods start without them.

NET_INFO = "net-info.json"
NAME_FILES_DIR = f"{PRIVATE_DIR}/name-files"  # the generated resolv.conf / hosts
NAME_FILES_PLAN = f"{NAME_FILES_DIR}/plan.json"
RESOLV_CONF = "/etc/resolv.conf"
HOSTS = "/etc/hosts"
# The host's files, as the stage1's mount namespace sees them (tests bind fakes over them in a
# mount namespace of their own; the machine's files are never touched).
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"


def netns_path(uuid: str) -> Path:
    return NETNS_DIR / f"rkt-{uuid}"


class PendingNetwork:
    """The pod's networks while the last one's plugins run (``PendingNetwork.start``).

    ``finish`` waits for them, journals the result, writes ``net-info.json`` and the pod's
    resolv.conf/hosts; if the ADD failed, it undoes everything (DEL of every network attempted,
    the namespace removed) and raises. ``abort`` undoes everything for a caller that failed in
    between. Either must be called, before the caller leaves the namespaces it had at the start
    but the network one (the DELs run from the host's network namespace, which ``abort`` and a
    failing ``finish`` return to).
    """

    def __init__(self, pod: PodDir, args: RunArgs) -> None:
        self.pod = pod
        self.args = args
        self.journal: NetJournal | None = None
        self._pending: cni.PendingAdd | None = None
        self._home = -1  # the host's network namespace, while CNI networks are being attached

    @classmethod
    def start(cls, host: Host, pod: PodDir, args: RunArgs) -> PendingNetwork:
        """Start attaching the pod's networks (CNI mode only).

        Returns once the last network's ADD is running, this process in the pod's namespace
        with ``lo`` up: the caller may do work of its own before ``finish``. Networks are
        attached one after the other, each chain in order (CNI: no parallel operations on one
        container, even across attachments); a failure here is undone before it is raised.
        """
        net = cls(pod, args)
        if len(args.net) == 1 and args.net[0] in ("host", "none"):
            return net  # what net_mode() says of these; without importing rkt.net.config
        from rkt.net import cni, config
        from rkt.net.state import Entry, NetJournal

        requests = config.parse_net_flag(",".join(args.net))
        if config.net_mode(requests) != "cni":
            return net
        local = Path(args.local_config) if args.local_config else None
        attachments = config.select_networks(requests, config.load_user_networks(local))
        runtime = _port_config(pod, args, attachments)
        path = netns_path(pod.uuid)
        net.journal = journal = NetJournal(pod.uuid, str(path))
        journal_file = pod.file(NET_JOURNAL)
        journal_file.parent.mkdir(parents=True, exist_ok=True)
        journal.save(journal_file)
        net._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            create_netns(path)
            for att, rc in zip(attachments, runtime, strict=True):
                if net._pending is not None:  # the previous network's: its result first
                    journal.entries[-1].result = net._pending.wait()
                    net._pending = None
                    journal.save(journal_file)
                entry = Entry(att, rc)
                journal.entries.append(entry)
                journal.save(journal_file)
                net._pending = cni.start_add(att.network, _invocation(journal, entry))
            # The plugins were started from the host's namespace; this process is done with it: it
            # enters the pod's and sets lo up while the last network's plugins work.
            enter_netns(path)
            host.bring_up_loopback()
        except BaseException:
            net.abort()
            raise
        return net

    def finish(self) -> list[dict[str, Any]]:
        """The CNI results, in order (none outside CNI mode), once every file is written."""
        results: list[dict[str, Any]] = []
        if self.journal is not None:
            from rkt.net.state import net_info, write_atomic

            pending, self._pending = self._pending, None
            try:
                if pending is not None:
                    self.journal.entries[-1].result = pending.wait()
                    self.journal.save(self.pod.file(NET_JOURNAL))
            except BaseException:
                self.abort()
                raise
            self._close_home()
            info = jsonio.dumps(net_info(self.journal)).encode()
            write_atomic(self.pod.file(NET_INFO), info)
            results = [e.result or {} for e in self.journal.entries]
        write_name_files(self.pod, self.args, results)
        return results

    def abort(self) -> None:
        """Undo whatever was attached; errors are swallowed (the caller has its own)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.settle()
        if self.journal is not None and self._home >= 0:
            from rkt.host import libc

            libc.setns(self._home, CLONE_NEWNET)  # the plugins' "host" namespace
            teardown_journal(self.journal, self.pod.file(NET_JOURNAL), raise_errors=False)
        self._close_home()

    def _close_home(self) -> None:
        if self._home >= 0:
            os.close(self._home)
            self._home = -1


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


def isolate_mounts(host: Host) -> None:
    """run's hook right after the pod's mount namespace is unshared: make it private and drop its
    copies of the pinned namespaces, so no pod keeps another pod's namespace alive after that
    pod's gc unpinned it (the kernel frees a namespace only when its last pin goes)."""
    host.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    for point in netns_pins(Path("/proc/self/mountinfo").read_text()):
        try:
            host.umount(point, MNT_DETACH)
        except OSError:
            pass  # unpinned meanwhile by its own pod's gc


def plan_name_files(
    opts: dns.DnsOptions,
    cni_dns: list[dict[str, Any]],
    hostname: str,
    pod_ip: str | None,
    files_dir: str,
) -> list[tuple[NameFile, str | None, bool]]:
    """What every app gets bound on ``/etc/resolv.conf`` and ``/etc/hosts`` (pure).

    Each item: the bind, the text to write at its source first (None: a host file, bound as is,
    read-only, so later host changes show), and whether it applies only to an app whose image
    has no ``/etc/hosts`` (the fallback). Flags and CNI DNS go over the volumes (rkt: CLI > CNI >
    volume > image); the fallback hosts goes under them (volume > image > fallback).
    """
    plan: list[tuple[NameFile, str | None, bool]] = []
    if opts.mode == "host":
        plan.append((NameFile(HOST_RESOLV_CONF, RESOLV_CONF, True, True), None, False))
    else:
        resolv = dns.pod_resolv_conf(opts, cni_dns)
        if resolv is not None:
            source = f"{files_dir}/resolv.conf"
            plan.append((NameFile(source, RESOLV_CONF, False, True), resolv, False))
    if opts.hosts_from_host:
        plan.append((NameFile(HOST_HOSTS, HOSTS, True, True), None, False))
    else:
        hosts = dns.pod_hosts(opts, hostname, pod_ip, image_has_hosts=False)
        assert hosts is not None  # image_has_hosts=False always generates
        fallback = not opts.hosts_entries
        source = f"{files_dir}/{'hosts-fallback' if fallback else 'hosts'}"
        plan.append((NameFile(source, HOSTS, False, not fallback), hosts, fallback))
    return plan


def write_name_files(pod: PodDir, args: RunArgs, results: list[dict[str, Any]]) -> None:
    """Generate the pod's resolv.conf/hosts and save the plan ``name_file_mounts`` reads."""
    opts = dns.parse_dns_options(
        args.dns, args.dns_search, args.dns_opt, args.dns_domain, args.hosts_entry
    )
    hostname = args.hostname or f"rkt-{pod.uuid}"
    pod_ip = None
    result_dns: list[Any] = []
    if results:  # CNI mode only
        from rkt.net import cni

        pod_ip = next((ip.ip for r in results if (ip := cni.result_ip(r, "")) is not None), None)
        result_dns = [cni.result_dns(r) for r in results]
    files_dir = pod.file(NAME_FILES_DIR)
    files_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    plan = plan_name_files(opts, result_dns, hostname, pod_ip, str(files_dir))
    saved = []
    for mount, text, fallback in plan:
        if text is None:
            _check_host_file(mount.source)
        else:
            _replace_file(Path(mount.source), text.encode())
            os.chmod(mount.source, 0o644)
        saved.append({"mount": mount._asdict(), "fallback": fallback})
    _replace_file(pod.file(NAME_FILES_PLAN), jsonio.dumps(saved).encode())


def name_file_mounts(pod: PodDir, app: str) -> tuple[NameFile, ...]:
    """The app's resolv.conf/hosts binds from the saved plan (none before the plan exists)."""
    try:
        saved = jsonio.loads(pod.file(NAME_FILES_PLAN).read_bytes())
    except FileNotFoundError:
        return ()
    out = []
    for item in saved:
        mount = NameFile(**item["mount"])
        if item["fallback"] and any(
            os.path.lexists(d / "etc/hosts") for d in _lower_dirs(pod, app)
        ):
            continue  # the image's own /etc/hosts stays
        out.append(mount)
    return tuple(out)


def with_name_files(pod: PodDir, spec: AppSpec) -> AppSpec:
    return spec._replace(name_files=name_file_mounts(pod, spec.name))


def _lower_dirs(pod: PodDir, app: str) -> list[Path]:
    listing = pod.file(abi.appsinfo(app)) / "lowerdirs"
    try:
        return [Path(line) for line in listing.read_text().splitlines() if line]
    except FileNotFoundError:
        return [pod.app_lower_rootfs(app)]


def _replace_file(path: Path, data: bytes) -> None:
    # rkt.net.state.write_atomic, without importing rkt.net.state (and CNI) for every pod.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _check_host_file(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise NetworkError(f"cannot read the host's {path}: {exc.strerror}") from exc
