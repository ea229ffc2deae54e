"""Owners, modes and xattrs survive into the tree store exactly as the image says (as root):
setuid/setgid/sticky bits are kept, never added; numeric owners are kept (issue 2, "Store")."""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.conftest import Rkt
from tests.support.aci_craft import (
    Member,
    dir_member,
    file_member,
    manifest_json,
    symlink_member,
    tree_dirs,
    write_aci,
)

FETCH = ("--insecure-options=image", "fetch", "--full")

# path -> (kind, mode, uid, gid)
EXPECTED = {
    "bin": ("d", 0o755, 0, 0),
    "bin/suid": ("f", 0o4755, 0, 0),
    "bin/sgid": ("f", 0o2711, 0, 50),
    "home": ("d", 0o755, 0, 0),
    "home/user": ("d", 0o700, 1234, 1234),
    "home/user/owned": ("f", 0o640, 1234, 5678),
    "home/user/suid-user": ("f", 0o4750, 1234, 1234),
    "tmp": ("d", 0o1777, 0, 0),
    "shared": ("d", 0o2775, 0, 100),
    "link": ("l", 0o777, 1234, 4321),
    "plain": ("f", 0o600, 0, 0),
}


def members() -> list[Member]:
    out = [dir_member("rootfs")]
    for path, (kind, mode, uid, gid) in EXPECTED.items():
        name = f"rootfs/{path}"
        if kind == "d":
            out.append(dir_member(name, mode=mode, uid=uid, gid=gid))
        elif kind == "f":
            out.append(file_member(name, path.encode(), mode=mode, uid=uid, gid=gid))
        else:
            link = symlink_member(name, "plain")
            link.info.uid, link.info.gid = uid, gid
            out.append(link)
    return out


def owners_and_modes(root: Path) -> dict[str, tuple[str, int, int, int]]:
    found = {}
    for path in root.rglob("*"):
        st = path.lstat()
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        mode = 0o777 if kind == "l" else stat.S_IMODE(st.st_mode)
        found[path.relative_to(root).as_posix()] = (kind, mode, st.st_uid, st.st_gid)
    return found


def only_tree(rkt: Rkt) -> Path:
    (name,) = tree_dirs(rkt.dir)
    return rkt.dir / "cas" / "tree" / name / "rootfs"


def test_setuid_and_foreign_owners_are_kept_in_the_tree_store(
    rkt: Rkt, tmp_path: Path, as_root: None
) -> None:
    aci = write_aci(
        tmp_path / "owners.aci", members(), manifest=manifest_json("example.com/owners")
    )
    image_id = rkt.run(*FETCH, str(aci)).stdout.strip()
    assert owners_and_modes(only_tree(rkt)) == EXPECTED
    rkt.run("image", "verify", image_id)
    # `image render` and `image extract` (as root) keep them too.
    for command in ("render", "extract"):
        out = tmp_path / command
        rkt.run("image", command, "--rootfs-only", image_id, str(out))
        assert owners_and_modes(out) == EXPECTED


def test_no_mode_bits_are_added(rkt: Rkt, tmp_path: Path, as_root: None) -> None:
    """A file stored 0644 by uid 1234 is not made setuid or group-writable by the store."""
    aci = write_aci(
        tmp_path / "plain.aci",
        [dir_member("rootfs"), file_member("rootfs/f", b"x", mode=0o644, uid=1234, gid=1234)],
        manifest=manifest_json("example.com/plain"),
    )
    rkt.run(*FETCH, str(aci))
    st = (only_tree(rkt) / "f").lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 1234, 1234)


def _supports_user_xattrs(where: Path) -> bool:
    probe = where / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.rkt-probe", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    finally:
        probe.unlink()
    return True


def test_xattrs_are_kept_in_the_tree_store(rkt: Rkt, tmp_path: Path, as_root: None) -> None:
    require(_supports_user_xattrs(tmp_path), "needs user xattrs on the test filesystem")
    member = file_member("rootfs/tagged", b"x", mode=0o644)
    member.info.pax_headers = {"SCHILY.xattr.user.rkt.test": "hello"}
    aci = write_aci(
        tmp_path / "xattr.aci",
        [dir_member("rootfs"), member],
        manifest=manifest_json("example.com/xattr"),
    )
    rkt.run(*FETCH, str(aci))
    assert os.getxattr(only_tree(rkt) / "tagged", "user.rkt.test") == b"hello"


@pytest.mark.parametrize("mode", [0o4755, 0o6755])
def test_setuid_survives_a_later_chown(rkt: Rkt, tmp_path: Path, as_root: None, mode: int) -> None:
    """chown clears setuid; the mode must be applied after it, also for hard links."""
    suid = file_member("rootfs/suid", b"x", mode=mode, uid=1234, gid=1234)
    link = tarfile.TarInfo("rootfs/suid-link")
    link.type, link.linkname, link.mode = tarfile.LNKTYPE, "rootfs/suid", mode
    aci = write_aci(
        tmp_path / "suid.aci",
        [dir_member("rootfs"), suid, Member(link)],
        manifest=manifest_json("example.com/suid"),
    )
    rkt.run(*FETCH, str(aci))
    for name in ("suid", "suid-link"):
        st = (only_tree(rkt) / name).lstat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (mode, 1234)
