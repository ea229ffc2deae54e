"""Parse each entrypoint's argv exactly as docs/stage1-abi.md §3 writes it.

Unknown flags are refused (the ABI wants version skew to be loud): ``PodError`` → exit 254.
Flags take the ``--name=value`` form; booleans are bare (``--debug``) or ``--debug=true|false``.

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

from rkt import textcheck
from rkt.errors import PodError
from rkt.records import NamedTuple

INSECURE_OPTIONS = frozenset({"capabilities", "paths", "seccomp"})
_BOOLS = {"true": True, "false": False}


class RunArgs(NamedTuple):
    uuid: str
    debug: bool = False
    net: tuple[str, ...] = ("default",)
    hostname: str | None = None
    interactive: bool = False
    insecure: frozenset[str] = frozenset()
    mutable: bool = False
    private_users: tuple[int, int] | None = None  # (shift, count): host uid of the pod's root
    local_config: str | None = None
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    dns_domain: str = ""
    hosts_entry: tuple[str, ...] = ()
    port: tuple[str, ...] = ()

    @property
    def net_mode(self) -> str:
        """ "host", "none", or "cni" (named networks, or "default")."""
        if self.net == ("host",):
            return "host"
        if self.net == ("none",):
            return "none"
        return "cni"


class EnterArgs(NamedTuple):
    uuid: str
    command: tuple[str, ...]
    app: str | None = None
    debug: bool = False


class StopArgs(NamedTuple):
    uuid: str
    force: bool = False


class AppArgs(NamedTuple):
    """app/add, app/start, app/stop, app/rm: ``--app=NAME [--debug] UUID`` (ABI §3, v3)."""

    uuid: str
    app: str
    debug: bool = False


class GcArgs(NamedTuple):
    uuid: str
    debug: bool = False


_NET_MULTI = {"dns", "dns-search", "dns-opt", "hosts-entry", "port"}


def _split(
    argv: list[str],
    known_values: set[str],
    known_bools: set[str],
    multi: dict[str, list[str]] | None = None,
) -> tuple[dict[str, str], dict[str, bool], list[str], list[str]]:
    """``multi``, when given, collects every value of the repeatable flags it has keys for."""
    values: dict[str, str] = {}
    bools: dict[str, bool] = {}
    positional: list[str] = []
    rest: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest = argv[i + 1 :]
            break
        if not arg.startswith("--"):
            positional.append(arg)
            continue
        name, eq, value = arg[2:].partition("=")
        if multi is not None and name in multi and eq:
            multi[name].append(value)
        elif name in known_values and eq:
            values[name] = value
        elif name in known_bools and not eq:
            bools[name] = True
        elif name in known_bools and value in _BOOLS:
            bools[name] = _BOOLS[value]
        else:
            raise PodError(f'stage1: unknown or malformed flag "{arg}"')
    return values, bools, positional, rest


def _uuid(positional: list[str]) -> str:
    if len(positional) != 1:
        raise PodError(f"stage1: expected one pod uuid, got {len(positional)} arguments")
    if not textcheck.is_uuid(positional[0]):
        raise PodError(f'stage1: "{positional[0]}" is not a pod uuid')
    return positional[0]


def parse_run(argv: list[str]) -> RunArgs:
    multi: dict[str, list[str]] = {name: [] for name in _NET_MULTI}
    values, bools, positional, rest = _split(
        argv,
        {"net", "hostname", "insecure-options", "local-config", "dns-domain", "private-users"},
        {"debug", "interactive", "mutable"},
        multi,
    )
    if rest:
        raise PodError("stage1: run takes no command after --")
    insecure = frozenset(o for o in values.get("insecure-options", "").split(",") if o)
    unknown = insecure - INSECURE_OPTIONS
    if unknown:
        raise PodError(f'stage1: unknown insecure option "{sorted(unknown)[0]}"')
    net = tuple(n for n in values.get("net", "default").split(",") if n) or ("default",)
    hostname = values.get("hostname") or None
    if hostname is not None and not textcheck.is_hostname(hostname):
        raise PodError(f'stage1: "{hostname}" is not a valid hostname')
    return RunArgs(
        uuid=_uuid(positional),
        debug=bools.get("debug", False),
        net=net,
        hostname=hostname,
        interactive=bools.get("interactive", False),
        insecure=insecure,
        mutable=bools.get("mutable", False),
        local_config=values.get("local-config") or None,
        dns=tuple(multi["dns"]),
        dns_search=tuple(multi["dns-search"]),
        dns_opt=tuple(multi["dns-opt"]),
        dns_domain=values.get("dns-domain", ""),
        hosts_entry=tuple(multi["hosts-entry"]),
        port=tuple(multi["port"]),
        private_users=_private_users(values.get("private-users")),
    )


def _private_users(text: str | None) -> tuple[int, int] | None:
    """``<shift>:<count>`` (issue 4): the pod's uids 0..count-1 are host shift..shift+count-1."""
    if text is None:
        return None
    shift, sep, count = text.partition(":")
    if not (sep and shift.isdigit() and count.isdigit()):
        raise PodError(f'stage1: --private-users "{text}" is not <shift>:<count>')
    first, size = int(shift), int(count)
    if first == 0 or size == 0 or first + size > 1 << 32:
        raise PodError(f'stage1: --private-users "{text}" is not a valid uid range')
    return first, size


def parse_enter(argv: list[str]) -> EnterArgs:
    values, bools, positional, rest = _split(argv, {"app"}, {"debug"})
    if not rest:
        raise PodError("stage1: enter needs a command after --")
    return EnterArgs(
        uuid=_uuid(positional),
        command=tuple(rest),
        app=values.get("app") or None,
        debug=bools.get("debug", False),
    )


def parse_stop(argv: list[str]) -> StopArgs:
    _, bools, positional, rest = _split(argv, set(), {"force"})
    if rest:
        raise PodError("stage1: stop takes no command after --")
    return StopArgs(uuid=_uuid(positional), force=bools.get("force", False))


def parse_gc(argv: list[str]) -> GcArgs:
    _, bools, positional, rest = _split(argv, set(), {"debug"})
    if rest:
        raise PodError("stage1: gc takes no command after --")
    return GcArgs(uuid=_uuid(positional), debug=bools.get("debug", False))


def parse_app(argv: list[str]) -> AppArgs:
    values, bools, positional, rest = _split(argv, {"app"}, {"debug"})
    if rest:
        raise PodError("stage1: app entrypoints take no command after --")
    if not values.get("app"):
        raise PodError("stage1: --app=NAME is required")
    return AppArgs(uuid=_uuid(positional), app=values["app"], debug=bools.get("debug", False))
