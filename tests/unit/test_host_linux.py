"""The unprivileged parts of LinuxHost: confined path resolution, the recording fake.

(Mount targets resolved inside an app's root: app-exec, tests/unit/test_app_exec.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from rkt.host.fake import RecordingHost
from rkt.host.linux import read_file_in_root, stat_in_root


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


def test_recording_host_records_and_fails_on_demand() -> None:
    host = RecordingHost(fail={"sethostname": PermissionError(1, "nope")})
    host.unshare(0x20000000)
    with pytest.raises(PermissionError):
        host.sethostname("pod")
    assert host.calls == [("unshare", 0x20000000), ("sethostname", "pod")]
