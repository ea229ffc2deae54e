"""The character-class checks every pod start makes, without ``re``.

``re`` imports ``enum``, ``functools`` and ``collections`` and compiles each pattern on first use:
~2 ms of every ``rkt run`` here, for patterns that are one character class repeated, or runs of
one class joined by single separators. These functions are those patterns written out, ASCII
only as the patterns are; ``tests/unit/test_textcheck.py`` holds each against its regular
expression on a corpus of awkward strings. Patterns that are really patterns (SemVer, Go
durations, URL schemes) stay regular expressions, compiled where they are needed.

Imports nothing.
"""

from __future__ import annotations

_DIGITS = frozenset("0123456789")
_LOWER_HEX = frozenset("0123456789abcdef")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _LETTERS | _DIGITS


def joined_runs(text: str, separators: str) -> bool:
    """``[a-z0-9]+([SEPARATORS][a-z0-9]+)*``: runs of lower-case letters and digits joined by
    single separators."""
    after_separator = True  # the start: a run must come first
    for char in text:
        if char in _LOWER_ALNUM:
            after_separator = False
        elif char in separators and not after_separator:
            after_separator = True
        else:
            return False
    return not after_separator


def is_ac_name(text: str) -> bool:
    """appc types.md "AC Name": ``[a-z0-9]+(-[a-z0-9]+)*``."""
    return joined_runs(text, "-")


def is_ac_identifier(text: str) -> bool:
    """appc types.md "AC Identifier": ``[a-z0-9]+([-._~/][a-z0-9]+)*``."""
    return joined_runs(text, "-._~/")


def ac_name_from(text: str) -> str:
    """Every run of characters other than ``[a-z0-9]`` replaced by one "-", leading and trailing
    ones dropped (``My_App!`` -> ``my-app`` after lower-casing by the caller)."""
    out: list[str] = []
    pending = False
    for char in text:
        if char in _LOWER_ALNUM:
            if pending and out:
                out.append("-")
            out.append(char)
            pending = False
        else:
            pending = True
    return "".join(out)


def is_lower_hex(text: str) -> bool:
    """``[0-9a-f]+``."""
    return bool(text) and _LOWER_HEX.issuperset(text)


def is_uuid(text: str) -> bool:
    """A UUID in its canonical lower-case form: ``8-4-4-4-12`` hex digits. (``rkt list`` checks
    every pod directory's name: set operations, not a loop per character.)"""
    return (
        len(text) == 36
        and text[8] == text[13] == text[18] == text[23] == "-"
        and _LOWER_HEX.issuperset(text.replace("-", ""))
        and text.count("-") == 4
    )


def is_env_name(text: str) -> bool:
    """An environment variable name as appc accepts it: ``[A-Za-z_][A-Za-z0-9_.-]*``."""
    return (
        bool(text)
        and (text[0] in _LETTERS or text[0] == "_")
        and all(char in _ALNUM or char in "_.-" for char in text)
    )


def is_identifier(text: str) -> bool:
    """A C identifier (CNI_ARGS keys): ``[A-Za-z_][A-Za-z0-9_]*``."""
    return (
        bool(text)
        and (text[0] in _LETTERS or text[0] == "_")
        and all(char in _ALNUM or char == "_" for char in text)
    )


def is_cni_name(text: str) -> bool:
    """A CNI network or plugin type name: ``[A-Za-z0-9][A-Za-z0-9_.-]*``."""
    return (
        bool(text) and text[0] in _ALNUM and all(char in _ALNUM or char in "_.-" for char in text)
    )


def is_hostname(text: str) -> bool:
    """What rkt accepts for ``--hostname``: ``[A-Za-z0-9][A-Za-z0-9.-]{0,62}``."""
    return (
        0 < len(text) <= 63
        and text[0] in _ALNUM
        and all(char in _ALNUM or char in ".-" for char in text)
    )


def is_octal_mode(text: str) -> bool:
    """A volume mode: ``[0-7]{3,4}``."""
    return 3 <= len(text) <= 4 and all(char in "01234567" for char in text)
