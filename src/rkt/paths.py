"""``Path``: the filesystem paths of rkt, a POSIX subset of ``pathlib.Path`` without its imports.

``pathlib`` imports ``fnmatch`` and with it ``re`` and ``enum``, ``urllib.parse`` and with it
``ipaddress``, and ``ntpath``: ~4 ms of every ``rkt`` command here, which is a tenth of a pod
start (docs/architecture.md, "Paths"). rkt only ever handles POSIX paths, so this class gives
the part of ``pathlib.Path`` that rkt uses, with pathlib's semantics, on top of ``os`` and
``posixpath`` (both loaded by the interpreter itself):

- the same normal form (repeated slashes and ``.`` components dropped, ``..`` kept, a leading
  ``//`` kept, no trailing slash, ``.`` for empty), ``str``, ``os.fspath``, ``/`` and ``joinpath``,
  ``name``, ``parent``, ``parents``, ``parts``, ``root``, ``suffix``, ``stem``, ``with_name``,
  ``with_suffix``, ``relative_to``, ``is_relative_to``, ``is_absolute``, ``as_posix``;
- equality, ordering and hash as pathlib's, also against ``pathlib`` paths (a ``Path`` equals
  the ``PurePosixPath`` of the same path, hashes alike and sorts alike);
- the filesystem methods: ``stat``, ``exists``, ``is_dir``, ``is_file``, ``is_symlink``,
  ``mkdir``, ``rmdir``, ``touch``, ``unlink``, ``replace``, ``symlink_to``, ``resolve``,
  ``chmod``, ``open``, ``read_bytes``, ``read_text``, ``write_bytes``, ``write_text``,
  ``iterdir``, ``cwd``; ``glob`` goes through ``pathlib`` (imported then).

Nothing else: a method rkt starts to use is added here, with its case in the tests.

Functions take ``Path`` or anything ``os.fspath`` accepts, so callers may pass ``pathlib``
paths. Imports only ``os`` and ``stat`` (both loaded at interpreter start).
"""

from __future__ import annotations

import errno as _errno
import os
import posixpath
import stat as _stat
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import IO, Any, Self

    StrPath = str | os.PathLike[str]

# Errors that mean "no such file" to exists() and the is_*() tests, as in pathlib.
_MISSING_ERRNOS = (2, 20, 9, 40)  # ENOENT, ENOTDIR, EBADF, ELOOP


def _normalize(text: str) -> str:
    """pathlib's normal form of one POSIX path string."""
    if (
        text
        and "//" not in text
        and "/./" not in text
        and not text.startswith("./")
        and not text.endswith(("/.", "/"))
        and text != "."
    ) or text == "/":
        return text  # already normal: the common case
    if text.startswith("/"):
        root = "//" if text.startswith("//") and not text.startswith("///") else "/"
    else:
        root = ""
    kept = "/".join(part for part in text.split("/") if part and part != ".")
    return root + kept if root else kept or "."


def _is_pathlib(value: object) -> bool:
    return type(value).__module__ == "pathlib"


class Path:
    """A POSIX filesystem path (see the module docstring)."""

    __slots__ = ("_hash", "_str")

    _str: str
    _hash: int | None

    def __init__(self, *segments: StrPath) -> None:
        if len(segments) == 1:
            self._str = _normalize(os.fspath(segments[0]))
        else:
            joined = ""
            for segment in segments:
                text = os.fspath(segment)
                if text.startswith("/") or not joined:
                    joined = text
                elif text:
                    joined = joined + text if joined.endswith("/") else f"{joined}/{text}"
            self._str = _normalize(joined)
        self._hash = None

    @classmethod
    def _raw(cls, text: str) -> Self:
        """A path from a string already in normal form."""
        path = cls.__new__(cls)
        path._str = text
        path._hash = None
        return path

    # the pure part ---------------------------------------------------------------------------

    def __str__(self) -> str:
        return self._str

    def __fspath__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"Path({self._str!r})"

    def as_posix(self) -> str:
        return self._str

    def __truediv__(self, other: StrPath) -> Self:
        name = other if isinstance(other, str) else os.fspath(other)
        if name and "/" not in name and name != ".":
            base = self._str
            if base == ".":
                return self._raw(name)
            return self._raw(f"{base}{name}" if base in ("/", "//") else f"{base}/{name}")
        return type(self)(self._str, name)

    def __rtruediv__(self, other: StrPath) -> Self:
        return type(self)(other, self._str)

    def joinpath(self, *others: StrPath) -> Self:
        return type(self)(self._str, *others)

    @property
    def parts(self) -> tuple[str, ...]:
        text = self._str
        if text == ".":
            return ()
        if text.startswith("/"):
            root = "//" if text.startswith("//") else "/"
            rest = text[len(root) :]
            return (root, *rest.split("/")) if rest else (root,)
        return tuple(text.split("/"))

    @property
    def root(self) -> str:
        text = self._str
        return ("//" if text.startswith("//") else "/") if text.startswith("/") else ""

    def is_absolute(self) -> bool:
        return self._str.startswith("/")

    @property
    def name(self) -> str:
        text = self._str
        return "" if text == "." else text.rpartition("/")[2]

    @property
    def suffix(self) -> str:
        name = self.name
        index = name.rfind(".")
        return name[index:] if 0 < index < len(name) - 1 else ""

    @property
    def stem(self) -> str:
        name = self.name
        index = name.rfind(".")
        return name[:index] if 0 < index < len(name) - 1 else name

    @property
    def parent(self) -> Self:
        text = self._str
        if text in ("/", "//", "."):
            return self
        head, sep, tail = text.rpartition("/")
        if not sep:
            return self._raw(".")
        if head in ("", "/"):
            return self._raw(text[: len(text) - len(tail)])
        return self._raw(head)

    @property
    def parents(self) -> Sequence[Self]:
        out: list[Self] = []
        path = self
        while True:
            parent = path.parent
            if parent._str == path._str:
                return tuple(out)
            out.append(parent)
            path = parent

    def with_name(self, name: str) -> Self:
        if not self.name:
            raise ValueError(f"{self!r} has an empty name")
        if not name or "/" in name or name == ".":
            raise ValueError(f"Invalid name {name!r}")
        return self.parent / name

    def with_suffix(self, suffix: str) -> Self:
        if "/" in suffix or (suffix and not suffix.startswith(".")) or suffix == ".":
            raise ValueError(f"Invalid suffix {suffix!r}")
        name = self.name
        if not name:
            raise ValueError(f"{self!r} has an empty name")
        old = self.suffix
        return self.with_name((name[: len(name) - len(old)] if old else name) + suffix)

    def relative_to(self, *other: StrPath) -> Self:
        base = type(self)(*other)
        mine, theirs = self.parts, base.parts
        if (not theirs and self.is_absolute()) or mine[: len(theirs)] != theirs:
            raise ValueError(
                f"{str(self)!r} is not in the subpath of {str(base)!r} OR one path is relative "
                "and the other is absolute."
            )
        rest = mine[len(theirs) :]
        return self._raw("/".join(rest) if rest else ".")

    def is_relative_to(self, *other: StrPath) -> bool:
        try:
            self.relative_to(*other)
        except ValueError:
            return False
        return True

    # comparison: as pathlib's, which compares and hashes the parts -----------------------------

    def _other_parts(self, other: object) -> tuple[str, ...] | None:
        if isinstance(other, Path):
            return other.parts
        if _is_pathlib(other):
            return Path(os.fspath(other)).parts  # type: ignore[call-overload]
        return None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Path):
            return self._str == other._str
        if _is_pathlib(other) and type(other).__name__ not in ("PureWindowsPath", "WindowsPath"):
            return self._str == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self.parts)
        return self._hash

    def __lt__(self, other: object) -> bool:
        theirs = self._other_parts(other)
        return NotImplemented if theirs is None else self.parts < theirs

    def __le__(self, other: object) -> bool:
        theirs = self._other_parts(other)
        return NotImplemented if theirs is None else self.parts <= theirs

    def __gt__(self, other: object) -> bool:
        theirs = self._other_parts(other)
        return NotImplemented if theirs is None else self.parts > theirs

    def __ge__(self, other: object) -> bool:
        theirs = self._other_parts(other)
        return NotImplemented if theirs is None else self.parts >= theirs

    # the filesystem ----------------------------------------------------------------------------

    @classmethod
    def cwd(cls) -> Self:
        return cls(os.getcwd())

    def resolve(self, strict: bool = False) -> Self:
        return type(self)(posixpath.realpath(self._str, strict=strict))

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self._str, follow_symlinks=follow_symlinks)

    def _mode(self, follow_symlinks: bool = True) -> int | None:
        try:
            return os.stat(self._str, follow_symlinks=follow_symlinks).st_mode
        except OSError as exc:
            if exc.errno in _MISSING_ERRNOS:
                return None
            raise
        except ValueError:  # an embedded NUL, as in pathlib
            return None

    def exists(self) -> bool:
        return self._mode() is not None

    def is_dir(self) -> bool:
        mode = self._mode()
        return mode is not None and _stat.S_ISDIR(mode)

    def is_file(self) -> bool:
        mode = self._mode()
        return mode is not None and _stat.S_ISREG(mode)

    def is_symlink(self) -> bool:
        mode = self._mode(follow_symlinks=False)
        return mode is not None and _stat.S_ISLNK(mode)

    def iterdir(self) -> Iterator[Self]:
        for name in os.listdir(self._str):
            yield self / name

    def glob(self, pattern: str) -> Iterator[Self]:
        import pathlib

        for found in pathlib.Path(self._str).glob(pattern):
            yield type(self)(str(found))

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        try:
            os.mkdir(self._str, mode)
        except FileNotFoundError:
            if not parents or self.parent == self:
                raise
            self.parent.mkdir(parents=True, exist_ok=True)
            self.mkdir(mode, parents=False, exist_ok=exist_ok)
        except OSError:
            if not exist_ok or not self.is_dir():
                raise

    def rmdir(self) -> None:
        os.rmdir(self._str)

    def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        if exist_ok:
            try:
                os.utime(self._str, None)
            except OSError:
                pass
            else:
                return
        flags = os.O_CREAT | os.O_WRONLY | (0 if exist_ok else os.O_EXCL)
        os.close(os.open(self._str, flags, mode))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            os.unlink(self._str)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, target: StrPath) -> Self:
        os.replace(self._str, target)
        return type(self)(target)

    def symlink_to(self, target: StrPath, target_is_directory: bool = False) -> None:
        os.symlink(target, self._str)

    def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        os.chmod(self._str, mode, follow_symlinks=follow_symlinks)

    def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> IO[Any]:
        if "b" not in mode and encoding is None:
            encoding = "locale"  # what pathlib passes on (io.text_encoding)
        return open(self._str, mode, buffering, encoding, errors, newline)

    # The whole-file methods go straight to os.open/read/write: what pathlib's ``open()`` does
    # on the way (a buffered file object and its fstat, ioctl and lseek, a text layer) costs
    # ~3-5 us a call, and a pod start reads and writes some forty files. The results and the
    # errors are pathlib's (tests/unit/test_paths.py holds them to it).

    def read_bytes(self) -> bytes:
        fd = os.open(self._str, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if _stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(_errno.EISDIR, os.strerror(_errno.EISDIR), self._str)
            chunks = [os.read(fd, st.st_size + 1 if st.st_size else 65536)]
            while chunks[-1]:
                chunks.append(os.read(fd, 65536))
        finally:
            os.close(fd)
        return chunks[0] if len(chunks) == 2 else b"".join(chunks)

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        text = self.read_bytes().decode(_text_encoding(encoding), errors or "strict")
        if "\r" in text:  # universal newlines, as a text file reads
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def write_bytes(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        fd = os.open(self._str, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
        finally:
            os.close(fd)
        return len(view)

    def write_text(
        self,
        data: str,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> int:
        if not isinstance(data, str):
            raise TypeError(f"data must be str, not {data.__class__.__name__}")
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline}")
        text = data.replace("\n", newline) if newline in ("\r", "\r\n") else data
        self.write_bytes(text.encode(_text_encoding(encoding), errors or "strict"))
        return len(data)


_locale_encoding: str | None = None


def _text_encoding(encoding: str | None) -> str:
    """The encoding a text file opened with ``encoding`` uses: None and "locale" mean the
    locale's (UTF-8 in Python's UTF-8 mode), as ``io.TextIOWrapper`` resolves them."""
    global _locale_encoding
    if encoding is not None and encoding != "locale":
        return encoding
    if _locale_encoding is None:
        import _locale  # built in: no import cost

        _locale_encoding = "utf-8" if sys.flags.utf8_mode else _locale.nl_langinfo(_locale.CODESET)
        _locale_encoding = _locale_encoding or "utf-8"
    return _locale_encoding
