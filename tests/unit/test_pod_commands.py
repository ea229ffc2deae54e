"""Helpers of the pod commands: rkt's time and status formats, log records, export's merge."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from rkt.cli.commands.export import merge_layers
from rkt.cli.commands.list import humanize_time, rows_for
from rkt.cli.commands.logs import LogReader, sort_key
from rkt.cli.commands.status import (
    _take_uuid_from_flag,
    parse_wait,
    pod_json,
    status_lines,
    uuid_args,
)
from rkt.errors import UsageError
from rkt.stage0.pods import AppInfo, PodInfo
from tests.conftest import require

UUID = "0123abcd-1111-4111-8111-111111111111"


@pytest.mark.parametrize(
    "delta, text",
    [
        (0.2, "now"),
        (1.5, "1 second ago"),
        (6.9, "6 seconds ago"),
        (90, "1 minute ago"),
        (600, "10 minutes ago"),
        (5400, "1 hour ago"),
        (3 * 3600, "3 hours ago"),
        (86400 * 1.5, "1 day ago"),
        (86400 * 3, "3 days ago"),
        (86400 * 8, "1 week ago"),
        (86400 * 40, "1 month ago"),
        (86400 * 400, "1 year ago"),
        (86400 * 365 * 5, "5 years ago"),
        (-30, "30 seconds from now"),
    ],
)
def test_humanize_time_like_go_humanize(delta: float, text: str) -> None:
    assert humanize_time(1_000_000_000 - delta, now=1_000_000_000) == text


def _info(state: str = "exited") -> PodInfo:
    info = PodInfo(UUID, state, "run", 4242, 1_700_000_000.5, 1_700_000_001.25, None)
    info.apps = [
        AppInfo("web", "example.com/web", "sha512-aa", "exited", 0),
        AppInfo("db", "example.com/db", "sha512-bb", "exited", 3),
    ]
    return info


def test_status_lines_of_an_exited_pod() -> None:
    assert status_lines(_info()) == [
        "state=exited",
        "created=2023-11-14 22:13:20.500 +0000 UTC",
        "started=2023-11-14 22:13:21.250 +0000 UTC",
        "networks=",
        "pid=4242",
        "exited=true",
        "app-web=0",
        "app-db=3",
    ]


def test_status_lines_of_a_running_pod_have_no_exit_codes() -> None:
    lines = status_lines(_info("running"))
    assert "exited=false" in lines
    assert not any(line.startswith("app-") for line in lines)


def test_status_lines_of_a_prepared_pod_stop_after_the_times() -> None:
    info = _info("prepared")
    info.started_at = None
    assert status_lines(info) == ["state=prepared", "created=2023-11-14 22:13:20.500 +0000 UTC"]


def test_pod_json_uses_rkt_keys() -> None:
    brief = pod_json(_info(), detailed=False)
    assert brief == {
        "name": UUID,
        "state": "exited",
        "app_names": ["web", "db"],
        "created_at": 1_700_000_000,
        "started_at": 1_700_000_001,
    }
    full = pod_json(_info(), detailed=True)
    assert full["pid"] == 4242 and full["exited"] is True
    assert [(a["name"], a["exit_code"]) for a in full["apps"]] == [("web", 0), ("db", 3)]


def test_list_rows_put_pod_columns_on_the_first_app_only() -> None:
    rows = rows_for(_info(), {"web": "1.0"}, full=False, now=1_700_000_010)
    assert rows == [
        ["0123abcd", "web", "example.com/web:1.0", "exited", "9 seconds ago", "8 seconds ago", ""],
        ["", "db", "example.com/db", "", "", "", ""],
    ]
    full = rows_for(_info(), {}, full=True, now=0)
    assert full[0][0] == UUID and full[0][4].startswith("2023-11-14 22:13:20")


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, (False, None)),
        ("", (True, None)),
        ("true", (True, None)),
        ("false", (False, None)),
        ("0", (False, None)),
        ("10s", (True, 10.0)),
        ("1m30s", (True, 90.0)),
    ],
)
def test_parse_wait(value: str | None, expected: tuple[bool, float | None]) -> None:
    assert parse_wait(value, "--wait") == expected


def test_bare_wait_does_not_eat_the_uuid() -> None:
    args = argparse.Namespace(uuid=None, wait=UUID, wait_ready=None)
    _take_uuid_from_flag(args)
    assert args.uuid == UUID and args.wait == ""
    args = argparse.Namespace(uuid=UUID, wait="5s", wait_ready=None)
    _take_uuid_from_flag(args)
    assert args.uuid == UUID and args.wait == "5s"


def test_uuid_args(tmp_path: Path) -> None:
    uuid_file = tmp_path / "u"
    uuid_file.write_text(UUID + "\n")
    assert uuid_args([], str(uuid_file)) == [UUID]
    assert uuid_args(["a", "b"], None) == ["a", "b"]
    with pytest.raises(UsageError, match="not both"):
        uuid_args(["a"], str(uuid_file))
    with pytest.raises(UsageError, match="required"):
        uuid_args([], None)
    with pytest.raises(UsageError, match="exactly one"):
        uuid_args(["a", "b"], None, single=True)


def test_log_reader_joins_partial_records_and_waits_for_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "2024-01-01T00:00:00.1Z stdout P hel\n"
        "2024-01-01T00:00:00.2Z stderr F oops\n"
        "2024-01-01T00:00:00.3Z stdout F lo world\n"
        "2024-01-01T00:00:00.4Z stdout F incompl"
    )
    reader = LogReader("app", log)
    got = [(e.stream, e.text) for e in reader.read()]
    assert got == [("stderr", "oops"), ("stdout", "hello world")]
    with log.open("a") as fh:
        fh.write("ete\n2024-01-01T00:00:00.5Z stdout F \n")
    assert [e.text for e in reader.read()] == ["incomplete", ""]
    assert reader.read() == []


def test_log_sort_key_orders_trimmed_fractions() -> None:
    stamps = ["2024-01-01T00:00:00.9Z", "2024-01-01T00:00:00.95Z", "2024-01-01T00:00:00Z"]
    assert sorted(stamps, key=sort_key) == [stamps[2], stamps[0], stamps[1]]


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_text()
    return out


def test_merge_layers_overlays_upper_on_lower(tmp_path: Path) -> None:
    lower, upper, dest = tmp_path / "lower", tmp_path / "upper", tmp_path / "dest"
    for d in (lower / "etc", lower / "data", upper / "etc", upper / "new", dest):
        d.mkdir(parents=True)
    (lower / "etc" / "keep").write_text("image")
    (lower / "etc" / "changed").write_text("image")
    (lower / "data" / "f").write_text("image")
    (lower / "link").symlink_to("etc/keep")
    (upper / "etc" / "changed").write_text("app")
    (upper / "new" / "file").write_text("app")
    merge_layers([(str(upper), False), (str(lower), True)], str(dest))
    assert _tree(dest) == {
        "etc": "dir",
        "data": "dir",
        "new": "dir",
        "link": "-> etc/keep",
        "etc/keep": "image",
        "etc/changed": "app",
        "data/f": "image",
        "new/file": "app",
    }
    # image files are hard links, the app's are copies
    assert os.stat(dest / "etc" / "keep").st_ino == os.stat(lower / "etc" / "keep").st_ino
    assert os.stat(dest / "etc" / "changed").st_ino != os.stat(upper / "etc" / "changed").st_ino


def test_merge_layers_honours_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        require(False, "whiteouts (mknod 0/0) and trusted.* xattrs need root")
    lower, upper, dest = tmp_path / "lower", tmp_path / "upper", tmp_path / "dest"
    for d in (lower / "gone-dir", lower / "opaque", upper / "opaque", dest):
        d.mkdir(parents=True)
    (lower / "gone").write_text("image")
    (lower / "gone-dir" / "f").write_text("image")
    (lower / "opaque" / "old").write_text("image")
    (upper / "opaque" / "new").write_text("app")
    os.mknod(upper / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.mknod(upper / "gone-dir", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    merge_layers([(str(upper), False), (str(lower), True)], str(dest))
    assert _tree(dest) == {"opaque": "dir", "opaque/new": "app"}
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "opaque")


def test_merge_layers_stacks_several_image_layers(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        require(False, "whiteouts (mknod 0/0) need root")
    top, middle, bottom, dest = (tmp_path / n for n in ("top", "middle", "bottom", "dest"))
    for d in (top / "d", middle / "d", bottom / "d", dest):
        d.mkdir(parents=True)
    (bottom / "d" / "deleted-in-middle").write_text("bottom")
    (bottom / "d" / "kept").write_text("bottom")
    (bottom / "d" / "shadowed").write_text("bottom")
    os.mknod(middle / "d" / "deleted-in-middle", stat.S_IFCHR, os.makedev(0, 0))
    (middle / "d" / "shadowed").write_text("middle")
    (top / "d" / "new").write_text("top")
    merge_layers([(str(top), False), (str(middle), True), (str(bottom), True)], str(dest))
    assert _tree(dest) == {"d": "dir", "d/kept": "bottom", "d/shadowed": "middle", "d/new": "top"}
