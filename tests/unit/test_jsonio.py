"""rkt.jsonio gives json's results without importing json."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rkt import jsonio
from tests.conftest import bare_python

DOCUMENTS: list[Any] = [
    {"acKind": "PodManifest", "apps": [{"name": "a", "exec": ["/bin/sh", "-c", "echo é \u2603"]}]},
    [1, -2, 3.5, 1e300, 0.1, True, False, None, "", '\x00\x1f"\\/\n\t'],
    {"z": 1, "a": {"b": [{}, []]}, "ü": "\ud83d\ude00"},
    "plain",
    12345678901234567890,
    float("inf"),
]


@pytest.mark.parametrize("doc", DOCUMENTS)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"sort_keys": True},
        {"ensure_ascii": False},
        {"separators": (",", ":")},
        {"indent": 2},
    ],
)
def test_dumps_is_json_dumps_byte_for_byte(doc: Any, options: dict[str, Any]) -> None:
    assert jsonio.dumps(doc, **options) == json.dumps(doc, **options)


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_loads_reads_what_json_writes(doc: Any) -> None:
    text = json.dumps(doc, indent=1)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text.encode())
    assert jsonio.loads(b"\xef\xbb\xbf" + text.encode()) == json.loads(text)
    assert jsonio.loads(text.encode("utf-16")) == json.loads(text)
    assert jsonio.loads(f" \n\t{text}\r\n ") == json.loads(text)


def test_loads_hooks_are_called_as_json_calls_them() -> None:
    text = '{"a": 1, "a": [2, NaN]}'
    seen: list[str] = []
    kwargs: dict[str, Any] = {
        "object_pairs_hook": lambda pairs: ("pairs", pairs),
        "parse_int": lambda s: int(s) * 10,
        "parse_constant": lambda s: seen.append(s) or 0,
    }
    assert jsonio.loads(text, **kwargs) == json.loads(text, **kwargs)
    assert seen == ["NaN", "NaN"]


@pytest.mark.parametrize(
    "text", ["", "   ", "{", '{"a": 1} x', "[1,]", '{"a" 1}', "01", '"\x01"', "nul", '{"a": 1}{}']
)
def test_loads_refuses_what_json_refuses_with_the_same_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsonio.loads(text)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def test_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsonio.dumps({"a": {1}})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonio.dumps(loop)


def test_jsonio_does_not_import_json_or_re() -> None:
    code = (
        "import sys\nfrom rkt import jsonio\n"
        "jsonio.loads(jsonio.dumps({'a': [1, 2.5, None]}, sort_keys=True))\n"
        "print('json' in sys.modules, 're' in sys.modules)"
    )
    assert bare_python(code).split() == ["False", "False"]


def test_refused_documents_raise_json_s_error_in_a_process_without_json() -> None:
    """CPython 3.11's C scanner raises its JSONDecodeError only when ``json.decoder`` is
    already loaded (else a SystemError, "returned NULL without setting an exception"); the
    start path does not load it. Every refusal is still json's ValueError, with json's
    message, and a document nested too deeply is one as well (not a RecursionError)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    docs = ["{nope", '{"a":1,', '{"a": [1, }', '"\\x"', "[" * 100_000, "[1,]", "{}x"]
    program = (
        f"import sys\nsys.path.insert(0, {str(REPO / 'src')!r})\nfrom rkt import jsonio\n"
        "assert 'json' not in sys.modules\n"
        f"for doc in {docs!r}:\n"
        "    try:\n"
        "        jsonio.loads(doc)\n"
        "    except ValueError as exc:\n"
        "        print(type(exc).__name__, str(exc))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", program], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(docs)
    assert all(line.startswith("JSONDecodeError ") for line in lines)
    for doc, line in zip(docs[:4], lines, strict=False):
        try:
            json.loads(doc)
        except ValueError as exc:
            assert line == f"JSONDecodeError {exc}"
    assert lines[4].startswith("JSONDecodeError Document nested too deeply")
