"""``/etc/resolv.conf`` and ``/etc/hosts`` for a pod (rkt: Documentation/networking/dns.md).

resolv.conf, by precedence: ``--dns=IP...`` (with ``--dns-search``, ``--dns-opt``,
``--dns-domain``) > the DNS a CNI result returned (unless ``--dns=none``) > a volume on
``/etc/resolv.conf`` > the image's file. ``--dns=host`` binds the host's file (read-only).
hosts: ``--hosts-entry=IP=NAME[,NAME]`` (merged per IP, appended to the default stub) > a volume
> the image's file > the default stub. ``--hosts-entry=host`` binds the host's file. Generated
files name the pod's hostname (on its first IP, else on 127.0.0.1).

Every pod's run process loads this, so ``DnsOptions`` is a ``NamedTuple`` (see ``rkt.net.config``).

Pure: imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

from rkt.errors import UsageError
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

HOSTS_STUB = (
    "127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n"
    "::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n"
)
# Patterns, not compiled ones: only a pod with --dns-* or --hosts-entry flags compiles them.
_HOSTNAME = r"[A-Za-z0-9]([A-Za-z0-9.\-]{0,252})"
_TOKEN = r"[^\s#;]+"


class DnsOptions(NamedTuple):
    """The pod's ``--dns*`` and ``--hosts-entry`` flags, validated."""

    servers: tuple[str, ...] = ()  # IPs, or ("host",), or ("none",)
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    domain: str = ""
    hosts_entries: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hosts_from_host: bool = False

    @property
    def mode(self) -> str:
        """``ip``, ``host``, ``none`` or ``""`` (no ``--dns``)."""
        if self.servers in (("host",), ("none",)):
            return self.servers[0]
        return "ip" if self.servers else ""


def parse_dns_options(
    dns: Iterable[str],
    search: Iterable[str] = (),
    options: Iterable[str] = (),
    domain: str = "",
    hosts_entries: Iterable[str] = (),
) -> DnsOptions:
    """Flags as given (each may be repeated or comma-separated); raises ``UsageError``."""
    servers = tuple(_items(dns))
    if len(servers) > 1 and ({"host", "none"} & set(servers)):
        raise UsageError('--dns: "host" and "none" cannot be combined with other servers')
    if servers not in (("host",), ("none",)):
        for ip in servers:
            _check_ip("--dns", ip)
    for name, values in (("--dns-search", _items(search)), ("--dns-opt", _items(options))):
        for value in values:
            if not _fullmatch(_TOKEN, value):
                raise UsageError(f'{name}: "{value}" is not a single word')
    if domain and not _fullmatch(_HOSTNAME, domain):
        raise UsageError(f'--dns-domain: "{domain}" is not a domain name')
    if not servers or servers in (("host",), ("none",)):  # no resolv.conf of rkt's to go in
        extras = (("--dns-search", _items(search)), ("--dns-opt", _items(options)))
        needs_ip = [name for name, given in (*extras, ("--dns-domain", domain)) if given]
        if needs_ip:
            raise UsageError(
                f"{needs_ip[0]} needs --dns=IP: it goes only into a resolv.conf rkt writes"
            )
    merged: dict[str, list[str]] = {}
    from_host = False
    for entry in hosts_entries:
        if entry == "host":
            from_host = True
            continue
        ip, eq, names = entry.partition("=")
        _check_ip("--hosts-entry", ip)
        hosts = [n for n in names.split(",") if n]
        if not eq or not hosts or not all(_fullmatch(_HOSTNAME, n) for n in hosts):
            raise UsageError(f'--hosts-entry: "{entry}" is not IP=NAME[,NAME...] or "host"')
        merged.setdefault(ip, [])
        merged[ip] += [h for h in hosts if h not in merged[ip]]
    if from_host and merged:
        raise UsageError('--hosts-entry: "host" cannot be combined with other entries')
    return DnsOptions(
        servers=servers,
        search=tuple(_items(search)),
        options=tuple(_items(options)),
        domain=domain,
        hosts_entries=tuple((ip, tuple(n)) for ip, n in merged.items()),
        hosts_from_host=from_host,
    )


def _fullmatch(pattern: str, value: str) -> bool:
    import re  # here: only these flags need it, and re costs ~2 ms of a start

    return re.fullmatch(pattern, value) is not None


def _items(values: Iterable[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def _check_ip(flag: str, value: str) -> None:
    import ipaddress  # here: ~0.5 ms, and only --dns and --hosts-entry need it

    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise UsageError(f'{flag}: "{value}" is not an IP address') from exc


def render_resolv_conf(
    servers: Iterable[str], search: Iterable[str], options: Iterable[str], domain: str
) -> str:
    lines = ["# generated by rkt"]
    search = list(search)
    if domain:
        lines.append(f"domain {domain}")
    if search:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {ip}" for ip in servers]
    options = list(options)
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def pod_resolv_conf(opts: DnsOptions, cni_dns: Iterable[dict[str, Any]]) -> str | None:
    """The generated resolv.conf, or None (keep the volume's or the image's; ``host`` is
    handled by the caller)."""
    if opts.mode == "ip":
        return render_resolv_conf(opts.servers, opts.search, opts.options, opts.domain)
    if opts.mode:
        return None
    for dns in cni_dns:
        servers = [str(s) for s in dns.get("nameservers") or [] if isinstance(s, str)]
        if servers:
            return render_resolv_conf(
                servers,
                [str(s) for s in dns.get("search") or []],
                [str(s) for s in dns.get("options") or []],
                str(dns.get("domain") or ""),
            )
    return None


def pod_hosts(
    opts: DnsOptions, hostname: str, pod_ip: str | None, image_has_hosts: bool
) -> str | None:
    """The generated hosts file, or None when the image's own file stays."""
    if not opts.hosts_entries and image_has_hosts:
        return None
    lines = [HOSTS_STUB.rstrip("\n"), f"{pod_ip or '127.0.0.1'}\t{hostname}"]
    lines += [f"{ip}\t{' '.join(names)}" for ip, names in opts.hosts_entries]
    return "\n".join(lines) + "\n"
