"""resolv.conf and /etc/hosts of the pods of the ns flavor (``rkt.net.dns`` makes the texts).

The run entrypoint saves which file each app binds where before the networks are up
(``save_name_files``: ``plan.json``, ``plan_name_files``); once they are up, the network attacher
(``rkt.stage1.ns.network``) generates the files beside it (``write_name_file_texts``); the app
launch binds them inside the app's root (``launch.plan_filesystem``): flags and CNI DNS over the
volumes, the fallback hosts under them, ``host`` the host's own file read-only (so later changes
to it show in the pod).

Imports only the standard library, ``rkt.errors``, ``rkt.net`` (``cni`` to read results),
``rkt.stage1.common``.
"""

from __future__ import annotations

import os

from rkt import abi, jsonio
from rkt.errors import NetworkError
from rkt.net import dns
from rkt.paths import Path
from rkt.stage1.common.args import RunArgs
from rkt.stage1.common.namefile import NameFile
from rkt.stage1.common.poddir import PRIVATE_DIR, PodDir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from rkt.stage1.common.appspec import AppSpec

NAME_FILES_DIR = f"{PRIVATE_DIR}/name-files"  # the generated resolv.conf / hosts
NAME_FILES_PLAN = f"{NAME_FILES_DIR}/plan.json"
RESOLV_CONF = "/etc/resolv.conf"
HOSTS = "/etc/hosts"
# The host's files, as the stage1's mount namespace sees them (tests bind fakes over them in a
# mount namespace of their own; the machine's files are never touched).
HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"


def plan_name_files(opts: dns.DnsOptions, cni: bool, files_dir: str) -> list[tuple[NameFile, bool]]:
    """What every app gets bound on ``/etc/resolv.conf`` and ``/etc/hosts`` (pure), known before
    the networks are up: each bind, and whether it applies only to an app whose image has no
    ``/etc/hosts`` (the fallback). Flags and CNI DNS go over the volumes (rkt: CLI > CNI >
    volume > image); the fallback hosts goes under them (volume > image > fallback). A host
    file (``host``) is bound as is, read-only, so later host changes show; the others are
    generated in ``files_dir`` (``name_file_texts``). Without a ``--dns`` flag, a CNI pod's
    resolv.conf is optional: bound only if a network's result has DNS (then the attacher
    writes it), else the volume's or the image's stays.
    """
    plan: list[tuple[NameFile, bool]] = []
    resolv = f"{files_dir}/resolv.conf"
    if opts.mode == "host":
        plan.append((NameFile(HOST_RESOLV_CONF, RESOLV_CONF, True, True), False))
    elif opts.mode == "ip":
        plan.append((NameFile(resolv, RESOLV_CONF, False, True), False))
    elif not opts.mode and cni:
        plan.append((NameFile(resolv, RESOLV_CONF, False, True, optional=True), False))
    if opts.hosts_from_host:
        plan.append((NameFile(HOST_HOSTS, HOSTS, True, True), False))
    else:
        fallback = not opts.hosts_entries
        source = f"{files_dir}/{_hosts_file(opts)}"
        plan.append((NameFile(source, HOSTS, False, not fallback), fallback))
    return plan


def name_file_texts(
    opts: dns.DnsOptions, cni_dns: list[dict[str, Any]], hostname: str, pod_ip: str | None
) -> dict[str, str]:
    """The generated files of ``plan_name_files``, by name in its ``files_dir`` (pure)."""
    texts = {}
    if opts.mode != "host":
        resolv = dns.pod_resolv_conf(opts, cni_dns)
        if resolv is not None:
            texts["resolv.conf"] = resolv
    if not opts.hosts_from_host:
        hosts = dns.pod_hosts(opts, hostname, pod_ip, image_has_hosts=False)
        assert hosts is not None  # image_has_hosts=False always generates
        texts[_hosts_file(opts)] = hosts
    return texts


def _hosts_file(opts: dns.DnsOptions) -> str:
    """The generated hosts file's name: the fallback (under the volumes, only for images
    without one) when no --hosts-entry asks for entries."""
    return "hosts" if opts.hosts_entries else "hosts-fallback"


def dns_options(args: RunArgs) -> dns.DnsOptions:
    return dns.parse_dns_options(
        args.dns, args.dns_search, args.dns_opt, args.dns_domain, args.hosts_entry
    )


def save_name_files(pod: PodDir, args: RunArgs, *, cni: bool) -> None:
    """Save which file each app binds where (``name_file_mounts`` reads it); outside CNI mode
    also generate the files, which need no network result."""
    opts = dns_options(args)
    files_dir = pod.file(NAME_FILES_DIR)
    files_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    saved = []
    for mount, fallback in plan_name_files(opts, cni, str(files_dir)):
        if mount.source in (HOST_RESOLV_CONF, HOST_HOSTS):  # bound as is
            _check_host_file(mount.source)
        saved.append({"mount": mount._asdict(), "fallback": fallback})
    replace_file(pod.file(NAME_FILES_PLAN), jsonio.dumps(saved).encode())
    if not cni:
        write_name_file_texts(pod, args, [])


def write_name_file_texts(pod: PodDir, args: RunArgs, results: list[dict[str, Any]]) -> None:
    """Generate the pod's resolv.conf/hosts from the flags and the CNI results (CNI mode: in
    the network attacher, once every network is up)."""
    opts = dns_options(args)
    pod_ip = None
    result_dns: list[Any] = []
    if results:
        from rkt.net import cni

        pod_ip = next((ip.ip for r in results if (ip := cni.result_ip(r, "")) is not None), None)
        result_dns = [cni.result_dns(r) for r in results]
    hostname = args.hostname or f"rkt-{pod.uuid}"
    files_dir = pod.file(NAME_FILES_DIR)
    files_dir.mkdir(mode=0o755, parents=True, exist_ok=True)  # a head start: before the plan
    for name, text in name_file_texts(opts, result_dns, hostname, pod_ip).items():
        path = files_dir / name
        replace_file(path, text.encode())
        os.chmod(path, 0o644)


def name_file_mounts(pod: PodDir, app: str, *, settled: bool = True) -> tuple[NameFile, ...]:
    """The app's resolv.conf/hosts binds from the saved plan (none before the plan exists).
    Once the networks are up (``settled``), an optional bind is kept only if its file exists;
    before, it stays optional (app-exec decides after waiting for the network)."""
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
        if mount.optional and settled:
            if not os.path.exists(mount.source):
                continue
            mount = mount._replace(optional=False)
        out.append(mount)
    return tuple(out)


def with_name_files(pod: PodDir, spec: AppSpec, *, settled: bool = True) -> AppSpec:
    return spec._replace(name_files=name_file_mounts(pod, spec.name, settled=settled))


def _lower_dirs(pod: PodDir, app: str) -> list[Path]:
    listing = pod.file(abi.appsinfo(app)) / "lowerdirs"
    try:
        return [Path(line) for line in listing.read_text().splitlines() if line]
    except FileNotFoundError:
        return [pod.app_lower_rootfs(app)]


def replace_file(path: Path, data: bytes) -> None:
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
