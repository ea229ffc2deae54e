"""rkt run's memo (rkt.stage0.runmemo) and the layout steps it replays (rkt.stage0.layout)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

from rkt import bundle
from rkt.errors import ImageError, PodError
from rkt.pod.pod import create_embryo, ensure_pods_root
from rkt.stage0 import runmemo, stage1_image
from rkt.stage0.layout import Layout, Memoisable, PreparedPod, apply_step

KEY = '["a key"]'


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with a name file and a tree; the bundle and the native programs faked."""
    data = tmp_path / "data"
    (data / "cas" / "db" / "names").mkdir(parents=True)
    (data / "cas" / "db" / "names" / "example.com%2fapp.rows").write_text('{"rows": []}\n')
    (data / "cas" / "tree" / "t1" / "rootfs" / "bin").mkdir(parents=True)
    (data / "cas" / "tree" / "t1" / "rootfs" / "bin" / "init").write_text("#!/bin/sh\n")
    monkeypatch.setattr(bundle, "serves_all", lambda package: True)
    monkeypatch.setattr(bundle, "serves", lambda module: True)
    monkeypatch.setattr(stage1_image, "native_identity", lambda flavor: "pod-init=1.2")
    return data


def prepared(data: Path, due: float | None = None) -> PreparedPod:
    due = time.time() + 60 if due is None else due
    layout = Layout()
    layout.link_tree("stage1/rootfs", str(data / "cas" / "tree" / "t1" / "rootfs"))
    layout.write("stage1/manifest", b'{"name": "caf\xc3\xa9"}')
    layout.mkdir("appsinfo/app")
    layout.symlink("appsinfo/app/rootfs", str(data / "cas" / "tree" / "t1" / "rootfs"))
    layout.mkdir("volumes/v", mode=0o1770, uid=0, gid=0)
    pod, lock = create_embryo(ensure_pods_root(data))
    lock.close()
    names = (str(data / "cas" / "db" / "names" / "example.com%2fapp.rows"),)
    memoisable = Memoisable(names, "default", (time.time() - 1, due), False, (str(data / "img"),))
    return PreparedPod(pod, None, None, layout, b'{"apps": []}', memoisable)


def run_info(data: Path) -> dict[str, object]:
    return {"dir": str(data), "options": ["none"], "uuid_file_save": None}


def record(data: Path, due: float | None = None, key: str = KEY) -> bool:
    argv = ["run", f"--dir={data}"]
    return runmemo.record(key, argv, prepared(data, due), run_info(data), [])


def test_a_recorded_memo_is_found_and_lays_out_the_same_pod(store: Path) -> None:
    assert record(store)
    memo = runmemo.lookup(store, KEY)
    assert memo is not None
    again = runmemo.replay(memo, store, None)
    assert again.pod.phase == "prepared" and again.stage1 is None
    path = again.pod.path
    assert (path / "stage1" / "rootfs" / "bin" / "init").stat().st_nlink == 2  # a hard link
    assert (path / "stage1" / "manifest").read_bytes() == b'{"name": "caf\xc3\xa9"}'
    assert os.readlink(path / "appsinfo" / "app" / "rootfs").endswith("/t1/rootfs")
    assert (path / "volumes" / "v").stat().st_mode & 0o7777 == 0o1770
    assert (path / "pod").read_bytes() == b'{"apps": []}'


def test_another_key_finds_nothing(store: Path) -> None:
    assert record(store)
    assert runmemo.lookup(store, '["another key"]') is None
    (memo,) = (store / "cache" / "run-memo").iterdir()
    memo.rename(memo.with_name(runmemo.digest('["another key"]') + ".json"))
    assert runmemo.lookup(store, '["another key"]') is None  # the whole key is compared


def test_a_changed_name_file_a_missing_tree_or_rebuilt_programs_void_it(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert record(store)
    rows = str(store / "cas" / "db" / "names" / "example.com%2fapp.rows")
    Path(rows).write_text('{"rows": [1]}\n')
    assert runmemo.lookup(store, KEY) is None
    Path(rows).write_text('{"rows": []}\n')
    assert runmemo.lookup(store, KEY) is not None  # the same rows again
    monkeypatch.setattr(stage1_image, "native_identity", lambda flavor: "pod-init=1.3")
    assert runmemo.lookup(store, KEY) is None

    def missing(flavor: str) -> str:
        raise ImageError("native program missing")

    monkeypatch.setattr(stage1_image, "native_identity", missing)
    assert runmemo.lookup(store, KEY) is None
    monkeypatch.setattr(stage1_image, "native_identity", lambda flavor: "pod-init=1.2")
    assert runmemo.lookup(store, KEY) is not None
    (store / "cas" / "tree" / "t1").rename(store / "cas" / "tree" / "gone")
    assert runmemo.lookup(store, KEY) is None


def test_an_image_use_due_for_recording_voids_it(store: Path) -> None:
    assert not record(store, due=time.time() - 1)  # due already: not even written
    assert record(store, due=time.time() + 60)
    path = next((store / "cache" / "run-memo").iterdir())
    memo = json.loads(path.read_text())
    memo["used"] = [time.time() - 61, time.time() - 1]
    path.write_text(json.dumps(memo))
    assert runmemo.lookup(store, KEY) is None
    memo["used"] = [time.time() + 600, time.time() + 660]  # the clock was set back meanwhile
    path.write_text(json.dumps(memo))
    assert runmemo.lookup(store, KEY) is None


def test_only_a_private_memo_in_a_private_directory_is_read(store: Path) -> None:
    assert record(store)
    where = store / "cache" / "run-memo"
    (path,) = where.iterdir()
    path.chmod(0o644)
    assert runmemo.lookup(store, KEY) is None
    path.chmod(0o600)
    where.chmod(0o755)
    assert runmemo.lookup(store, KEY) is None
    assert not record(store)  # nor written into one
    where.chmod(0o700)
    assert runmemo.lookup(store, KEY) is not None
    path.write_text("{torn")
    assert runmemo.lookup(store, KEY) is None


def test_nothing_is_written_without_a_name_file_or_with_a_changed_module(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = prepared(store)
    assert pod.memoisable is not None
    missing = pod.memoisable._replace(name_files=(str(store / "cas" / "db" / "names" / "x"),))
    argv = ["run", f"--dir={store}"]
    assert not runmemo.record(KEY, argv, pod._replace(memoisable=missing), run_info(store), [])
    assert not runmemo.record(KEY, argv, pod._replace(memoisable=None), run_info(store), [])
    monkeypatch.setattr(bundle, "serves_all", lambda package: False)
    assert not record(store)
    assert not (store / "cache").exists()


def test_a_memo_is_written_only_where_the_next_run_looks_for_it(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod, info = prepared(store), run_info(store)
    assert not runmemo.record(KEY, ["run", "--dir=/elsewhere"], pod, info, [])
    monkeypatch.setenv("RKT_DIR", str(store))
    assert runmemo.record(KEY, ["run"], pod, info, [])
    assert runmemo.lookup(store, KEY) is not None
    moved = store.parent / "moved"
    store.rename(moved)
    assert runmemo.lookup(moved, KEY) is None  # written for another data dir


def test_the_data_dir_is_guessed_as_the_flags_give_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RKT_DIR", raising=False)
    assert runmemo.guess_dir(["--dir=/a", "img", "--dir", "/b"]) == "/b"
    assert runmemo.guess_dir(["img", "--", "--dir=/c"]) == "/var/lib/rkt"
    monkeypatch.setenv("RKT_DIR", "/d")
    assert runmemo.guess_dir(["img"]) == "/d"


def test_config_files_and_directories_are_dependencies(store: Path) -> None:
    etc = store.parent / "etc"
    assert record(store)
    path = next((store / "cache" / "run-memo").iterdir())
    memo = json.loads(path.read_text())

    def depend_on_config() -> None:
        memo["deps"] = runmemo.config_dependencies([str(etc), None])
        path.write_text(json.dumps(memo))

    depend_on_config()
    assert runmemo.lookup(store, KEY) is not None
    (etc / "stage1.d").mkdir(parents=True)
    assert runmemo.lookup(store, KEY) is not None  # a directory with no config file in it
    (etc / "stage1.d" / "x.json").write_text("{}")
    assert runmemo.lookup(store, KEY) is None
    depend_on_config()
    assert runmemo.lookup(store, KEY) is not None
    (etc / "stage1.d" / "x.json").write_text('{"name": "other"}')
    assert runmemo.lookup(store, KEY) is None


def test_at_most_max_memos_are_kept(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runmemo, "MAX_MEMOS", 3)
    monkeypatch.setattr(runmemo, "MAX_MARKS", 0)
    for n in range(5):
        assert record(store, key=f'["{n}"]')
        os.utime(store / "cache" / "run-memo" / (runmemo.digest(f'["{n}"]') + ".json"), (n, n))
    kept = {p.name for p in (store / "cache" / "run-memo").iterdir()}
    assert kept == {runmemo.digest(f'["{n}"]') + ".json" for n in (2, 3, 4)}


def test_a_failed_replay_leaves_the_pod_as_garbage(store: Path) -> None:
    assert record(store)
    memo = runmemo.lookup(store, KEY)
    assert memo is not None
    (store / "cas" / "tree" / "t1").rename(store / "cas" / "tree" / "gone")  # gc, meanwhile
    with pytest.raises(PodError, match="prepare failed"):
        runmemo.replay(memo, store, None)
    assert [p.parent.name for p in (store / "pods").glob("*/*")].count("garbage") == 1


def test_the_key_holds_the_command_line_environment_and_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bundle, "identity", lambda: "1:2:3:4")
    key = runmemo.make_key(["run", "x"])
    assert key is not None and runmemo.make_key(["run", "x"]) == key
    assert runmemo.make_key(["run", "y"]) != key
    monkeypatch.setenv("SOMETHING_ELSE", "1")
    assert runmemo.make_key(["run", "x"]) != key
    monkeypatch.chdir(tmp_path)
    assert runmemo.make_key(["run", "x"]) != key
    monkeypatch.setenv("RKT_RUN_MEMO", "0")
    assert runmemo.make_key(["run", "x"]) is None
    monkeypatch.delenv("RKT_RUN_MEMO")
    monkeypatch.setattr(bundle, "identity", lambda: None)
    assert runmemo.make_key(["run", "x"]) is None


def test_the_environment_is_in_the_key_only_as_a_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "identity", lambda: "1:2:3:4")
    monkeypatch.setenv("A_SECRET", "hunter2")
    key = runmemo.make_key(["run", "x"])
    assert key is not None and "hunter2" not in key and "A_SECRET" not in key


def test_eligible_only_when_every_image_was_a_name_found_in_the_store() -> None:
    assert runmemo.eligible(1, 1, 1, env_files=False)
    assert not runmemo.eligible(2, 1, 1, env_files=False)  # a dependency or a stage1 fetched
    assert not runmemo.eligible(1, 0, 1, env_files=False)  # fetched, not found in the store
    assert not runmemo.eligible(0, 0, 0, env_files=False)  # a pod manifest
    assert not runmemo.eligible(1, 1, 1, env_files=True)


def test_layout_steps_stay_inside_the_pod(tmp_path: Path) -> None:
    for rel in ("../escape", "/abs", "a/../../b"):
        with pytest.raises(ValueError, match="bad path"):
            apply_step(str(tmp_path), ["write", rel, "x"])
    with pytest.raises(ValueError, match="unknown layout step"):
        apply_step(str(tmp_path), ["chmod", "x"])


def test_layout_applies_each_step_once(tmp_path: Path) -> None:
    layout = Layout()
    layout.mkdir("a")
    layout.apply(str(tmp_path))
    layout.write("a/f", b"1")
    layout.apply(str(tmp_path))  # "a" is not made again (it would fail: exists)
    assert (tmp_path / "a" / "f").read_bytes() == b"1"


def test_a_temporary_file_a_killed_rkt_left_is_removed(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runmemo, "MAX_MEMOS", 1)  # (looked for only with more files than that)
    monkeypatch.setattr(runmemo, "MAX_MARKS", 0)
    where = store / "cache" / "run-memo"
    where.mkdir(parents=True, mode=0o700)
    old, new = where / ".x.json.1.tmp", where / ".y.json.2.tmp"
    old.write_text("")
    new.write_text("")
    os.utime(old, (0, 0))
    assert record(store)
    assert not old.exists() and new.exists()  # (one being written now stays)


def test_a_command_line_is_marked_the_first_time_and_memoised_the_second(store: Path) -> None:
    assert not runmemo.seen_before(store, KEY)
    assert runmemo.seen_before(store, KEY)
    assert not runmemo.seen_before(store, KEY)  # the mark went with the second time
    (store / "cache" / "run-memo").chmod(0o755)
    assert not runmemo.seen_before(store, '["other"]')  # not in a directory others can read


def test_marks_do_not_push_out_memos(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runmemo, "MAX_MEMOS", 2)
    monkeypatch.setattr(runmemo, "MAX_MARKS", 2)
    assert record(store, key='["kept"]')
    for n in range(6):
        assert not runmemo.seen_before(store, f'["{n}"]')
    names = sorted(p.suffix for p in (store / "cache" / "run-memo").iterdir())
    assert names.count(".json") == 1 and names.count(".seen") <= 3
    assert runmemo.lookup(store, '["kept"]') is not None


def test_a_file_named_as_an_image_argument_voids_it(store: Path) -> None:
    assert record(store)
    (store / "img").mkdir()
    assert runmemo.lookup(store, KEY) is not None  # a directory is not taken for the image
    (store / "img").rmdir()
    (store / "img").write_text("an image file")
    assert runmemo.lookup(store, KEY) is None


def test_a_module_changed_since_the_memo_was_written_voids_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "decides.py"
    source.write_text("x = 1\n")
    module = type(sys)("rkt.stage0.decides")
    module.__file__ = str(source)
    monkeypatch.setitem(sys.modules, "rkt.stage0.decides", module)
    assert record(store)
    monkeypatch.delitem(sys.modules, "rkt.stage0.decides")  # the memo's run does not load it
    assert runmemo.lookup(store, KEY) is not None
    source.write_text("x = 22\n")
    assert runmemo.lookup(store, KEY) is None
    monkeypatch.setitem(sys.modules, "rkt.stage0.decides", module)  # loaded, from the bundle
    assert runmemo.lookup(store, KEY) is not None
    monkeypatch.setattr(bundle, "serves", lambda m: m is not module)  # not from the bundle
    assert runmemo.lookup(store, KEY) is None


def test_digests_are_sha256() -> None:
    assert runmemo.digest("abc") == hashlib.sha256(b"abc").hexdigest()
    assert runmemo.digest(b"\xff") == hashlib.sha256(b"\xff").hexdigest()


def test_a_memo_that_cannot_be_written_does_not_fail_the_run(store: Path) -> None:
    info = {**run_info(store), "options": [object()]}  # (not JSON)
    assert not runmemo.record(KEY, ["run", f"--dir={store}"], prepared(store), info, [])
