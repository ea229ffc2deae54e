"""The fast path of the argparse commands: plain command lines parsed without argparse.

Importing argparse costs ~10 ms here (it brings ``re``, ``enum``, ``gettext`` and ``locale``):
a third of ``rkt list``, ``rkt status``, ``rkt gc``. Yet nearly every command line those
commands get is plain: known long flags (``--flag VALUE``, ``--flag=VALUE``, rkt's boolean
``--flag[=BOOL]``) and one run of positional arguments. ``quick_parse`` records what a command's
``add_arguments`` declares (``Recorder``: the subset of argparse's ``add_argument`` rkt uses)
and parses such a line itself, giving exactly the namespace argparse would. Anything else
returns None and the caller parses with argparse (``rkt.cli.parser``), which then decides,
prints help or errors exactly as before: an abbreviated or unknown flag, ``--``, ``-h``, a value
that starts with ``-``, a value ``type`` or ``choices`` refuses, a missing value or required
flag, positional arguments in more than one run or too many or too few of them, and any
argparse feature the recorder does not model (a command using one always takes argparse).
``tests/unit/test_cli_quickparse.py`` holds both parsers to the same results, command by
command, over a corpus of command lines.

Also here, shared by both parsers: rkt's boolean flags (``add_bool``; ``bool_overrides``), the
global flags (``add_global_flags``) and ``options_from``.

Imports only the standard library, ``rkt.cli.flags``, ``rkt.cli.globals``, ``rkt.errors`` and
``rkt.settings``.
"""

from __future__ import annotations

from rkt.cli.flags import parse_bool
from rkt.cli.globals import global_defaults, global_options
from rkt.settings import DEFAULT_DIR, GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# rkt's boolean flag, cobra style: ``--flag``, ``--flag=true``, ``--flag=false`` (argparse:
# ``rkt.cli.parser.BoolAction``, registered under this name).
BOOL_ACTION = "rkt-bool"
_FLAG_ACTIONS = (BOOL_ACTION, "store_true")
_ACTIONS = (None, "store", "append", *_FLAG_ACTIONS)
_POSITIONAL_NARGS = (None, "?", "*", "+")


def add_bool(parser: Any, name: str, default: bool, help_text: str) -> None:
    parser.add_argument(name, action=BOOL_ACTION, default=default, help=help_text)


def add_global_flags(parser: Any) -> None:
    """The global flags of rkt (rkt/rkt.go); accepted before or after the command words."""
    defaults = global_defaults()
    group = parser.add_argument_group("global flags")
    group.add_argument(
        "--dir", default=None, help=f"rkt data directory (default {DEFAULT_DIR}, or paths.d config)"
    )
    group.add_argument(
        "--local-config", default=defaults["local_config"], help="local configuration directory"
    )
    group.add_argument(
        "--system-config",
        default=defaults["system_config"],
        help="system configuration directory",
    )
    group.add_argument("--user-config", default="", help="user configuration directory")
    group.add_argument(
        "--insecure-options",
        default="none",
        help="comma-separated list of security features to disable "
        "(none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all)",
    )
    add_bool(group, "--trust-keys-from-https", False, "trust gpg keys fetched from https")
    add_bool(group, "--debug", False, "print debug output")


def options_from(args: Any) -> GlobalOptions:
    return global_options(
        data_dir=args.dir,
        local_config=args.local_config,
        system_config=args.system_config,
        user_config=args.user_config,
        insecure_options=args.insecure_options,
        trust_keys_from_https=bool(args.trust_keys_from_https),
        debug=bool(args.debug),
    )


def bool_overrides(flags: dict[str, str], argv: list[str]) -> tuple[list[str], dict[str, bool]]:
    """``--flag=true`` -> ``--flag``; ``--flag=false`` -> dropped and returned as an override
    (applied after parsing). ``flags``: option string -> dest of the boolean flags."""
    out: list[str] = []
    overrides: dict[str, bool] = {}
    for index, token in enumerate(argv):
        if token == "--":
            out.extend(argv[index:])
            break
        name, eq, value = token.partition("=")
        if eq and name in flags:
            if parse_bool(value, name):
                out.append(name)
            else:
                overrides[flags[name]] = False
            continue
        out.append(token)
    return out, overrides


if TYPE_CHECKING:
    from argparse import Namespace as Namespace  # what the commands are typed against
else:

    class Namespace:
        """What argparse.Namespace is to the commands (the type checker sees that one): the
        parsed values as attributes."""

        def __init__(self, **values: Any) -> None:
            self.__dict__.update(values)

        def __eq__(self, other: object) -> bool:
            return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

        def __repr__(self) -> str:
            inner = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))
            return f"Namespace({inner})"


class _Spec:
    __slots__ = ("action", "choices", "const", "default", "dest", "nargs", "required", "type")

    def __init__(self, dest: str, kw: dict[str, Any]) -> None:
        self.dest = dest
        self.action = kw.get("action")
        self.nargs = kw.get("nargs")
        self.const = kw.get("const")
        self.type: Callable[[str], Any] | None = kw.get("type")
        self.choices = kw.get("choices")
        self.required = bool(kw.get("required"))
        default = kw.get("default")
        if default is None and self.action == "store_true":
            default = False
        self.default = default


class Recorder:
    """Records ``add_argument`` calls: the subset of argparse rkt's commands use. Anything
    outside it marks the command as not handled here (``supported`` False)."""

    def __init__(self) -> None:
        self.options: dict[str, _Spec] = {}
        self.positionals: list[_Spec] = []
        self.supported = True

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Recorder:
        return self

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> Recorder:
        self.supported = False
        return self

    def add_argument(self, *names: str, **kw: Any) -> None:
        known = {"action", "nargs", "const", "default", "type", "choices", "required"}
        known |= {"metavar", "help", "dest"}
        if not names or set(kw) - known or kw.get("action") not in _ACTIONS:
            self.supported = False
            return
        positional = not names[0].startswith("-")
        if positional:
            dest = kw.get("dest") or names[0]
        else:
            long = [n for n in names if n.startswith("--")]
            dest = kw.get("dest") or (long or list(names))[0].lstrip("-").replace("-", "_")
        if dest in {spec.dest for spec in [*self.options.values(), *self.positionals]}:
            self.supported = False  # two arguments, one dest: argparse's order decides
        spec = _Spec(dest, kw)
        if positional:
            if len(names) != 1 or spec.nargs not in _POSITIONAL_NARGS:
                self.supported = False
            if spec.choices is not None or spec.action is not None:
                self.supported = False
            if self.positionals and (spec.nargs is not None or self.positionals[-1].nargs):
                self.supported = False  # several, not all of one argument: argparse's matching
            self.positionals.append(spec)
            return
        if spec.nargs not in (None, "?") or (spec.nargs == "?" and spec.action is not None):
            self.supported = False
        for name in names:
            self.options[name] = spec


class _Refused(Exception):
    """This command line is argparse's to parse."""


def quick_parse(add_arguments: Callable[[Any], None], argv: Sequence[str]) -> Namespace | None:
    """The namespace argparse would give for ``argv`` (the command's flags and the global ones),
    or None when the line is not a plain one (then argparse must parse it)."""
    rec = Recorder()
    add_arguments(rec)
    add_global_flags(rec)
    if not rec.supported:
        return None
    flags = {name: spec.dest for name, spec in rec.options.items() if spec.action in _FLAG_ACTIONS}
    try:
        tokens, overrides = bool_overrides(flags, list(argv))
        values = _parse(rec, tokens)
    except _Refused:
        return None
    values.update(overrides)
    return Namespace(**values)


def _parse(rec: Recorder, tokens: list[str]) -> dict[str, Any]:
    options = list({id(spec): spec for spec in rec.options.values()}.values())
    values: dict[str, Any] = {spec.dest: spec.default for spec in [*options, *rec.positionals]}
    seen: set[str] = set()
    positional: list[str] = []
    runs = 0  # runs of positional arguments (argparse takes its positionals from the first)
    in_run = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-"):
            runs += not in_run
            in_run = True
            positional.append(token)
            continue
        in_run = False
        name, eq, value = token.partition("=")
        spec = rec.options.get(name) if name.startswith("--") else None
        if spec is None:
            raise _Refused  # unknown or abbreviated, -h, --, "-", a short flag, -5
        seen.add(spec.dest)
        if spec.action in _FLAG_ACTIONS:
            values[spec.dest] = True  # (=BOOL forms: bool_overrides)
            continue
        if not eq and index < len(tokens) and not tokens[index].startswith("-"):
            eq, value = "=", tokens[index]  # the next argument is the value
            index += 1
        if not eq:
            if spec.nargs != "?" or (index < len(tokens) and not _is_flag(rec, tokens[index])):
                raise _Refused  # a missing value, or one that starts with "-": argparse's call
            values[spec.dest] = spec.const
        elif spec.action == "append":
            values[spec.dest] = [*(values[spec.dest] or []), _convert(spec, value)]
        else:
            values[spec.dest] = _convert(spec, value)
    if runs > 1:
        raise _Refused
    if len(rec.positionals) > 1:  # each of one argument
        if len(positional) != len(rec.positionals):
            raise _Refused
        for spec, given in zip(rec.positionals, positional, strict=True):
            values[spec.dest] = _convert(spec, given)
    elif rec.positionals:
        values[rec.positionals[0].dest] = _positional_value(rec.positionals[0], positional)
    elif positional:
        raise _Refused  # arguments nothing takes
    for spec in options:
        if spec.dest in seen:
            continue
        if spec.required:
            raise _Refused
        if isinstance(spec.default, str) and spec.type is not None:
            values[spec.dest] = _convert(spec, spec.default, check_choices=False)
    return values


def _is_flag(rec: Recorder, token: str) -> bool:
    """Whether argparse takes ``token`` for one of the flags (not for a value)."""
    return token.startswith("--") and token.partition("=")[0] in rec.options


def _convert(spec: _Spec, value: str, *, check_choices: bool = True) -> Any:
    if spec.type is not None:
        try:
            value = spec.type(value)
        except (TypeError, ValueError):
            raise _Refused from None  # argparse's "invalid ... value"
    if check_choices and spec.choices is not None and value not in spec.choices:
        raise _Refused
    return value


def _positional_value(spec: _Spec, given: list[str]) -> Any:
    if spec.nargs is None:
        if len(given) != 1:
            raise _Refused
        return _convert(spec, given[0])
    if spec.nargs == "?":
        if len(given) > 1:
            raise _Refused
        if not given:
            default = spec.default
            return _convert(spec, default) if isinstance(default, str) else default
        return _convert(spec, given[0])
    if spec.nargs == "+" and not given:
        raise _Refused
    if not given:
        return spec.default if spec.default is not None else []
    return [_convert(spec, v) for v in given]
