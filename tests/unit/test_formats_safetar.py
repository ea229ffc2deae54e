"""rkt.formats.safetar: hostile archives are refused and nothing escapes the destination."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from rkt.errors import ArchiveError
from rkt.formats.safetar import extract_tar
from rkt.formats.tarstream import TarEntry, TarReader
from tests.conftest import require

Member = tuple[tarfile.TarInfo, bytes | None]


def needs_root() -> None:
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        require(False, "needs root")


def info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    member.mtime = 1_000_000
    for key, value in fields.items():
        setattr(member, key, value)
    return member


def f(name: str, data: bytes = b"data", **fields: object) -> Member:
    return info(name, size=len(data), **fields), data


def d(name: str, **fields: object) -> Member:
    return info(name, tarfile.DIRTYPE, **fields), None


def sym(name: str, target: str) -> Member:
    return info(name, tarfile.SYMTYPE, linkname=target), None


def hard(name: str, target: str) -> Member:
    return info(name, tarfile.LNKTYPE, linkname=target), None


def make_tar(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory outside dest that hostile archives aim at; it must stay empty."""
    path = tmp_path / "sentinel"
    path.mkdir()
    return path


def extract(data: bytes, dest: Path, **kwargs: object) -> object:
    return extract_tar(io.BytesIO(data), dest, **kwargs)  # type: ignore[arg-type]


def test_extract_tar_writes_members_and_counts_them(dest: Path) -> None:
    data = make_tar([d("etc"), f("etc/hosts", b"127.0.0.1\n"), sym("bin", "usr/bin"), f("a/b/c")])
    stats = extract(data, dest)
    assert (dest / "etc/hosts").read_bytes() == b"127.0.0.1\n"
    assert os.readlink(dest / "bin") == "usr/bin"
    assert (dest / "a/b/c").read_bytes() == b"data"
    assert stats.entries == 4  # type: ignore[attr-defined]
    assert stats.bytes_written == 14  # type: ignore[attr-defined]


def test_dotdot_member_is_refused(dest: Path, sentinel: Path) -> None:
    with pytest.raises(ArchiveError, match=r'"\.\./sentinel/evil": "\.\." in member names'):
        extract(make_tar([f("../sentinel/evil")]), dest)
    assert not any(sentinel.iterdir())


def test_absolute_member_is_refused(dest: Path, sentinel: Path) -> None:
    with pytest.raises(ArchiveError, match="absolute member names are not allowed"):
        extract(make_tar([f(f"{sentinel}/evil")]), dest)
    assert not any(sentinel.iterdir())


def test_dotdot_after_strip_prefix_is_refused(dest: Path, sentinel: Path) -> None:
    with pytest.raises(ArchiveError, match=r'"\.\." in member names'):
        extract(make_tar([f("rootfs/../../sentinel/evil")]), dest, strip_prefix="rootfs")
    assert not any(sentinel.iterdir())


def test_write_through_symlink_is_refused(dest: Path, sentinel: Path) -> None:
    data = make_tar([d("rootfs"), sym("rootfs/link", str(sentinel)), f("rootfs/link/file")])
    with pytest.raises(ArchiveError, match='"rootfs/link/file": parent "link" is a symlink'):
        extract(data, dest, strip_prefix="rootfs")
    assert not any(sentinel.iterdir())
    assert os.readlink(dest / "link") == str(sentinel)


def test_symlink_dotdot_chain_is_not_followed(tmp_path: Path, sentinel: Path) -> None:
    dest = sentinel.parent / "a" / "b"
    data = make_tar([sym("up", ".."), sym("up2", "../.."), f("up/x"), f("up2/sentinel/y")])
    with pytest.raises(ArchiveError, match="is a symlink"):
        extract(data, dest)
    data = make_tar(
        [sym("up2", "../.."), d("sub"), sym("sub/up", "../up2"), f("sub/up/sentinel/y")]
    )
    with pytest.raises(ArchiveError, match="is a symlink"):
        extract(data, dest)
    assert not any(sentinel.iterdir())
    assert not (dest.parent / "x").exists()


def test_symlink_with_any_target_is_created_not_followed(dest: Path) -> None:
    extract(make_tar([sym("bin/sh", "/bin/busybox"), sym("loop", "loop")]), dest)
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.readlink(dest / "loop") == "loop"


def test_hard_link_to_absolute_path_is_refused(dest: Path) -> None:
    with pytest.raises(ArchiveError, match='"/etc/passwd": absolute member names'):
        extract(make_tar([hard("passwd", "/etc/passwd")]), dest)
    assert not (dest / "passwd").exists()


def test_hard_link_with_dotdot_is_refused(dest: Path, sentinel: Path) -> None:
    (sentinel.parent / "x").write_bytes(b"secret")
    with pytest.raises(ArchiveError, match=r'"\.\./\.\./x": "\.\." in member names'):
        extract(make_tar([hard("x", "../../x")]), dest)
    assert not (dest / "x").exists()


def test_hard_link_through_symlinked_parent_is_refused(dest: Path, sentinel: Path) -> None:
    (sentinel / "secret").write_bytes(b"secret")
    data = make_tar([sym("s", str(sentinel)), hard("stolen", "s/secret")])
    with pytest.raises(ArchiveError, match="is not an extracted file"):
        extract(data, dest)
    assert not (dest / "stolen").exists()


def test_hard_link_to_symlink_or_missing_file_is_refused(dest: Path) -> None:
    with pytest.raises(ArchiveError, match="is not an extracted file"):
        extract(make_tar([sym("s", "/etc/passwd"), hard("h", "s")]), dest)
    with pytest.raises(ArchiveError, match="is not an extracted file"):
        extract(make_tar([hard("h", "nothing")]), dest)


def test_hard_link_to_extracted_file_shares_the_inode(dest: Path) -> None:
    extract(make_tar([f("bin/busybox", b"elf"), hard("bin/sh", "bin/busybox")]), dest)
    assert (dest / "bin/sh").stat().st_ino == (dest / "bin/busybox").stat().st_ino


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_device_nodes_are_refused(dest: Path, kind: bytes) -> None:
    data = make_tar([(info("dev/null", kind, devmajor=1, devminor=3), None)])
    with pytest.raises(ArchiveError, match='"dev/null": device nodes are not allowed'):
        extract(data, dest)
    assert not (dest / "dev/null").exists()


def test_fifos_are_allowed(dest: Path) -> None:
    extract(make_tar([(info("run/fifo", tarfile.FIFOTYPE, mode=0o620), None)]), dest)
    st = os.lstat(dest / "run/fifo")
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620


def test_absurdly_long_names_are_refused(dest: Path) -> None:
    with pytest.raises(ArchiveError, match="too long"):
        extract(make_tar([f("a/" * 2100 + "x")]), dest)


def test_gnu_long_names_and_pax_names_are_read(dest: Path) -> None:
    long_name = "d" * 150 + "/" + "n" * 150
    extract(make_tar([f(long_name, b"gnu")], fmt=tarfile.GNU_FORMAT), dest)
    assert (dest / long_name).read_bytes() == b"gnu"
    extract(make_tar([f(long_name + "é", b"pax")]), dest)
    assert (dest / (long_name + "é")).read_bytes() == b"pax"


def test_truncated_tar_is_refused(dest: Path) -> None:
    data = make_tar([f("big", b"x" * 5000)])
    with pytest.raises(ArchiveError, match="truncated tar archive"):
        extract(data[:2048], dest)


def test_corrupt_header_is_refused(dest: Path) -> None:
    data = bytearray(make_tar([f("file")]))
    data[0] ^= 0xFF
    with pytest.raises(ArchiveError, match="checksum"):
        extract(bytes(data), dest)


def test_nonempty_directory_replaced_by_file(dest: Path) -> None:
    extract(make_tar([d("x"), f("x/y/z"), f("x", b"now a file"), f("x2/a")]), dest)
    assert (dest / "x").read_bytes() == b"now a file"


def test_symlink_to_directory_replaced_by_directory_is_not_followed(
    dest: Path, sentinel: Path
) -> None:
    extract(make_tar([sym("lib", str(sentinel)), d("lib"), f("lib/libc.so")]), dest)
    assert (dest / "lib").is_dir() and not (dest / "lib").is_symlink()
    assert (dest / "lib/libc.so").exists()
    assert not any(sentinel.iterdir())


def test_replacing_a_hard_linked_file_leaves_the_other_link(dest: Path) -> None:
    extract(make_tar([f("a", b"old"), hard("b", "a"), f("b", b"new")]), dest)
    assert (dest / "a").read_bytes() == b"old"
    assert (dest / "b").read_bytes() == b"new"


def test_file_replaced_by_symlink_and_back(dest: Path, sentinel: Path) -> None:
    extract(make_tar([f("x"), sym("x", str(sentinel / "t")), f("x", b"again")]), dest)
    assert (dest / "x").read_bytes() == b"again" and not (dest / "x").is_symlink()
    assert not any(sentinel.iterdir())


def test_setuid_is_kept_only_when_stored(dest: Path) -> None:
    extract(make_tar([f("su", mode=0o4755), f("plain", mode=0o755), d("tmp", mode=0o1777)]), dest)
    assert stat.S_IMODE(os.lstat(dest / "su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(dest / "plain").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777


def test_directory_modes_apply_after_contents(dest: Path) -> None:
    extract(
        make_tar([d("ro", mode=0o555), f("ro/file"), d("ro/sub", mode=0o500), f("ro/sub/g")]), dest
    )
    assert stat.S_IMODE(os.lstat(dest / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(dest / "ro/sub").st_mode) == 0o500
    assert (dest / "ro/sub/g").read_bytes() == b"data"
    os.chmod(dest / "ro/sub", 0o755)
    os.chmod(dest / "ro", 0o755)


def test_mtimes_are_kept_for_files_symlinks_and_directories(dest: Path) -> None:
    link = info("dir/link", tarfile.SYMTYPE, linkname="/nowhere", mtime=333)
    extract(make_tar([d("dir", mtime=111), f("dir/file", mtime=222), (link, None)]), dest)
    assert os.lstat(dest / "dir").st_mtime == 111
    assert os.lstat(dest / "dir/file").st_mtime == 222
    assert os.lstat(dest / "dir/link").st_mtime == 333


@pytest.mark.root
def test_owners_are_kept_as_root_and_setuid_survives_chown(dest: Path) -> None:
    needs_root()
    members = [
        d("home", uid=1000, gid=1000),
        f("home/su", uid=1234, gid=5678, mode=0o6755),
        sym("home/l", "x"),
    ]
    members[2][0].uid = 42
    extract(make_tar(members), dest, same_owner=True)
    st = os.lstat(dest / "home/su")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(st.st_mode) == 0o6755
    assert os.lstat(dest / "home").st_uid == 1000
    assert os.lstat(dest / "home/l").st_uid == 42


def _supports_user_xattrs(path: Path) -> bool:
    probe = path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    finally:
        probe.unlink()
    return True


def test_pax_xattrs_are_applied(tmp_path: Path, dest: Path) -> None:
    if not _supports_user_xattrs(tmp_path):
        require(False, "no user xattrs on this filesystem")
    member, data = f("file", pax_headers={"SCHILY.xattr.user.rkt": "value"})
    folder, _ = d("dir", pax_headers={"SCHILY.xattr.user.dir": "d"})
    extract(make_tar([(member, data), (folder, None)]), dest)
    assert os.getxattr(dest / "file", "user.rkt") == b"value"
    assert os.getxattr(dest / "dir", "user.dir") == b"d"


def test_path_filter_skips_members(dest: Path) -> None:
    stats = extract(
        make_tar([f("bin/sh"), f("etc/passwd")]), dest, path_filter=lambda p: p.startswith("bin")
    )
    assert (dest / "bin/sh").exists() and not (dest / "etc").exists()
    assert stats.skipped == 1  # type: ignore[attr-defined]


def test_on_entry_can_consume_members(dest: Path) -> None:
    seen: dict[str, bytes] = {}

    def take_manifest(entry: TarEntry, reader: TarReader) -> bool:
        if entry.name == "manifest":
            seen[entry.name] = reader.read_body()
            return True
        return False

    data = make_tar([f("manifest", b"{}"), d("rootfs"), f("rootfs/x")])
    extract(data, dest, strip_prefix="rootfs", on_entry=take_manifest)
    assert seen == {"manifest": b"{}"}
    assert (dest / "x").exists() and not (dest / "manifest").exists()


def test_members_outside_strip_prefix_are_skipped(dest: Path) -> None:
    extract(make_tar([f("manifest"), f("rootfs/x"), f("rootfsx/y")]), dest, strip_prefix="rootfs")
    assert sorted(os.listdir(dest)) == ["x"]


def _with_field(data: bytes, start: int, value: bytes) -> bytes:
    header = bytearray(data[:512])
    header[start : start + len(value)] = value
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + data[512:]


def test_negative_base256_size_is_refused(dest: Path) -> None:
    data = _with_field(make_tar([f("file")], fmt=tarfile.GNU_FORMAT), 124, b"\xff" * 12)
    with pytest.raises(ArchiveError, match="negative size"):
        extract(data, dest)


def test_base256_uid_is_read(dest: Path) -> None:
    data = _with_field(
        make_tar([f("file")], fmt=tarfile.GNU_FORMAT), 108, b"\x80" + bytes(6) + b"\x07"
    )
    entry = next(iter(TarReader(io.BytesIO(data))))
    assert entry.uid == 7


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mtime": 2**80}, "modification time out of range"),
        ({"pax_headers": {"mtime": "1" + "0" * 25}}, "modification time out of range"),
        ({"uid": 99_999_999_999_999}, "owner beyond the largest uid/gid"),
        ({"pax_headers": {"gid": str(2**32)}}, "owner beyond the largest uid/gid"),
    ],
)
def test_header_values_beyond_what_the_system_holds_are_refused(
    dest: Path, fields: dict[str, object], message: str
) -> None:
    """One line naming the member, not an OverflowError out of utime or chown."""
    with pytest.raises(ArchiveError, match=f'"big": {message}'):
        extract(make_tar([f("big", **fields)]), dest)


def test_overlay_metadata_from_an_archive_is_dropped_other_xattrs_kept(dest: Path) -> None:
    """Every tree rkt writes may be an overlay's lower dir, where the kernel follows
    ``trusted.overlay.*`` (opaque dirs, redirects): an archive must not bring its own."""
    needs_root()
    xattrs = {
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
        "SCHILY.xattr.user.kept": "v",
    }
    extract(make_tar([d("dir", pax_headers=xattrs), f("dir/file", pax_headers=xattrs)]), dest)
    for path in (dest / "dir", dest / "dir" / "file"):
        assert os.listxattr(path) == ["user.kept"]
