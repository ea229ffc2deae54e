"""rkt.formats.treehash: the builder fed during extraction equals a walk of the tree on disk."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from rkt.formats.safetar import extract_tar
from rkt.formats.treehash import HEADER, TreeHashBuilder, compute_tree_hash


def _tar(tmp: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, data: bytes = b"", **fields: object) -> None:
            member = tarfile.TarInfo(name)
            member.type = kind
            member.size = len(data)
            member.mode = 0o755
            for key, value in fields.items():
                setattr(member, key, value)
            tar.addfile(member, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("rootfs", tarfile.DIRTYPE)
        add("rootfs/bin/busybox", tarfile.REGTYPE, b"\x7fELF" * 1000, mode=0o4755)
        add("rootfs/bin/sh", tarfile.LNKTYPE, linkname="rootfs/bin/busybox")
        add("rootfs/lib", tarfile.SYMTYPE, linkname="/usr/lib")
        add("rootfs/run/fifo", tarfile.FIFOTYPE, mode=0o600)
        add("rootfs/old/deep/file", tarfile.REGTYPE, b"gone")
        add("rootfs/old", tarfile.REGTYPE, b"replaced the directory")
        add("rootfs/lib", tarfile.DIRTYPE, mode=0o700)
        add("rootfs/lib/libc.so", tarfile.REGTYPE, b"libc", mode=0o644)
        add("rootfs/name\nwith newline", tarfile.REGTYPE, b"odd")
    return out.getvalue()


def test_builder_fed_by_extraction_equals_a_walk(tmp_path: Path) -> None:
    builder = TreeHashBuilder()
    dest = tmp_path / "rootfs"
    extract_tar(io.BytesIO(_tar(tmp_path)), dest, strip_prefix="rootfs", hasher=builder)
    assert builder.hexdigest() == compute_tree_hash(dest)


def test_builder_equals_walk_when_not_keeping_owners(tmp_path: Path) -> None:
    builder = TreeHashBuilder()
    dest = tmp_path / "rootfs"
    data = _tar(tmp_path)
    extract_tar(io.BytesIO(data), dest, strip_prefix="rootfs", hasher=builder, same_owner=False)
    assert builder.hexdigest() == compute_tree_hash(dest)


def test_tree_hash_changes_when_content_or_mode_changes(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    extract_tar(io.BytesIO(_tar(tmp_path)), dest, strip_prefix="rootfs")
    before = compute_tree_hash(dest)
    os.chmod(dest / "lib/libc.so", 0o4755)
    after_mode = compute_tree_hash(dest)
    (dest / "lib/libc.so").write_bytes(b"evil")
    after_content = compute_tree_hash(dest)
    assert len({before, after_mode, after_content}) == 3


def test_tree_hash_ignores_mtimes(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    extract_tar(io.BytesIO(_tar(tmp_path)), dest, strip_prefix="rootfs")
    before = compute_tree_hash(dest)
    os.utime(dest / "lib/libc.so", (5, 5))
    assert compute_tree_hash(dest) == before


def test_remove_forgets_a_directory_and_its_contents() -> None:
    builder = TreeHashBuilder()
    builder.add("a", "d", 0o755, 0, 0, 0)
    builder.add("a/b", "f", 0o644, 0, 0, 1, "x")
    builder.add("ab", "f", 0o644, 0, 0, 1, "x")
    builder.remove("a")
    assert len(builder) == 1


def test_format_is_sha512_of_sorted_records() -> None:
    builder = TreeHashBuilder()
    builder.add("z", "d", 0o40755, 0, 0, 0)
    builder.add_symlink("a", "/t", 0o777, 1, 2)
    target = hashlib.sha512(b"/t").hexdigest()
    expected = hashlib.sha512(
        HEADER + b"a\0l 0777 1 2 2 " + target.encode() + b"\n" + b"z\0d 0755 0 0 0 -\n"
    ).hexdigest()
    assert builder.hexdigest() == expected
