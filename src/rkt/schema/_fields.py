"""Typed getters for JSON fields, shared by the appc manifest codecs (image, pod, isolators).

Owns: the location type ``Loc`` used to name a field by its dotted path in error messages
(``image manifest: field "app.ports[1].port": ...``), safe JSON loading (size cap, duplicate keys,
nesting depth, NaN), and the limits ``MAX_MANIFEST_SIZE`` / ``MAX_LIST_ENTRIES``.

Pure: no I/O. Imports only ``rkt.errors`` and the standard library.
"""

from __future__ import annotations

# collections.abc without importing `collections` (~1 ms): the same classes
from _collections_abc import Callable, Iterable, Mapping

from rkt import jsonio
from rkt.errors import ManifestError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

MAX_MANIFEST_SIZE = 1 << 20
"""Largest manifest JSON accepted, in bytes (a hostile manifest must not exhaust memory)."""

MAX_LIST_ENTRIES = 4096
"""Largest number of entries accepted in any list (or string map) of a manifest."""

_SHOW_LIMIT = 80
_MAX_INT_DIGITS = 30


def show(value: object) -> str:
    """Render a (possibly hostile) JSON value for a one-line error: quoted, escaped, short."""
    try:
        text = jsonio.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


class Loc:
    """Where a value sits: the document (``image manifest``) and the dotted field path in it."""

    __slots__ = ("doc", "path")

    def __init__(self, doc: str, path: str = "") -> None:
        self.doc = doc
        self.path = path

    def key(self, name: str) -> Loc:
        return Loc(self.doc, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> Loc:
        return Loc(self.doc, f"{self.path}[{i}]")

    def __str__(self) -> str:
        return f'{self.doc}: field "{self.path}"' if self.path else self.doc

    def error(self, message: str) -> ManifestError:
        return ManifestError(f"{self}: {message}")


def load_object(data: bytes | str | Mapping[str, Any], loc: Loc) -> Mapping[str, Any]:
    """Decode manifest JSON (or accept an already decoded mapping) into a JSON object."""
    if isinstance(data, Mapping):
        return data
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_MANIFEST_SIZE:
        raise loc.error(f"manifest is {len(raw)} bytes, more than the limit of {MAX_MANIFEST_SIZE}")
    try:
        value = jsonio.loads(
            raw,
            object_pairs_hook=_object_hook(loc),
            parse_constant=_no_constant,
            parse_int=_parse_int,
        )
    except UnicodeDecodeError as exc:
        raise loc.error("invalid JSON: not UTF-8 text") from exc
    except ValueError as exc:  # json.JSONDecodeError, or from _no_constant and _parse_int
        if getattr(exc, "msg", None) == jsonio.TOO_DEEP:
            raise loc.error("invalid JSON: nested too deeply") from exc
        lineno, colno, msg = (getattr(exc, attr, None) for attr in ("lineno", "colno", "msg"))
        if isinstance(msg, str):
            msg = msg[:1].lower() + msg[1:]
            raise loc.error(f"invalid JSON at line {lineno} column {colno}: {msg}") from exc
        raise loc.error(f"invalid JSON: {exc}") from exc
    return as_object(value, loc)


def _object_hook(loc: Loc) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise loc.error(f"invalid JSON: duplicate key {show(key)}")
                seen.add(key)
        return obj

    return hook


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _parse_int(text: str) -> int:
    # Python refuses >4300 digits with a message about sys.set_int_max_str_digits(); no manifest
    # integer needs more than 64 bits, so refuse early with a clear message.
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"integer {text[:20]}... is too long")
    return int(text)


def as_object(value: Any, loc: Loc) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise loc.error("must be a JSON object")
    return value


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def req_str(obj: Mapping[str, Any], key: str, loc: Loc, *, allow_empty: bool = False) -> str:
    value = opt_str(obj, key, loc)
    if value is None:
        raise loc.key(key).error("is required")
    if not value and not allow_empty:
        raise loc.key(key).error("must not be empty")
    return value


def opt_str(obj: Mapping[str, Any], key: str, loc: Loc) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise loc.key(key).error(f"must be a string, not {show(value)}")
    if "\x00" in value:
        raise loc.key(key).error("must not contain a NUL character")
    return value


def opt_bool(obj: Mapping[str, Any], key: str, loc: Loc) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise loc.key(key).error(f"must be true or false, not {show(value)}")


def check_int(value: Any, loc: Loc, low: int, high: int) -> int:
    if not is_int(value):
        raise loc.error(f"must be an integer, not {show(value)}")
    if not low <= value <= high:
        raise loc.error(f"{value} is out of range ({low}..{high})")
    return int(value)


def opt_int(obj: Mapping[str, Any], key: str, loc: Loc, low: int, high: int) -> int | None:
    value = obj.get(key)
    return None if value is None else check_int(value, loc.key(key), low, high)


def req_int(obj: Mapping[str, Any], key: str, loc: Loc, low: int, high: int) -> int:
    value = opt_int(obj, key, loc, low, high)
    if value is None:
        raise loc.key(key).error("is required")
    return value


def items(obj: Mapping[str, Any], key: str, loc: Loc) -> list[tuple[Loc, Any]]:
    """The entries of an optional list field (absent or null: empty), each with its location."""
    value = obj.get(key)
    if value is None:
        return []
    where = loc.key(key)
    if not isinstance(value, list):
        raise where.error("must be a list")
    if len(value) > MAX_LIST_ENTRIES:
        raise where.error(f"too many entries ({len(value)}, at most {MAX_LIST_ENTRIES})")
    return [(where.index(i), item) for i, item in enumerate(value)]


def objects(obj: Mapping[str, Any], key: str, loc: Loc) -> list[tuple[Loc, Mapping[str, Any]]]:
    return [(where, as_object(item, where)) for where, item in items(obj, key, loc)]


def str_list(obj: Mapping[str, Any], key: str, loc: Loc) -> tuple[str, ...]:
    out: list[str] = []
    for where, item in items(obj, key, loc):
        if not isinstance(item, str):
            raise where.error(f"must be a string, not {show(item)}")
        if "\x00" in item:
            raise where.error("must not contain a NUL character")
        out.append(item)
    return tuple(out)


def str_map(obj: Mapping[str, Any], key: str, loc: Loc) -> tuple[tuple[str, str], ...]:
    """An optional object of string values (``userAnnotations``, ``userLabels``) as pairs."""
    value = obj.get(key)
    if value is None:
        return ()
    where = loc.key(key)
    if not isinstance(value, Mapping):
        raise where.error("must be a JSON object")
    if len(value) > MAX_LIST_ENTRIES:
        raise where.error(f"too many entries ({len(value)}, at most {MAX_LIST_ENTRIES})")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise where.key(str(k)).error(f"must be a string, not {show(v)}")
    return tuple(value.items())


def check_abs_path(value: str, loc: Loc) -> str:
    if not value.startswith("/"):
        raise loc.error(f"{show(value)} is not an absolute path")
    return value


def name_values(
    obj: Mapping[str, Any],
    key: str,
    loc: Loc,
    check_name: Callable[[str, str], str],
    what: str,
) -> list[tuple[str, str]]:
    """A list of ``{"name", "value"}`` objects with valid, unique names (labels, env...)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for where, item in objects(obj, key, loc):
        name = check_name(req_str(item, "name", where), str(where.key("name")))
        if name in seen:
            raise where.key("name").error(f"duplicate {what} {show(name)}")
        seen.add(name)
        out.append((name, req_str(item, "value", where, allow_empty=True)))
    return out


def check_unique(named: Iterable[tuple[Loc, str]], what: str) -> None:
    seen: set[str] = set()
    for where, name in named:
        if name in seen:
            raise where.error(f"duplicate {what} {show(name)}")
        seen.add(name)


def dump_json(document: Mapping[str, Any], pretty: bool) -> bytes:
    if pretty:
        return jsonio.dumps(document, indent=4, ensure_ascii=False).encode() + b"\n"
    return jsonio.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def name_value_dicts(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]
