"""IP masquerade of a pod's network by rkt itself, in one iptables transaction.

rkt's built-in ``default`` network masquerades its pods' traffic (rkt: ``ipMasq: true``). The
ptp plugin can do it, and for a user network that asks for ``ipMasq`` it still does; but it
adds the rules with nine ``iptables`` runs (a version probe, a listing, then a check before each
of three appends: ~14 ms of every pod start on the test machine, more than the rest of the ADD)
and its DEL removes them with three more, each of which waits for the kernel to retire the old
rule set (~13 ms apiece with the nft backend). So the built-in network asks ptp for no
masquerade (``NetworkConfig.masquerade``) and rkt adds the same rules after the chain's ADD
with a single ``iptables-restore --noflush`` (~2 ms), and removes them before its DEL with a
single one too (~14 ms). docs/networking.md, "IP masquerade".

The rules, per pod and network, in the ``nat`` table (ptp's, under a chain name of rkt's)::

    -N RKT-<24 hex digits>
    -A RKT-<hex> -d <the pod's subnet> -j ACCEPT
    -A RKT-<hex> ! -d 224.0.0.0/4 -j MASQUERADE
    -A POSTROUTING -s <the pod's address>/32 -j RKT-<hex>

each with the comment ``rkt network <name> pod <container id>``. A transaction is atomic:
either every rule is in or none is. Removal tries the exact rules first (one run); if the rules
are not all there (an ADD cut short, a second gc), it lists the table and removes whatever of
this pod's is left (two runs). Nothing left is not an error.

Imports only the standard library, ``rkt.errors`` and ``rkt.net``.
"""

from __future__ import annotations

from rkt.net.cni import CniError, result_ip
from rkt.net.program import ProgramError, run_program, stderr_tail, tool_path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

CHAIN_PREFIX = "RKT-"
MULTICAST = "224.0.0.0/4"
TIMEOUT = 60.0
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
# FNV-1a, 128 bits (no hashlib: it costs the attacher ~10 ms to import here)
_FNV_OFFSET = 0x6C62272E07BB014262B821756295C58D
_FNV_PRIME = 0x0000000001000000000000000000013B
_MASK = (1 << 128) - 1


def chain_name(network: str, container_id: str) -> str:
    """The pod's chain on ``network``: ``RKT-`` and 24 hex digits (iptables allows 28)."""
    value = _FNV_OFFSET
    for byte in f"{network}\0{container_id}".encode():
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return f"{CHAIN_PREFIX}{value:032x}"[:28]


def comment(network: str, container_id: str) -> str:
    return f"rkt network {network} pod {container_id}"


def _words(network: str, container_id: str) -> tuple[str, str]:
    """The chain and the quoted comment; refuses names iptables-restore would misread."""
    for what, text in (("network", network), ("container ID", container_id)):
        if not text or not _ID_CHARS.issuperset(text):
            raise CniError(f'IP masquerade: {what} "{text}" is not a plain name')
    return chain_name(network, container_id), f'"{comment(network, container_id)}"'


def _pod_address(network: str, result: dict[str, Any] | None, ifname: str) -> tuple[str, str]:
    """The pod's IPv4 address and its subnet (``a.b.c.d/n``), from the ADD result."""
    ipc = result_ip(result, ifname)
    if ipc is None:
        raise CniError(f'network "{network}": IP masquerade: the result has no IPv4 address')
    parts = [int(p) for p in ipc.ip.split(".")]
    value = (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]
    bits = (0xFFFFFFFF << (32 - ipc.prefix)) & 0xFFFFFFFF if ipc.prefix else 0
    net = value & bits
    subnet = ".".join(str((net >> s) & 0xFF) for s in (24, 16, 8, 0))
    return ipc.ip, f"{subnet}/{ipc.prefix}"


def _transaction(lines: list[str]) -> str:
    return "*nat\n" + "".join(f"{line}\n" for line in lines) + "COMMIT\n"


def _rules(
    network: str, container_id: str, result: dict[str, Any] | None, ifname: str
) -> tuple[str, list[str], str]:
    """The chain, its two rules, and the POSTROUTING jump (each without ``-A CHAIN``)."""
    chain, note = _words(network, container_id)
    address, subnet = _pod_address(network, result, ifname)
    tag = f"-m comment --comment {note}"
    own = [f"-d {subnet} {tag} -j ACCEPT", f"! -d {MULTICAST} {tag} -j MASQUERADE"]
    return chain, own, f"-s {address}/32 {tag} -j {chain}"


def add_rules_text(
    network: str, container_id: str, result: dict[str, Any] | None, ifname: str
) -> str:
    """The ``iptables-restore`` input that adds the pod's rules."""
    chain, own, jump = _rules(network, container_id, result, ifname)
    return _transaction(
        [f":{chain} - [0:0]", *(f"-A {chain} {rule}" for rule in own), f"-A POSTROUTING {jump}"]
    )


def remove_rules_text(
    network: str, container_id: str, result: dict[str, Any] | None, ifname: str
) -> str:
    """The ``iptables-restore`` input that removes the rules ``add_rules_text`` added."""
    chain, _, jump = _rules(network, container_id, result, ifname)
    return _transaction([f"-D POSTROUTING {jump}", f"-F {chain}", f"-X {chain}"])


def leftover_rules_text(listing: str, network: str, container_id: str) -> str | None:
    """From ``iptables -t nat -S``: the input that removes every jump to the pod's chain and
    the chain itself, whatever of them is there; None when nothing is."""
    chain, _ = _words(network, container_id)
    jump = ["-j", chain]
    lines: list[str] = []
    exists = False
    for line in listing.splitlines():
        words = line.split()
        if words[:2] == ["-N", chain]:
            exists = True
        elif len(words) > 2 and words[0] == "-A" and words[1] != chain and words[-2:] == jump:
            lines.append("-D" + line[2:])
    if exists:
        lines += [f"-F {chain}", f"-X {chain}"]
    return _transaction(lines) if lines else None


def add_rules(network: str, container_id: str, result: dict[str, Any] | None, ifname: str) -> None:
    """Masquerade the pod's address on ``network`` (after the chain's ADD). Raises
    ``CniError``; the caller DELs, which removes whatever was added."""
    _restore(network, add_rules_text(network, container_id, result, ifname), "adding")


def remove_rules(
    network: str, container_id: str, result: dict[str, Any] | None, ifname: str
) -> None:
    """Remove the pod's masquerade rules on ``network``, whatever is left of them (before the
    chain's DEL). ``result``: the cached ADD result, None if the ADD did not complete."""
    if result_ip(result, ifname) is not None:
        try:
            _restore(network, remove_rules_text(network, container_id, result, ifname), "removing")
            return
        except CniError:
            pass  # not all there: remove what is
    text_or_none = leftover_rules_text(_listing(network), network, container_id)
    if text_or_none is not None:
        _restore(network, text_or_none, "removing")


def check_rules(
    network: str, container_id: str, result: dict[str, Any] | None, ifname: str
) -> None:
    """CHECK: the pod's rules are all there. Raises ``CniError``."""
    chain, own, jump = _rules(network, container_id, result, ifname)
    expected = [*(f"-A {chain} {rule}" for rule in own), f"-A POSTROUTING {jump}"]
    present = {_normal(line) for line in _listing(network).splitlines()}
    missing = [rule for rule in expected if _normal(rule) not in present]
    if missing:
        raise CniError(f'network "{network}": IP masquerade: rule missing: {missing[0]}')


def _normal(rule: str) -> str:
    # iptables -S prints the subnet of -d and -s as given, the multicast range too; one space
    return " ".join(rule.split())


def _listing(network: str) -> str:
    """``iptables -t nat -S``: the nat table's chains and rules, one per line."""
    out = _run(network, ["iptables", "-w", "-t", "nat", "-S"], b"", "listing")
    return out.decode(errors="replace")


def _restore(network: str, text: str, doing: str) -> None:
    _run(network, ["iptables-restore", "-w", "--noflush"], text.encode(), doing)


def _run(network: str, argv: list[str], stdin: bytes, doing: str) -> bytes:
    try:
        return run_program(argv, env={"PATH": tool_path()}, stdin=stdin, timeout=TIMEOUT).stdout
    except ProgramError as exc:
        tail = stderr_tail(exc.result.stderr) if exc.result is not None else ""
        raise CniError(
            f'network "{network}": IP masquerade: {doing} rules: {tail or exc.message}'
        ) from exc
