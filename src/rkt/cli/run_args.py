"""rkt's positional grammar for ``run`` and ``prepare`` (rkt/run.go, subcommands/run.md):

    rkt run [pod flags] IMAGE [app flags] [-- ARGS... [---]] [IMAGE [app flags] [-- ARGS...]]...

Flags before the first image are pod-wide (app flags there apply to every app); flags after an image
apply to that image. ``--`` starts the app's arguments, ``---`` ends them. Interspersed parsing is
off: anything that is not a known flag is an image.
"""

from __future__ import annotations

from rkt.cli.flags import parse_bool
from rkt.cli.globals import GLOBAL_FLAGS
from rkt.errors import UsageError

# name -> kind: "value" (needs a value), "bool" (--x or --x=BOOL), "multi" (repeatable value)
POD_FLAGS: dict[str, str] = {
    "--volume": "multi",
    "--set-env": "multi",
    "--set-env-file": "multi",
    "--inherit-env": "bool",
    "--hostname": "value",
    "--uuid-file-save": "value",
    "--pod-manifest": "value",
    "--interactive": "bool",
    "--pull-policy": "value",
    "--net": "optvalue",
    "--stage1-url": "value",
    "--stage1-path": "value",
    "--stage1-name": "value",
    "--stage1-hash": "value",
    "--stage1-from-dir": "value",
    "--quiet": "bool",
    "--no-overlay": "bool",
    "--private-users": "bool",
    "--mds-register": "bool",
    "--dns": "multi",
    "--dns-search": "multi",
    "--dns-opt": "multi",
    "--dns-domain": "value",
    "--hosts-entry": "multi",
    "--port": "multi",
    "--ipc": "value",
    "--user-annotation": "multi",
    "--user-label": "multi",
}
APP_FLAGS: dict[str, str] = {
    "--name": "value",
    "--exec": "value",
    "--user": "value",
    "--group": "value",
    "--supplementary-gids": "value",
    "--working-dir": "value",
    "--environment": "multi",
    "--readonly-rootfs": "bool",
    "--mount": "multi",
    "--signature": "value",
    "--annotation": "multi",
    "--cpu": "value",
    "--memory": "value",
    "--cpu-shares": "value",
    "--oom-score-adj": "value",
    "--caps-retain": "value",
    "--caps-remove": "value",
    "--seccomp": "value",
    "--stdin": "value",
    "--stdout": "value",
    "--stderr": "value",
}
# Global flags (GLOBAL_FLAGS, from rkt.cli.globals) may appear among pod flags too: rkt's
# persistent flags.


# The two builders below are plain classes: filled in by parse_run_args, read once by the
# command, never compared; a @dataclass would cost more at import than all of the parsing.


class ParsedApp:
    """One image of the command line with the flags and arguments that follow it."""

    __slots__ = ("args", "flags", "has_args", "image")

    def __init__(self, image: str) -> None:
        self.image = image
        self.flags: dict[str, list[str]] = {}
        self.args: list[str] = []
        self.has_args = False


class ParsedRun:
    """The command line split into global flags, pod flags, shared app flags and apps."""

    __slots__ = ("apps", "globals", "help", "pod", "shared_app")

    def __init__(self) -> None:
        self.pod: dict[str, list[str]] = {}
        self.shared_app: dict[str, list[str]] = {}
        self.globals: list[str] = []
        self.apps: list[ParsedApp] = []
        self.help = False

    def last(self, flag: str, default: str | None = None) -> str | None:
        values = self.pod.get(flag)
        return values[-1] if values else default

    def flag_bool(self, flag: str, default: bool = False) -> bool:
        value = self.last(flag)
        return default if value is None else parse_bool(value, flag)


def _split(token: str) -> tuple[str, str | None]:
    name, eq, value = token.partition("=")
    return name, (value if eq else None)


def parse_run_args(argv: list[str], *, allowed_pod: set[str] | None = None) -> ParsedRun:
    """Split a run/prepare command line into global, pod-wide and per-app parts."""
    parsed = ParsedRun()
    current: ParsedApp | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            parsed.help = True
            i += 1
            continue
        if token == "--":
            if current is None:
                raise UsageError("arguments after -- need an image before them")
            j = i + 1
            while j < len(argv) and argv[j] != "---":
                j += 1
            current.args = argv[i + 1 : j]
            current.has_args = True
            i = j + 1
            continue
        if token == "---":
            i += 1
            continue
        if token.startswith("--"):
            name, value = _split(token)
            table, target = _flag_table(name, current, parsed, allowed_pod)
            kind = table[name]
            if value is None:
                if kind in ("bool", "optvalue"):
                    value = "true" if kind == "bool" else ""
                else:
                    if i + 1 >= len(argv):
                        raise UsageError(f"flag needs an argument: {name}")
                    i += 1
                    value = argv[i]
            if target is None:
                parsed.globals.append(f"{name}={value}")
            else:
                target.setdefault(name, []).append(value)
            i += 1
            continue
        if token.startswith("-") and token != "-":
            raise UsageError(f"unknown shorthand flag: {token}")
        current = ParsedApp(image=token)
        parsed.apps.append(current)
        i += 1
    return parsed


def _flag_table(
    name: str, current: ParsedApp | None, parsed: ParsedRun, allowed_pod: set[str] | None
) -> tuple[dict[str, str], dict[str, list[str]] | None]:
    if name in APP_FLAGS:
        return APP_FLAGS, (current.flags if current is not None else parsed.shared_app)
    if name in GLOBAL_FLAGS:
        return GLOBAL_FLAGS, None
    if name in POD_FLAGS and (allowed_pod is None or name in allowed_pod):
        if current is not None:
            raise UsageError(f"{name} is a pod flag: give it before the first image")
        return POD_FLAGS, parsed.pod
    raise UsageError(f"unknown flag: {name}")


# rkt flags accepted for compatibility whose only supported value is rkt's default: any other
# value is refused loudly instead of being ignored. flag -> (accepted values, why).
_DEFAULT_ONLY: dict[str, tuple[tuple[str, ...], str]] = {
    "--no-overlay": (("false",), "pods always use overlayfs"),
    "--mds-register": (("false",), "the metadata service is not implemented"),
    "--ipc": (("auto", "private"), "pods always get a private IPC namespace"),
    "--stdin": (("null",), "attaching to app streams is not implemented"),
    "--stdout": (("log",), "attaching to app streams is not implemented"),
    "--stderr": (("log",), "attaching to app streams is not implemented"),
}


def reject_unsupported(parsed: ParsedRun) -> None:
    """Refuse compatibility flags given a value this rkt cannot honour."""
    sources = [parsed.pod, parsed.shared_app, *(app.flags for app in parsed.apps)]
    for flags in sources:
        for flag in _DEFAULT_ONLY:
            for value in flags.get(flag, []):
                check_default_only(flag, value)


def check_default_only(flag: str, value: str) -> None:
    """Refuse ``value`` for one of the compatibility flags unless it is the default."""
    accepted, why = _DEFAULT_ONLY[flag]
    if value.lower() not in accepted:
        raise UsageError(f"{flag}={value} is not supported: {why}")


# The pod flags that choose how a pod runs rather than what it is: rkt's run-prepared flags
# (rkt/run_prepared.go), given to ``rkt run`` or ``rkt run-prepared``. ``rkt prepare`` refuses
# them: a prepared pod does not keep them.
RUN_TIME_FLAGS = frozenset(
    ("--net", "--dns", "--dns-search", "--dns-opt", "--dns-domain", "--hosts-entry", "--port",
     "--hostname", "--interactive", "--private-users", "--mds-register", "--ipc")
)  # fmt: skip
