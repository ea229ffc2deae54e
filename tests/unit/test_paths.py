"""rkt.paths.Path behaves as pathlib.Path for everything rkt does with paths."""

from __future__ import annotations

import os
import pathlib
import pickle
from typing import Any

import pytest

from rkt.paths import Path
from tests.conftest import bare_python

SAMPLES = [
    "", ".", "..", "/", "//", "///", "a", "a/", "a//b", "./a", "a/.", "a/./b", "/a/b/", "//a/b",
    "///a", "/a/../b", "../a", "a/..", ".hidden", "/x/.hidden", "a.tar.gz", "a.", "/a/b.c/d",
    "..a", "a..b", "/a/./", "a/b/c/d/e", "/ä/€", "a b/c",
]  # fmt: skip


def _same(ours: Any, theirs: Any) -> None:
    if isinstance(theirs, pathlib.PurePath):
        assert isinstance(ours, Path) and str(ours) == str(theirs)
    elif isinstance(theirs, (list, tuple)) and theirs and isinstance(theirs[0], pathlib.PurePath):
        assert [str(p) for p in ours] == [str(p) for p in theirs]
    else:
        assert ours == theirs


@pytest.mark.parametrize("text", SAMPLES)
def test_pure_properties_are_pathlibs(text: str) -> None:
    ours, theirs = Path(text), pathlib.PurePosixPath(text)
    for attr in ("parts", "root", "name", "suffix", "stem"):
        _same(getattr(ours, attr), getattr(theirs, attr))
    _same(ours.parent, theirs.parent)
    _same(list(ours.parents), list(theirs.parents))
    assert str(ours) == str(theirs) == os.fspath(ours) == ours.as_posix()
    assert ours.is_absolute() == theirs.is_absolute()
    assert ours == theirs and theirs == ours and hash(ours) == hash(theirs)


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("other", ["b", "b/c", "/abs", "", ".", "..", "b/", Path("p/q")])
def test_joining_is_pathlibs(text: str, other: str | Path) -> None:
    theirs = pathlib.PurePosixPath(text) / os.fspath(other)
    _same(Path(text) / other, theirs)
    _same(Path(text).joinpath(other, "z"), theirs / "z")
    _same(Path(text, other), theirs)
    if isinstance(other, str):
        _same(other / Path(text), other / pathlib.PurePosixPath(text))


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("call", ["with_name", "with_suffix", "relative_to", "is_relative_to"])
@pytest.mark.parametrize("arg", ["x", ".y", "", ".", "/", "a", "/a", "a/b", "/a/b", "//"])
def test_derived_paths_and_their_errors_are_pathlibs(text: str, call: str, arg: str) -> None:
    if call == "with_suffix" and not arg and pathlib.PurePosixPath(text).stem == ".":
        return  # pathlib makes a "." component of "..a" (not a path anyone has); rkt refuses
    outcomes = []
    for path in (Path(text), pathlib.PurePosixPath(text)):
        try:
            outcomes.append(("ok", str(getattr(path, call)(arg))))
        except ValueError as exc:
            outcomes.append(("ValueError", str(exc).replace("Path(", "PurePosixPath(")))
    assert outcomes[0][0] == outcomes[1][0]
    if outcomes[0][0] == "ok":
        assert outcomes[0] == outcomes[1]


def test_ordering_and_hashing_match_pathlib_also_across_types() -> None:
    texts = ["/a-b", "/a/b", "/a", "a", "/", "b/c", "/a/b/c", "..", "/ab"]
    assert [str(p) for p in sorted(Path(t) for t in texts)] == [
        str(p) for p in sorted(pathlib.PurePosixPath(t) for t in texts)
    ]
    assert sorted([Path("/b"), pathlib.PurePosixPath("/a")]) == [Path("/a"), Path("/b")]
    assert Path("/a") in {pathlib.PurePosixPath("/a")} and pathlib.Path("/a") in {Path("/a")}
    assert Path("/a") != "/a" and Path("/a") != pathlib.PureWindowsPath("/a")
    assert pickle.loads(pickle.dumps(Path("/a/b"))) == Path("/a/b")


def test_filesystem_methods(tmp_path: pathlib.Path) -> None:
    base = Path(tmp_path)
    deep = base / "x" / "y" / "z"
    with pytest.raises(FileNotFoundError):
        deep.mkdir()
    deep.mkdir(parents=True)
    deep.mkdir(parents=True, exist_ok=True)
    with pytest.raises(FileExistsError):
        deep.mkdir()
    f = deep / "f.txt"
    assert (
        f.write_text("héllo") == 5
        and f.read_text() == "héllo"
        and f.read_bytes() == "héllo".encode()
    )
    assert f.write_bytes(b"\x00\x01") == 2 and f.read_bytes() == b"\x00\x01"
    with f.open("a") as out:
        out.write("z")
    assert f.read_bytes() == b"\x00\x01z" and f.stat().st_size == 3
    assert f.exists() and f.is_file() and not f.is_dir() and deep.is_dir() and not f.is_symlink()
    assert not (f / "below").exists() and not (base / "nope").is_dir()
    link = base / "link"
    link.symlink_to(f)
    assert link.is_symlink() and link.resolve() == f
    assert link.stat().st_ino == f.stat().st_ino  # followed
    assert link.stat(follow_symlinks=False).st_ino != f.stat().st_ino  # the link itself
    assert sorted(p.name for p in base.iterdir()) == ["link", "x"]
    assert [p.relative_to(base) for p in base.glob("x/*/z")] == [Path("x/y/z")]
    moved = f.replace(base / "g")
    assert moved == base / "g" and not f.exists() and moved.replace(base / "h") == base / "h"
    (base / "h").chmod(0o600)
    assert (base / "h").stat().st_mode & 0o777 == 0o600
    t = base / "t"
    t.touch()
    t.touch()
    with pytest.raises(FileExistsError):
        t.touch(exist_ok=False)
    t.unlink()
    t.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        t.unlink()
    (base / "e").mkdir()
    (base / "e").rmdir()
    assert Path.cwd() == pathlib.Path.cwd()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain\n",
        b"dos\r\nlines\r\n",
        b"old\rmac\r",
        b"mixed\r\n\r\n\rx",
        "h\u00e9llo".encode(),
        b"\xff\xfe bad",
        b"x" * 200_000,
    ],
)
def test_whole_file_reads_are_pathlibs(tmp_path: pathlib.Path, data: bytes) -> None:
    f = tmp_path / "f"
    f.write_bytes(data)
    ours, theirs = Path(f), f
    assert ours.read_bytes() == theirs.read_bytes()
    for encoding, errors in (
        (None, None),
        ("latin-1", None),
        ("utf-8", "replace"),
        ("locale", None),
    ):
        try:
            expected: object = theirs.read_text(encoding=encoding, errors=errors)
        except UnicodeDecodeError as exc:
            expected = type(exc)
        try:
            got: object = ours.read_text(encoding=encoding, errors=errors)
        except UnicodeDecodeError as exc:
            got = type(exc)
        assert got == expected


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
def test_whole_file_writes_are_pathlibs(tmp_path: pathlib.Path, newline: str | None) -> None:
    text = "one\ntwo\r\nthr\u00e9e\n"
    assert Path(tmp_path / "a").write_text(text, newline=newline) == (
        (tmp_path / "b").write_text(text, newline=newline)
    )
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert Path(tmp_path / "a").write_text(text, encoding="utf-16") == len(text)
    assert Path(tmp_path / "a").read_text(encoding="utf-16") == text.replace("\r\n", "\n")
    import array

    numbers = array.array("i", [1, 2, 3])
    assert Path(tmp_path / "c").write_bytes(numbers) == (tmp_path / "d").write_bytes(numbers)
    assert (tmp_path / "c").read_bytes() == (tmp_path / "d").read_bytes()


def test_whole_file_errors_are_pathlibs(tmp_path: pathlib.Path) -> None:
    def same_error(target: pathlib.Path, method: str, *args: object) -> None:
        outcomes = []
        for path in (Path(target), target):
            with pytest.raises(Exception) as info:
                getattr(path, method)(*args)
            outcomes.append((type(info.value), str(info.value)))
        assert outcomes[0] == outcomes[1]

    for target in (tmp_path, tmp_path / "missing", tmp_path / "missing" / "below"):
        same_error(target, "read_bytes")
        same_error(target, "read_text")
    for target in (tmp_path, tmp_path / "missing" / "below"):  # a directory, no parent
        same_error(target, "write_bytes", b"x")
        same_error(target, "write_text", "x")
    same_error(tmp_path / "f", "write_text", b"x")
    same_error(tmp_path / "f", "write_text", "x", None, None, "\t")
    same_error(tmp_path / "f", "write_bytes", "x")
    status = Path("/proc/self/status").read_text()  # st_size 0: read to the end all the same
    assert status.startswith("Name:") and "\nPid:" in status


def test_paths_module_imports_no_pathlib_or_re() -> None:
    code = (
        "import sys\nfrom rkt.paths import Path\n"
        "p = Path('/tmp') / 'a' / 'b.c'\nprint(p.parent.exists(), p.suffix)\n"
        "print('pathlib' in sys.modules, 're' in sys.modules)"
    )
    assert bare_python(code).split() == ["False", ".c", "False", "False"]
