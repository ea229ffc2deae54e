"""The journal of a pod's networks: what was (or was being) attached, with the cached results.

Written before each step, so a crash anywhere leaves enough for gc to undo it: the namespace path
before the namespace exists, each network (with the exact configuration and ``CNI_ARGS`` used)
before its ADD, its result after. gc DELs from it alone, never from ``net.d`` (which may have
changed). ``net_info`` is the summary stage0 shows (``net-info.json``, docs/stage1-abi.md §2).

Plain classes with ``__slots__`` rather than dataclasses: defining a dataclass costs ~0.4 ms of
the pod's start-up (see ``rkt.net.config``).

Imports only the standard library, ``rkt.errors`` and ``rkt.net``.
"""

from __future__ import annotations

import os

from rkt import jsonio
from rkt.errors import NetworkError
from rkt.net.cni import result_ip
from rkt.net.config import Attachment, parse_network_config
from rkt.paths import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


class Entry:
    """One network of the pod: what its ADD was (or is being) given, and its result once done."""

    __slots__ = ("attachment", "result", "runtime_config")

    def __init__(
        self,
        attachment: Attachment,
        runtime_config: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        self.attachment = attachment
        self.runtime_config: dict[str, Any] = runtime_config if runtime_config is not None else {}
        self.result = result

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.attachment.network.to_json(),
            "ifname": self.attachment.ifname,
            "args": self.attachment.cni_args,
            "runtimeConfig": self.runtime_config,
            "result": self.result,
            "masquerade": self.attachment.network.masquerade,  # rkt's own (rkt.net.masquerade)
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Entry:
        net = parse_network_config(jsonio.dumps(doc["network"]).encode(), "journal")
        if doc.get("masquerade") is True:
            net = net._replace(masquerade=True)
        att = Attachment(net, str(doc["ifname"]), str(doc.get("args") or ""))
        result = doc.get("result")
        return cls(att, dict(doc.get("runtimeConfig") or {}), result if result else None)


class NetJournal:
    """The pod's namespace path and its networks, in the order they were attached."""

    __slots__ = ("container_id", "entries", "netns")

    def __init__(self, container_id: str, netns: str, entries: list[Entry] | None = None) -> None:
        self.container_id = container_id
        self.netns = netns
        self.entries: list[Entry] = entries if entries is not None else []

    def to_json(self) -> bytes:
        doc = {
            "containerID": self.container_id,
            "netns": self.netns,
            "networks": [e.to_json() for e in self.entries],
        }
        return jsonio.dumps(doc).encode()  # compact: json's indent would import json (~1 ms)

    @classmethod
    def from_json(cls, data: bytes) -> NetJournal:
        try:
            doc = jsonio.loads(data)
            return cls(
                str(doc["containerID"]),
                str(doc["netns"]),
                [Entry.from_json(e) for e in doc.get("networks") or []],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NetworkError(f"network journal is corrupt: {exc}") from exc

    def save(self, path: Path) -> None:
        write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> NetJournal | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return cls.from_json(data)


def net_info(journal: NetJournal) -> list[dict[str, Any]]:
    """One object per attached network: ``netName``, ``ifName``, ``ip``, ``mask``, ``gateway``,
    ``args`` (rkt's net-info.json keys)."""
    out = []
    for entry in journal.entries:
        att = entry.attachment
        ipc = result_ip(entry.result, att.ifname)
        out.append(
            {
                "netName": att.network.name,
                "ifName": att.ifname,
                "ip": ipc.ip if ipc else "",
                "mask": ipc.mask if ipc else "",
                "gateway": (ipc.gateway or "") if ipc else "",
                "args": att.cni_args,
            }
        )
    return out


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # No fsync: the journal guards against the process dying, not the machine (a reboot takes the
    # namespaces, veths and rules with it; only IPAM leases survive, and they name the pod).
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
