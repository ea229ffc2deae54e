"""The unprivileged parts of LinuxHost: confined path resolution, the recording fake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rkt.host.fake import RecordingHost
from rkt.host.linux import open_in_root, read_file_in_root, stat_in_root


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (root / "escape").symlink_to("/etc")
    (root / "dotdot").symlink_to("../../../../../../../etc")
    return root


def test_read_file_in_root_keeps_absolute_symlinks_inside(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert read_file_in_root(str(root), "/escape/passwd") == b"inside\n"
    assert read_file_in_root(str(root), "/dotdot/passwd") == b"inside\n"


def test_stat_in_root_reports_the_inside_file(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert stat_in_root(str(root), "/escape/passwd").st_size == len("inside\n")


def test_open_in_root_creates_missing_components_inside(tmp_path: Path) -> None:
    root = _root(tmp_path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        os.close(open_in_root(root_fd, "/escape/new/dir", create="dir"))
        os.close(open_in_root(root_fd, "/data/file", create="file"))
    finally:
        os.close(root_fd)
    assert (root / "etc/new/dir").is_dir()  # through the symlink, but inside the root
    assert (root / "data/file").is_file()
    assert not Path("/etc/new").exists()


def test_open_in_root_without_create_raises(tmp_path: Path) -> None:
    root = _root(tmp_path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(FileNotFoundError):
            open_in_root(root_fd, "/missing")
    finally:
        os.close(root_fd)


def test_recording_host_records_and_fails_on_demand() -> None:
    host = RecordingHost(fail={"sethostname": PermissionError(1, "nope")})
    host.unshare(0x20000000)
    with pytest.raises(PermissionError):
        host.sethostname("pod")
    assert host.calls == [("unshare", 0x20000000), ("sethostname", "pod")]
