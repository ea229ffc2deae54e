"""JSON for the start path through CPython's C codec (``_json``), without the ``json`` package.

``json`` compiles six regular expressions when imported, so it imports ``re`` (and ``enum``,
``functools``, ...): ~1.3 ms of every ``rkt run`` even with ``re`` already loaded. Its one-shot
``loads`` and ``dumps`` are the C scanner and encoder of ``_json`` behind a little Python; this
module is that little Python, with the same results: same parsing (strict, ``NaN`` and
``Infinity`` accepted unless refused by ``parse_constant``, JSON whitespace only), the same
``JSONDecodeError`` (imported from ``json.decoder`` only when a document is refused) and
byte-identical output. ``indent`` and interpreters without ``_json`` go through ``json`` itself.

Imports only ``_json`` (C).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json
except ImportError:  # another interpreter: the json package does it all
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"
TOO_DEEP = "Document nested too deeply"  # the message of a refusal for nesting (no position)
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Decoding:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    __slots__ = (
        "object_hook",
        "object_pairs_hook",
        "parse_constant",
        "parse_float",
        "parse_int",
        "strict",
    )

    def __init__(
        self,
        object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None,
        parse_int: Callable[[str], Any] | None,
        parse_constant: Callable[[str], Any] | None,
    ) -> None:
        self.object_hook = None
        self.object_pairs_hook = object_pairs_hook
        self.parse_float = float
        self.parse_int = parse_int or int
        self.parse_constant = parse_constant or _CONSTANTS.__getitem__
        self.strict = True


_plain_scanner: Any = None


def _decode_error(message: str, document: str, position: int) -> ValueError:
    from json.decoder import JSONDecodeError

    return JSONDecodeError(message, document, position)


def loads(
    data: str | bytes | bytearray,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    parse_int: Callable[[str], Any] | None = None,
    parse_constant: Callable[[str], Any] | None = None,
) -> Any:
    """``json.loads`` of one document; raises ``json.JSONDecodeError`` (a ``ValueError``)."""
    global _plain_scanner
    if _json is None or (
        not isinstance(data, str)
        and (b"\x00" in data[:4] or data[:2] in (b"\xff\xfe", b"\xfe\xff"))
    ):  # no C codec, or bytes in UTF-16/32: json detects the encoding
        import json

        return json.loads(
            data,
            object_pairs_hook=object_pairs_hook,
            parse_int=parse_int,
            parse_constant=parse_constant,
        )
    if isinstance(data, str):
        text = data
    else:
        encoding = "utf-8-sig" if data[:3] == b"\xef\xbb\xbf" else "utf-8"
        text = bytes(data).decode(encoding, "surrogatepass")
    if object_pairs_hook is None and parse_int is None and parse_constant is None:
        if _plain_scanner is None:
            _plain_scanner = _json.make_scanner(_Decoding(None, None, None))  # type: ignore[arg-type]
        scan = _plain_scanner
    else:
        decoding = _Decoding(object_pairs_hook, parse_int, parse_constant)
        scan = _json.make_scanner(decoding)  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration as exc:
        raise _decode_error("Expecting value", text, exc.value) from None
    except RecursionError:
        raise _decode_error(TOO_DEEP, text, start) from None
    except SystemError:
        # CPython 3.11's scanner raises its JSONDecodeError only when json.decoder is loaded
        # already (it looks for it in sys.modules, and without it returns NULL, no exception
        # set): load it and scan again, for the error json itself gives
        import json.decoder

        value, end = scan(text, start)
    rest = text[end:]
    if rest.strip(_WHITESPACE):
        raise _decode_error("Extra data", text, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
    return value


def _not_serializable(value: object) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def dumps(
    value: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    ensure_ascii: bool = True,
    separators: tuple[str, str] | None = None,
) -> str:
    """``json.dumps`` with these options, byte for byte."""
    if indent is not None or _json is None:
        import json

        return json.dumps(
            value,
            indent=indent,
            sort_keys=sort_keys,
            ensure_ascii=ensure_ascii,
            separators=separators,
        )
    item_separator, key_separator = separators or (", ", ": ")
    encode = _json.make_encoder(
        {},  # markers: refuse circular structures, as json does
        _not_serializable,
        _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
        None,
        key_separator,
        item_separator,
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan
    )
    return "".join(encode(value, 0))
