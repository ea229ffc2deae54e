"""Port forwarding: ``--port=NAME:[HOSTIP:]HOSTPORT`` onto ports the images name.

rkt forwarded with iptables DNAT rules of its own; here the CNI ``portmap`` plugin does it,
chained after the forwarding network's plugins with ``snat: true``, which also makes the port
answer on 127.0.0.1 (it sets ``route_localnet`` on the host end and masquerades hairpin and
localhost traffic; rkt#1256, #2283).

Imports only the standard library, ``rkt.errors`` and ``rkt.net``.
"""

from __future__ import annotations

from rkt.errors import ConfigError, UsageError
from rkt.net.config import NetworkConfig
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_PORT_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
PORTMAP = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


class PortRequest(NamedTuple):
    """One ``--port`` value (or pod manifest ``ports[]`` entry)."""

    name: str
    host_port: int
    host_ip: str = ""

    def to_flag(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        return f"{self.name}:{ip}{self.host_port}"


class PortMapping(NamedTuple):
    host_port: int
    container_port: int
    protocol: str
    host_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


def is_port_name(text: str) -> bool:
    """``[a-z0-9]+([a-z0-9-]*[a-z0-9])?``: lower-case letters, digits and inner dashes."""
    return bool(text) and text[0] != "-" and text[-1] != "-" and _PORT_NAME_CHARS.issuperset(text)


def parse_port_flag(value: str) -> PortRequest:
    """``NAME:[HOSTIP:]HOSTPORT``; raises ``UsageError``."""
    parts = value.split(":")
    if len(parts) not in (2, 3) or not is_port_name(parts[0]):
        raise UsageError(f'--port: "{value}" is not NAME:[HOSTIP:]HOSTPORT')
    host_ip = parts[1] if len(parts) == 3 else ""
    if host_ip:
        import ipaddress  # here: only a host IP needs it (~0.5 ms)

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError as exc:
            raise UsageError(f'--port: "{host_ip}" is not an IPv4 address') from exc
    if not parts[-1].isdigit() or not 0 < int(parts[-1]) < 65536:
        raise UsageError(f'--port: "{parts[-1]}" is not a port number')
    return PortRequest(parts[0], int(parts[-1]), host_ip)


def resolve_ports(
    requests: Iterable[PortRequest], image_ports: Iterable[tuple[str, str, int, int]]
) -> list[PortMapping]:
    """Map each request onto the image port of that name (``(name, protocol, port, count)``)."""
    known: dict[str, tuple[str, int, int]] = {}
    for name, protocol, port, count in image_ports:
        known.setdefault(name, (protocol, port, count))
    mappings: list[PortMapping] = []
    seen: set[tuple[str, int, str]] = set()
    for req in requests:
        if req.name not in known:
            raise ConfigError(f'port "{req.name}": no app in the pod declares a port of that name')
        protocol, port, count = known[req.name]
        for offset in range(max(count, 1)):
            mapping = PortMapping(req.host_port + offset, port + offset, protocol, req.host_ip)
            key = (mapping.protocol, mapping.host_port, mapping.host_ip)
            if key in seen:
                raise ConfigError(f"port {protocol}/{mapping.host_port} is forwarded twice")
            seen.add(key)
            mappings.append(mapping)
    return mappings


def with_portmap(net: NetworkConfig) -> NetworkConfig:
    """``net`` with a portmap plugin at the end of its chain, unless it has one already."""
    if any(p.get("type") == "portmap" for p in net.plugins):
        return net
    return net.with_plugin(dict(PORTMAP))


def runtime_config(mappings: list[PortMapping]) -> dict[str, Any]:
    return {"portMappings": [m.to_json() for m in mappings]} if mappings else {}
