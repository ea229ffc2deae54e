"""Network configurations and the ``--net`` grammar (rkt: Documentation/networking/overview.md).

A network is a CNI configuration list: a name, a ``cniVersion`` and a chain of plugin
configurations. The plugin objects stay JSON objects (``dict``): they are the plugins' own
contract and rkt passes them through, reading only ``type`` and ``capabilities``.

Where networks come from:
- built in: ``default`` (ptp, host-local 172.16.28.0/24, default route, IP masquerade: by rkt
  itself, ``rkt.net.masquerade``) and ``default-restricted`` (ptp, host-local 172.31.0.0/16, no
  default route, no masquerade);
- ``<local-config>/net.d/*.conf`` (one plugin) and ``*.conflist`` (a chain), in lexical order; the
  first file defining a name wins; a user network named ``default`` replaces the built-in one.

``--net`` takes ``host``, ``none``, ``all``, or ``NAME[:K=V;K2=V2][,NAME...]``; the ``K=V`` part
becomes that network's ``CNI_ARGS``. When the selection lacks ``default``, ``default-restricted``
is added (rkt does so, so the metadata service stays reachable).

The records are ``NamedTuple``s (``rkt.records``), not frozen dataclasses: as immutable, but
~5 us to define instead of ~500 us, and the stage1 run process defines them for every CNI pod
(docs/benchmarks.md, "net-run").

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

from rkt import jsonio, textcheck
from rkt.errors import ConfigError, UsageError
from rkt.paths import Path
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

DEFAULT = "default"
DEFAULT_RESTRICTED = "default-restricted"
SPECIAL = ("host", "none", "all")
CNI_VERSION = "1.0.0"


class NetworkConfig(NamedTuple):
    """One CNI network (a configuration list); ``source`` is a path or ``built-in``.
    ``masquerade``: rkt masquerades the pods' addresses itself after the chain's ADD (and undoes
    it before its DEL): the built-in ``default``, never a network from a file."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    source: str = "built-in"
    disable_check: bool = False
    masquerade: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": [dict(p) for p in self.plugins],
        }

    @property
    def ip_masq(self) -> bool:
        """Whether the pods' traffic is masqueraded (by rkt, or by a plugin's ``ipMasq``)."""
        return self.masquerade or any(p.get("ipMasq") is True for p in self.plugins)

    def with_plugin(self, plugin: dict[str, Any]) -> NetworkConfig:
        return self._replace(plugins=(*self.plugins, plugin))


class NetRequest(NamedTuple):
    """One element of ``--net``: a network name and its ``CNI_ARGS`` pairs."""

    name: str
    args: tuple[tuple[str, str], ...] = ()

    @property
    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)


class Attachment(NamedTuple):
    """A network the pod joins: its config, the interface name inside the pod, ``CNI_ARGS``."""

    network: NetworkConfig
    ifname: str
    cni_args: str = ""


def _ptp(name: str, subnet: str, masq: bool, routes: list[dict[str, str]]) -> NetworkConfig:
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [[{"subnet": subnet}]]}
    if routes:
        ipam["routes"] = routes
    # ptp's own ipMasq stays off: rkt adds the same rules in one transaction (rkt.net.masquerade)
    plugin = {"type": "ptp", "ipMasq": False, "mtu": 1500, "ipam": ipam}
    return NetworkConfig(name, CNI_VERSION, (plugin,), masquerade=masq)


def builtin_networks() -> dict[str, NetworkConfig]:
    """rkt's stage1/net/rootfs/etc/rkt/net.d/99-default*.conf, in CNI 1.0 form; ``default``'s
    masquerade is rkt's own (``NetworkConfig.masquerade``) instead of ptp's ``ipMasq``."""
    return {
        DEFAULT: _ptp(DEFAULT, "172.16.28.0/24", True, [{"dst": "0.0.0.0/0"}]),
        DEFAULT_RESTRICTED: _ptp(DEFAULT_RESTRICTED, "172.31.0.0/16", False, []),
    }


def parse_network_config(data: bytes, source: str) -> NetworkConfig:
    """A ``.conf`` (single plugin) or ``.conflist`` document; raises ``ConfigError``."""
    try:
        doc = jsonio.loads(data)
    except ValueError as exc:
        raise ConfigError(f'network config "{source}": invalid JSON: {exc}') from exc
    if not isinstance(doc, dict):
        raise ConfigError(f'network config "{source}": not a JSON object')
    name = doc.get("name")
    if not isinstance(name, str) or not textcheck.is_cni_name(name) or name in SPECIAL:
        raise ConfigError(f'network config "{source}": invalid or reserved network name {name!r}')
    version = doc.get("cniVersion", "0.3.1")
    if not isinstance(version, str):
        raise ConfigError(f'network config "{source}": cniVersion must be a string')
    if "plugins" in doc:
        plugins = doc["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise ConfigError(f'network config "{source}": "plugins" must be a non-empty list')
    else:
        plugins = [{k: v for k, v in doc.items() if k not in ("name", "cniVersion")}]
    for plugin in plugins:
        kind = plugin.get("type") if isinstance(plugin, dict) else None
        if not isinstance(kind, str) or not textcheck.is_cni_name(kind):
            raise ConfigError(f'network config "{source}": a plugin has no valid "type"')
    return NetworkConfig(
        name, version, tuple(plugins), source, disable_check=doc.get("disableCheck") is True
    )


def load_user_networks(local_config: Path | None) -> dict[str, NetworkConfig]:
    """``<local-config>/net.d/*.conf|*.conflist`` by name, in lexical file order."""
    nets: dict[str, NetworkConfig] = {}
    if local_config is None:
        return nets
    directory = local_config / "net.d"
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix in (".conf", ".conflist"))
    except FileNotFoundError:
        return nets
    except OSError as exc:
        raise ConfigError(f'network configs "{directory}": {exc.strerror}') from exc
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f'network config "{path}": {exc.strerror}') from exc
        net = parse_network_config(data, str(path))
        nets.setdefault(net.name, net)  # the first in lexical order wins, as in rkt
    return nets


def parse_net_flag(value: str) -> tuple[NetRequest, ...]:
    """``--net``'s value; raises ``UsageError``. Empty means ``default``."""
    if value in ("", "true"):
        return (NetRequest(DEFAULT),)
    requests: list[NetRequest] = []
    for item in value.split(","):
        name, _, raw_args = item.partition(":")
        if not textcheck.is_cni_name(name):
            raise UsageError(f'--net: "{item}" is not a network name')
        args: list[tuple[str, str]] = []
        for pair in filter(None, raw_args.split(";")):
            key, eq, val = pair.partition("=")
            if not eq or not textcheck.is_identifier(key) or any(c in val for c in ";,\n"):
                raise UsageError(f'--net: "{pair}" in "{item}" is not a CNI argument K=V')
            args.append((key, val))
        if name in SPECIAL and args:
            raise UsageError(f'--net: "{name}" takes no arguments')
        if any(r.name == name for r in requests):
            raise UsageError(f'--net: network "{name}" given twice')
        requests.append(NetRequest(name, tuple(args)))
    names = [r.name for r in requests]
    for special in ("host", "none"):
        if special in names and len(names) > 1:
            raise UsageError(f'--net: "{special}" cannot be combined with other networks')
    return tuple(requests)


def net_mode(requests: tuple[NetRequest, ...]) -> str:
    """``host``, ``none`` or ``cni``."""
    if len(requests) == 1 and requests[0].name in ("host", "none"):
        return requests[0].name
    return "cni"


def select_networks(
    requests: tuple[NetRequest, ...], user: dict[str, NetworkConfig]
) -> list[Attachment]:
    """The networks a pod joins, in order, with interface names eth0, eth1, ..."""
    builtin = builtin_networks()
    chosen: list[tuple[NetworkConfig, str]] = []
    for req in requests:
        if req.name == "all":
            chosen += [(net, "") for net in user.values() if net.name not in _names(chosen)]
            continue
        net = user.get(req.name) or builtin.get(req.name)
        if net is None:
            raise ConfigError(f'network "{req.name}" not found (no such file in net.d)')
        if net.name not in _names(chosen):
            chosen.append((net, req.cni_args))
    if DEFAULT not in _names(chosen) and DEFAULT_RESTRICTED not in _names(chosen):
        chosen.append((user.get(DEFAULT_RESTRICTED) or builtin[DEFAULT_RESTRICTED], ""))
    return [Attachment(net, f"eth{i}", args) for i, (net, args) in enumerate(chosen)]


def _names(chosen: list[tuple[NetworkConfig, str]]) -> list[str]:
    return [net.name for net, _ in chosen]


def forwarding_network(attachments: list[Attachment]) -> int | None:
    """Index of the network ports are forwarded on: the first with IP masquerade, else the last
    one other than ``default-restricted`` (which is host-only), else the last (rkt's rule)."""
    for i, att in enumerate(attachments):
        if att.network.ip_masq:
            return i
    for i in range(len(attachments) - 1, -1, -1):
        if attachments[i].network.name != DEFAULT_RESTRICTED:
            return i
    return len(attachments) - 1 if attachments else None
