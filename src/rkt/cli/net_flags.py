"""The network flags of ``rkt run`` and ``rkt run-prepared`` (``--net``, ``--dns*``,
``--hosts-entry``, ``--port``) and ``--hostname``, in a module of their own so that
``run-prepared`` does not import the whole ``run`` command (pod requests, the store, fetching)."""

from __future__ import annotations

from rkt.errors import UsageError
from rkt.settings import GlobalOptions
from rkt.textcheck import is_hostname

__all__ = ["DEFAULT_NET", "NETWORKS", "hostname_option", "network_options"]

NETWORKS = ("default", "default-restricted", "none", "host", "all", "NAME[:K=V;...]")
# rkt's default: the "default" network (ptp, host-local, masquerade; docs/networking.md).
DEFAULT_NET = "default"


def hostname_option(value: str | None) -> str | None:
    """``--hostname``, refused as a usage error before any pod exists (the stage1 checks it
    again); None or "" is the default, ``rkt-UUID``."""
    if value and not is_hostname(value):
        raise UsageError(
            f'--hostname "{value}": not a valid hostname (letters, digits, "." and "-", at most 63)'
        )
    return value or None


def network_options(
    opts: GlobalOptions,
    *,
    net: str,
    dns: list[str],
    dns_search: list[str],
    dns_opt: list[str],
    dns_domain: str | None,
    hosts_entries: list[str],
    ports: list[str],
) -> dict[str, object]:
    """The network part of ``RunOptions``, validated here so a typo is a usage error (exit 2)
    before any pod exists. Shared by run and run-prepared."""
    if net in ("none", "host") and not (
        dns or dns_search or dns_opt or dns_domain or hosts_entries or ports
    ):
        # Nothing to validate: what the parsers below return for these, without importing them.
        net_value = net
    else:
        from rkt.net.config import parse_net_flag
        from rkt.net.dns import parse_dns_options

        requests = parse_net_flag(net)
        parse_dns_options(dns, dns_search, dns_opt, dns_domain or "", hosts_entries)
        if ports:
            from rkt.net.ports import parse_port_flag

            for port in ports:
                parse_port_flag(port)
        net_value = ",".join(r.name + (":" + r.cni_args if r.args else "") for r in requests)
    return {
        "net": net_value,
        "local_config": str(opts.local_config),
        "dns": tuple(dns),
        "dns_search": tuple(dns_search),
        "dns_opt": tuple(dns_opt),
        "dns_domain": dns_domain or None,
        "hosts_entries": tuple(hosts_entries),
        "ports": tuple(ports),
    }
