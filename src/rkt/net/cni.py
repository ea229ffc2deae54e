"""The CNI 1.0 protocol for one network (a configuration list): ADD, CHECK and DEL.

Spec (github.com/containernetworking/cni SPEC.md, "Execution of Network Configurations"):
- ADD runs the plugins in order; each gets the previous plugin's result as ``prevResult``; the
  last result is the network's result, which the runtime caches.
- DEL runs them in reverse order, each with the cached result as ``prevResult`` (none when the
  ADD never completed). A DEL after a partial ADD is how leases and rules of the plugins that did
  run are released; every plugin's DEL is attempted and the first failure reported.
- CHECK runs them in order with the cached result; skipped when ``disableCheck`` is set.
- ``runtimeConfig`` carries only the capabilities a plugin declares (``capabilities``), e.g.
  ``portMappings`` for portmap.
- A failing plugin prints ``{"code", "msg", "details"}`` on stdout: it becomes ``CniError``.

A network rkt masquerades itself (``NetworkConfig.masquerade``, the built-in ``default``) gets
its rules after the chain's ADD, loses them before the chain's DEL, and has them checked after
the chain's CHECK (``rkt.net.masquerade``).

Records are ``NamedTuple``s for the start-up cost (see ``rkt.net.config``).

Imports only the standard library, ``rkt.errors`` and ``rkt.net``.
"""

from __future__ import annotations

import os
from types import MappingProxyType

from rkt import jsonio
from rkt.errors import NetworkError
from rkt.net.config import Attachment, NetworkConfig
from rkt.net.program import ProgramError, start_program, stderr_tail, tool_path
from rkt.paths import Path
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PLUGIN_DIRS = ("/usr/lib/rkt/plugins/net", "/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin")
PLUGIN_TIMEOUT = 60.0


class CniError(NetworkError):
    """A plugin failed; ``code`` is the CNI error code (0 when the plugin gave none)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class Invocation(NamedTuple):
    """What every plugin of one network is told about the pod (the ``CNI_*`` variables)."""

    container_id: str
    netns: str
    ifname: str
    cni_args: str = ""
    plugin_dirs: tuple[str, ...] = PLUGIN_DIRS
    runtime_config: Mapping[str, Any] = MappingProxyType({})

    def env(self, command: str) -> dict[str, str]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": self.ifname,
            "CNI_PATH": ":".join(self.plugin_dirs),
            "PATH": tool_path(),  # plugins run iptables, ip
        }
        if self.cni_args:
            # Every plugin of the chain sees every argument; most refuse keys they do not know
            # unless told otherwise (CNI conventions, "CNI_ARGS").
            keys = {pair.partition("=")[0] for pair in self.cni_args.split(";")}
            prefix = "" if "IgnoreUnknown" in keys else "IgnoreUnknown=1;"
            env["CNI_ARGS"] = prefix + self.cni_args
        return env


def find_plugin(kind: str, dirs: tuple[str, ...]) -> str:
    if "/" in kind or kind in ("", ".", ".."):
        raise CniError(f'plugin type "{kind}" is not a plain name')
    for directory in dirs:
        path = Path(directory) / kind
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise CniError(f'plugin "{kind}" not found in {":".join(dirs)}')


def plugin_config(
    net: NetworkConfig, plugin: dict[str, Any], inv: Invocation, prev: dict[str, Any] | None
) -> dict[str, Any]:
    """The stdin of one plugin: its object plus name, cniVersion, runtimeConfig, prevResult."""
    conf = {**plugin, "cniVersion": net.cni_version, "name": net.name}
    caps = plugin.get("capabilities")
    if isinstance(caps, dict):
        runtime = {k: v for k, v in inv.runtime_config.items() if caps.get(k) is True}
        if runtime:
            conf["runtimeConfig"] = runtime
    if prev is not None:
        conf["prevResult"] = prev
    return conf


class PluginRun:
    """One plugin started for one command; ``wait`` returns what ``exec_plugin`` returns."""

    def __init__(
        self,
        command: str,
        net: NetworkConfig,
        plugin: dict[str, Any],
        inv: Invocation,
        prev: dict[str, Any] | None,
        timeout: float = PLUGIN_TIMEOUT,
    ) -> None:
        kind = str(plugin["type"])
        self.command = command
        self.what = f'network "{net.name}": plugin "{kind}" {command}'
        path = find_plugin(kind, inv.plugin_dirs)
        stdin = jsonio.dumps(plugin_config(net, plugin, inv, prev)).encode()
        try:
            self._program = start_program(
                [path], env=inv.env(command), stdin=stdin, timeout=timeout
            )
        except ProgramError as exc:
            raise CniError(f"{self.what}: {exc.message}") from exc

    def wait(self) -> dict[str, Any] | None:
        """The parsed result for ADD, None otherwise. Raises ``CniError``."""
        try:
            res = self._program.wait(check=False)
        except ProgramError as exc:
            raise CniError(f"{self.what}: {exc.message}") from exc
        if res.returncode != 0:
            raise _plugin_error(self.what, res.returncode, res.stdout, res.stderr)
        if self.command != "ADD":
            return None
        try:
            result = jsonio.loads(res.stdout)
        except ValueError as exc:
            raise CniError(
                f"{self.what}: result is not JSON: {stderr_tail(res.stdout, 200)}"
            ) from exc
        if not isinstance(result, dict):
            raise CniError(f"{self.what}: result is not a JSON object")
        return result


def exec_plugin(
    command: str,
    net: NetworkConfig,
    plugin: dict[str, Any],
    inv: Invocation,
    prev: dict[str, Any] | None,
    timeout: float = PLUGIN_TIMEOUT,
) -> dict[str, Any] | None:
    """Run one plugin; the parsed result for ADD, None otherwise. Raises ``CniError``."""
    return PluginRun(command, net, plugin, inv, prev, timeout).wait()


def _plugin_error(what: str, status: int, stdout: bytes, stderr: bytes) -> CniError:
    try:
        doc = jsonio.loads(stdout)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "code" in doc:
        code = doc.get("code") if isinstance(doc.get("code"), int) else 0
        msg = str(doc.get("msg") or "")
        details = str(doc.get("details") or "")
        text = msg + (f" ({details})" if details and details != msg else "")
        return CniError(f"{what}: error {code}: {text or 'no message'}", int(code or 0))
    tail = stderr_tail(stderr) or stderr_tail(stdout) or "no output"
    return CniError(f"{what}: exited {status}: {tail}")


class PendingAdd:
    """An ADD whose chain has run up to its last plugin, which is running (``start_add``)."""

    def __init__(self, net: NetworkConfig, inv: Invocation) -> None:
        self.net = net
        result: dict[str, Any] | None = None
        for plugin in net.plugins[:-1]:
            result = exec_plugin("ADD", net, plugin, inv, result)
        self._last: PluginRun | None = PluginRun("ADD", net, net.plugins[-1], inv, result)

    def wait(self) -> dict[str, Any]:
        """The network's result: the last plugin's."""
        last, self._last = self._last, None
        if last is None:
            raise CniError(f'network "{self.net.name}": ADD already waited for')
        result = last.wait()
        assert result is not None
        return result

    def settle(self) -> None:
        """Let the running plugin finish, ignoring its outcome: the caller DELs afterwards."""
        last, self._last = self._last, None
        if last is not None:
            try:
                last.wait()
            except CniError:
                pass


def start_add(net: NetworkConfig, inv: Invocation) -> PendingAdd:
    """ADD the chain up to its last plugin, start that one and return: the caller does work of
    its own (never spawning plugins: they would inherit what it did), then ``wait``s (or
    ``settle``s and DELs). On failure the caller must DEL (see ``del_network``)."""
    return PendingAdd(net, inv)


def add_network(net: NetworkConfig, inv: Invocation) -> dict[str, Any]:
    """ADD the whole chain (and rkt's masquerade); on failure the caller must DEL (see
    ``del_network``)."""
    result = start_add(net, inv).wait()
    if net.masquerade:
        from rkt.net import masquerade

        masquerade.add_rules(net.name, inv.container_id, result, inv.ifname)
    return result


def check_network(net: NetworkConfig, inv: Invocation, cached: dict[str, Any]) -> None:
    if net.disable_check:
        return
    for plugin in net.plugins:
        exec_plugin("CHECK", net, plugin, inv, cached)
    if net.masquerade:
        from rkt.net import masquerade

        masquerade.check_rules(net.name, inv.container_id, cached, inv.ifname)


def del_network(net: NetworkConfig, inv: Invocation, cached: dict[str, Any] | None) -> None:
    """DEL in reverse order (rkt's masquerade first); every step is tried, the first failure
    is raised at the end."""
    first: CniError | None = None
    if net.masquerade:
        from rkt.net import masquerade

        try:
            masquerade.remove_rules(net.name, inv.container_id, cached, inv.ifname)
        except CniError as exc:
            first = exc
    for plugin in reversed(net.plugins):
        try:
            exec_plugin("DEL", net, plugin, inv, cached)
        except CniError as exc:
            first = first or exc
    if first is not None:
        raise first


def invocation(
    att: Attachment, container_id: str, netns: str, runtime_config: dict[str, Any] | None = None
) -> Invocation:
    return Invocation(
        container_id=container_id,
        netns=netns,
        ifname=att.ifname,
        cni_args=att.cni_args,
        runtime_config=dict(runtime_config or {}),
    )


class IpConfig(NamedTuple):
    """The pod side of a result: the first IPv4 address on the pod's interface."""

    ip: str
    prefix: int
    gateway: str | None

    @property
    def mask(self) -> str:
        bits = (0xFFFFFFFF << (32 - self.prefix)) & 0xFFFFFFFF
        return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def result_ip(result: dict[str, Any] | None, ifname: str) -> IpConfig | None:
    """The result's IPv4 address on ``ifname`` (or the first IPv4 address at all)."""
    if not result:
        return None
    ifaces = result.get("interfaces") or []
    candidates = []
    for entry in result.get("ips") or []:
        if not isinstance(entry, dict) or ":" in str(entry.get("address", "")):
            continue
        index = entry.get("interface")
        name = None
        if isinstance(index, int) and 0 <= index < len(ifaces) and isinstance(ifaces[index], dict):
            name = ifaces[index].get("name")
        candidates.append((name == ifname, entry))
    candidates.sort(key=lambda c: not c[0])
    for _, entry in candidates:
        address, _, prefix = str(entry.get("address", "")).partition("/")
        if address and prefix.isdigit():
            gw = entry.get("gateway")
            return IpConfig(address, int(prefix), gw if isinstance(gw, str) else None)
    return None


def result_dns(result: dict[str, Any] | None) -> dict[str, Any]:
    dns = (result or {}).get("dns")
    return dns if isinstance(dns, dict) else {}
