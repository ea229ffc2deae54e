"""rkt.formats.aci and ``rkt image build``: one-pass import, layout rules, deterministic builds."""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from rkt.errors import ArchiveError, ManifestError, UsageError
from rkt.formats.aci import build_aci, import_aci, read_aci_manifest
from rkt.formats.compression import COMPRESSIONS
from rkt.formats.treehash import compute_tree_hash
from tests.conftest import require

MANIFEST = json.dumps(
    {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "example.com/hello",
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
    }
).encode()

DECOMPRESS = {
    "none": lambda data: data,
    "gzip": gzip.decompress,
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    src = tmp_path / "image"
    rootfs = src / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (src / "manifest").write_bytes(MANIFEST)
    (rootfs / "bin/busybox").write_bytes(b"\x7fELF" + os.urandom(5000))
    os.chmod(rootfs / "bin/busybox", 0o4755)
    os.link(rootfs / "bin/busybox", rootfs / "bin/ls")
    os.symlink("/bin/busybox", rootfs / "bin/sh")
    (rootfs / "etc/hostname").write_bytes(b"rkt\n")
    os.mkfifo(rootfs / "etc/fifo")
    return src


def add(tar: tarfile.TarFile, name: str, data: bytes | None = None, **fields: object) -> None:
    member = tarfile.TarInfo(name)
    member.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
    member.size = len(data or b"")
    member.mode = 0o755
    for key, value in fields.items():
        setattr(member, key, value)
    tar.addfile(member, io.BytesIO(data) if data is not None else None)


def make_aci(*members: tuple[str, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            add(tar, name, data)
    return out.getvalue()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_build_then_import_round_trips_with_id_of_uncompressed_tar(
    image_dir: Path, tmp_path: Path, compression: str
) -> None:
    out = tmp_path / "hello.aci"
    image_id = build_aci(image_dir, out, compression=compression, mtime=1_500_000_000)
    tar_bytes = DECOMPRESS[compression](out.read_bytes())
    assert image_id == "sha512-" + hashlib.sha512(tar_bytes).hexdigest()
    dest = tmp_path / "rootfs"
    with open(out, "rb") as raw:
        imported = import_aci(raw, dest)
    assert imported.image_id == image_id
    assert imported.compression == compression
    assert imported.manifest_bytes == MANIFEST
    assert imported.uncompressed_size == len(tar_bytes)
    assert imported.tree_hash == compute_tree_hash(dest)
    assert imported.entries == 8
    assert os.stat(dest / "bin/ls").st_ino == os.stat(dest / "bin/busybox").st_ino
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.stat(dest / "bin/busybox").st_mode & 0o7777 == 0o4755
    assert os.stat(dest / "etc/hostname").st_mtime == 1_500_000_000


def test_build_is_byte_for_byte_deterministic(image_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.aci"
    build_aci(image_dir, first, compression="gzip", mtime=0)
    os.utime(image_dir / "rootfs/etc/hostname", (12345, 12345))
    second = tmp_path / "b.aci"
    build_aci(image_dir, second, compression="gzip", mtime=0)
    assert first.read_bytes() == second.read_bytes()


def test_build_writes_sorted_numeric_members_without_names(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.aci"
    build_aci(image_dir, out, mtime=7)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == [
        "manifest",
        "rootfs",
        "rootfs/bin",
        "rootfs/bin/busybox",
        "rootfs/bin/ls",
        "rootfs/bin/sh",
        "rootfs/etc",
        "rootfs/etc/fifo",
        "rootfs/etc/hostname",
    ]
    assert all(m.uname == "" and m.gname == "" and m.mtime == 7 for m in members)
    assert members[4].islnk() and members[4].linkname == "rootfs/bin/busybox"


def test_build_keeps_xattrs(image_dir: Path, tmp_path: Path) -> None:
    target = image_dir / "rootfs/etc/hostname"
    try:
        os.setxattr(target, "user.rkt", b"\xffbinary")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            require(False, "no user xattrs on this filesystem")
        raise
    out = tmp_path / "x.aci"
    build_aci(image_dir, out)
    dest = tmp_path / "rootfs"
    with open(out, "rb") as raw:
        import_aci(raw, dest)
    assert os.getxattr(dest / "etc/hostname", "user.rkt") == b"\xffbinary"


def test_build_refuses_existing_output_unless_overwrite(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.aci"
    out.write_bytes(b"old")
    with pytest.raises(UsageError, match="file exists"):
        build_aci(image_dir, out)
    assert out.read_bytes() == b"old"
    build_aci(image_dir, out, overwrite=True)
    assert out.read_bytes() != b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image", "x.aci"]


def test_build_validates_the_manifest(image_dir: Path, tmp_path: Path) -> None:
    (image_dir / "manifest").write_bytes(b'{"acKind": "ImageManifest", "name": "Bad Name"}')
    with pytest.raises(ManifestError):
        build_aci(image_dir, tmp_path / "x.aci")
    assert not (tmp_path / "x.aci").exists()


def test_build_needs_manifest_and_rootfs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a"):
        build_aci(tmp_path, tmp_path / "x.aci")


def test_import_accepts_dot_slash_names(tmp_path: Path) -> None:
    data = make_aci(
        ("./", None), ("./manifest", MANIFEST), ("./rootfs/", None), ("./rootfs/a", b"a")
    )
    imported = import_aci(io.BytesIO(data), tmp_path / "rootfs")
    assert imported.manifest_bytes == MANIFEST
    assert (tmp_path / "rootfs/a").read_bytes() == b"a"


def test_image_id_covers_trailing_padding(tmp_path: Path) -> None:
    data = make_aci(("manifest", MANIFEST), ("rootfs", None)) + bytes(512 * 40)
    imported = import_aci(io.BytesIO(data), None)
    assert imported.image_id == "sha512-" + hashlib.sha512(data).hexdigest()
    assert imported.uncompressed_size == len(data)
    assert imported.tree_hash is None


def test_duplicate_manifest_is_refused(tmp_path: Path) -> None:
    data = make_aci(("manifest", MANIFEST), ("rootfs", None), ("./manifest", b"{}"))
    with pytest.raises(ArchiveError, match="duplicate manifest"):
        import_aci(io.BytesIO(data), tmp_path / "rootfs")


def test_extra_top_level_member_is_refused(tmp_path: Path) -> None:
    data = make_aci(("manifest", MANIFEST), ("rootfs", None), ("extra", b"x"))
    with pytest.raises(ArchiveError, match='"extra": unexpected member in ACI'):
        import_aci(io.BytesIO(data), tmp_path / "rootfs")


def test_huge_manifest_is_refused(tmp_path: Path) -> None:
    data = make_aci(("manifest", b" " * ((1 << 20) + 1)), ("rootfs", None))
    with pytest.raises(ArchiveError, match="1 MiB"):
        import_aci(io.BytesIO(data), None)


def test_missing_manifest_or_rootfs_is_refused() -> None:
    with pytest.raises(ArchiveError, match="no manifest"):
        import_aci(io.BytesIO(make_aci(("rootfs", None))), None)
    with pytest.raises(ArchiveError, match="no rootfs"):
        import_aci(io.BytesIO(make_aci(("manifest", MANIFEST))), None)


def test_hostile_rootfs_member_is_refused_and_nothing_escapes(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        add(tar, "manifest", MANIFEST)
        add(tar, "rootfs")
        add(tar, "rootfs/link", type=tarfile.SYMTYPE, linkname=str(sentinel))
        add(tar, "rootfs/link/file", b"evil")
    with pytest.raises(ArchiveError, match="is a symlink"):
        import_aci(io.BytesIO(out.getvalue()), tmp_path / "rootfs")
    assert not any(sentinel.iterdir())


def test_progress_reports_compressed_bytes(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.aci"
    build_aci(image_dir, out, compression="xz")
    seen: list[int] = []
    with open(out, "rb") as raw:
        import_aci(raw, None, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == out.stat().st_size


def test_read_aci_manifest_stops_at_the_manifest(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.aci"
    build_aci(image_dir, out, compression="zstd")
    with open(out, "rb") as raw:
        assert read_aci_manifest(raw) == MANIFEST
    with pytest.raises(ArchiveError, match="no manifest"):
        read_aci_manifest(io.BytesIO(make_aci(("rootfs", None))))


def test_cli_image_build_prints_the_image_id(
    image_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rkt.cli.main import main

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    out = tmp_path / "x.aci"
    with pytest.raises(SystemExit) as exited:
        main(["image", "build", str(image_dir), str(out), "--compression=gzip"])
    assert exited.value.code == 0
    tar_bytes = gzip.decompress(out.read_bytes())
    assert capsys.readouterr().out == f"sha512-{hashlib.sha512(tar_bytes).hexdigest()}\n"
    with tarfile.open(out) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1234}
    with pytest.raises(SystemExit) as exited:
        main(["image", "build", str(image_dir), str(out)])
    assert exited.value.code == 2
