"""Docker copy-up (rkt.stage1.common.copyup): content, attributes, no escape, once per pod."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from rkt.host.api import MS_BIND
from rkt.stage1.common.appspec import VolumeMount
from rkt.stage1.common.copyup import copy_up, copy_up_once
from rkt.stage1.ns.launch import app_plan, copy_up_volumes
from tests.conftest import require
from tests.unit.test_stage1_ns import _spec


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An app root with a VOLUME dir ``/data``, and a host directory beside it."""
    rootfs = tmp_path / "rootfs"
    data = rootfs / "data"
    (data / "sub").mkdir(parents=True)
    (data / "file").write_text("from the image\n")
    (data / "sub" / "deep").write_text("deep\n")
    os.link(data / "file", data / "sub" / "hardlink")
    (data / "abs-link").symlink_to("/etc")  # must stay a link, never be followed
    (data / "escape").symlink_to("../../outside")
    os.mkfifo(data / "fifo", 0o640)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host\n")
    (rootfs / "etc").mkdir()
    (rootfs / "up").symlink_to("../..")  # a VOLUME path through it resolves inside the root
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        yield rootfs, fd
    finally:
        os.close(fd)


def _volume(tmp_path: Path) -> Path:
    vol = tmp_path / "volume"
    vol.mkdir()
    return vol


def test_copy_up_copies_content_links_and_fifos(tmp_path: Path, root: tuple[Path, int]) -> None:
    _, fd = root
    vol = _volume(tmp_path)
    assert copy_up(fd, "/data", str(vol))
    assert (vol / "file").read_text() == "from the image\n"
    assert (vol / "sub" / "deep").read_text() == "deep\n"
    assert os.readlink(vol / "abs-link") == "/etc"
    assert os.readlink(vol / "escape") == "../../outside"
    assert stat.S_ISFIFO(os.lstat(vol / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(vol / "fifo").st_mode) == 0o640
    assert os.stat(vol / "file").st_ino == os.stat(vol / "sub" / "hardlink").st_ino
    assert not (tmp_path / "outside" / "file").exists()  # nothing written through the link


def test_copy_up_keeps_owners_modes_times_and_xattrs(
    tmp_path: Path, root: tuple[Path, int]
) -> None:
    if os.geteuid() != 0:
        require(False, "chown to other owners needs root")
    rootfs, fd = root
    data = rootfs / "data"
    os.chown(data / "file", 1234, 5678)
    os.chmod(data / "file", 0o4750)  # setuid survives: mode is set after chown
    os.chown(data / "abs-link", 42, 43, follow_symlinks=False)
    os.chown(data, 1000, 1000)
    os.chmod(data / "sub", 0o2711)
    os.utime(data / "sub" / "deep", ns=(1_000_000_000, 2_000_000_000))
    try:
        os.setxattr(data / "file", "user.origin", b"image")
        os.setxattr(data / "sub", "trusted.rkt-test", b"dir")
        os.setxattr(data / "sub", "trusted.overlay.opaque", b"y")
    except OSError as exc:
        if exc.errno != errno.ENOTSUP:
            raise
        require(False, "no xattrs on this filesystem")
    vol = _volume(tmp_path)
    copy_up(fd, "/data", str(vol))
    st = os.stat(vol / "file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4750)
    link = os.lstat(vol / "abs-link")
    assert (link.st_uid, link.st_gid) == (42, 43)
    assert stat.S_IMODE(os.stat(vol / "sub").st_mode) == 0o2711
    assert os.stat(vol / "sub" / "deep").st_mtime_ns == 2_000_000_000
    assert (os.stat(vol).st_uid, os.stat(vol).st_gid) == (1000, 1000)  # the volume root too
    assert os.getxattr(vol / "file", "user.origin") == b"image"
    assert os.getxattr(vol / "sub", "trusted.rkt-test") == b"dir"
    assert "trusted.overlay.opaque" not in os.listxattr(vol / "sub")


def test_copy_up_resolves_the_volume_path_inside_the_root(
    tmp_path: Path, root: tuple[Path, int]
) -> None:
    _, fd = root
    vol = _volume(tmp_path)
    # /up -> ../.. would be tmp_path's parent on the host; inside the root it is "/" again.
    assert copy_up(fd, "/up/up/data", str(vol))
    assert (vol / "file").exists()
    assert not (vol / "secret").exists() and not (vol / "rootfs").exists()


def test_copy_up_skips_a_path_the_image_lacks(tmp_path: Path, root: tuple[Path, int]) -> None:
    _, fd = root
    vol = _volume(tmp_path)
    assert not copy_up(fd, "/nonexistent", str(vol))
    assert not copy_up(fd, "/data/file", str(vol))  # not a directory
    assert list(vol.iterdir()) == []


def test_copy_up_never_overwrites_what_the_volume_has(
    tmp_path: Path, root: tuple[Path, int]
) -> None:
    _, fd = root
    vol = _volume(tmp_path)
    (vol / "file").write_text("mine\n")
    (vol / "sub").symlink_to(tmp_path / "outside")  # not descended into
    copy_up(fd, "/data", str(vol))
    assert (vol / "file").read_text() == "mine\n"
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret"]


def test_copy_up_once_per_pod(tmp_path: Path, root: tuple[Path, int]) -> None:
    _, fd = root
    vol = _volume(tmp_path)
    marker = str(tmp_path / "private" / "copy-up" / "volume-data")
    assert copy_up_once(fd, "/data", str(vol), marker)
    (vol / "file").unlink()  # the app deleted it; a restart must not bring it back
    assert not copy_up_once(fd, "/data", str(vol), marker)
    assert not (vol / "file").exists()


def test_launch_copies_up_then_plans_the_volume_mount(
    tmp_path: Path, root: tuple[Path, int]
) -> None:
    rootfs, _ = root
    vol = _volume(tmp_path)
    marker = str(tmp_path / "marker")
    spec = _spec(mounts=(VolumeMount(str(vol), "/data", False, False, copy_up=marker),))
    copy_up_volumes(spec, str(rootfs))  # the app child, before it execs app-exec
    assert (vol / "file").read_text() == "from the image\n"
    assert Path(marker).read_bytes() == b"done\n"
    mounts = [s for s in app_plan(spec, str(rootfs)).steps if s[0] == "mount"]
    assert ("mount", "/data", str(vol), "", str(MS_BIND), "", "dir") in mounts


def test_only_docker_image_volumes_are_marked_for_copy_up() -> None:
    from rkt.stage0.prepare import _volumes_and_mounts
    from rkt.stage0.request import AppRequest, PodRequest, VolumeSpec

    point = {"name": "volume-data", "path": "/data"}
    apps: list[dict[str, object]] = [{"name": "docker"}, {"name": "aci"}]
    images = [{"mountPoints": [point]}, {"mountPoints": [{"name": "cache", "path": "/c"}]}]
    reqs = [AppRequest(image="a"), AppRequest(image="b")]
    volumes, copy_up = _volumes_and_mounts(PodRequest(apps=()), apps, images, reqs, [True, False])
    assert copy_up == {"volume-data": "docker"}  # an ACI mount point stays a plain empty volume
    assert {v["name"]: v["kind"] for v in volumes} == {"volume-data": "empty", "cache": "empty"}
    # A user --volume of that name is used as given: no copy-up (docs/images.md).
    given = PodRequest(apps=(), volumes=(VolumeSpec("volume-data", "empty"),))
    _, copy_up = _volumes_and_mounts(given, apps[:1], images[:1], reqs[:1], [True])
    assert copy_up == {}


def test_pod_init_start_copies_up_in_a_private_mount_namespace_first(tmp_path: Path) -> None:
    """copy_up_before_start: a mount namespace of its own (private), the app's overlay root
    mounted, the volume filled, the root unmounted (not lazily) before pod-init mounts it."""
    from rkt import abi
    from rkt.host.api import CLONE_NEWNS, MS_PRIVATE, MS_REC
    from rkt.host.fake import RecordingHost
    from rkt.stage1.common.poddir import PodDir
    from rkt.stage1.ns.start import copy_up_before_start

    pod = PodDir(tmp_path / "pod", "0a1b2c3d-0000-4000-8000-000000000001")
    root = pod.path / abi.stage2_rootfs("web")
    (root / "data").mkdir(parents=True)  # what the overlay would show: the image's /data
    (root / "data" / "seed").write_text("from the image\n")
    vol = _volume(tmp_path)
    marker = str(tmp_path / "marker")
    spec = _spec(mounts=(VolumeMount(str(vol), "/data", False, False, copy_up=marker),))
    host = RecordingHost()
    copy_up_before_start(host, pod, [spec, _spec(name="plain")])
    assert (vol / "seed").read_text() == "from the image\n"
    assert [c[0] for c in host.calls] == ["unshare", "mount", "mount", "umount"]
    assert host.calls[0] == ("unshare", CLONE_NEWNS)
    assert host.calls[1] == ("mount", None, "/", None, MS_REC | MS_PRIVATE, None)
    assert host.calls[2][1:4] == ("overlay", str(root), "overlay")  # only the copy-up app
    assert host.calls[3] == ("umount", str(root), 0)
