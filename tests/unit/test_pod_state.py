"""The pod directory state machine and listing, on hand-made pod directories (no root, no
stage1): phase directory + flock decide the state; renames are the transitions."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rkt import abi
from rkt.errors import AmbiguousError, NotFoundError, PodError
from rkt.pod.pod import (
    EMBRYO,
    EXITED_GARBAGE,
    GARBAGE,
    PREPARE,
    PREPARED,
    RUN,
    Pod,
    PodLock,
    create_embryo,
    ensure_pods_root,
    find_pod,
    is_uuid,
    iter_pods,
    new_uuid,
    read_uuid_file,
    wait_for_exit,
)
from rkt.stage0.pods import (
    GcReport,
    gc_pods,
    list_pods,
    pod_exit_code,
    pod_info,
    remove_pod,
)

UUID_A = "aaaaaaaa-1111-4111-8111-111111111111"
UUID_B = "aaaabbbb-2222-4222-8222-222222222222"
UUID_C = "cccccccc-3333-4333-8333-333333333333"
IMAGE_ID = "sha512-" + "ab" * 64


def make_pod(root: Path, uuid: str, phase: str, apps: tuple[str, ...] = ("app",)) -> Pod:
    path = root / phase / uuid
    (path / abi.STATUS_DIR).mkdir(parents=True)
    (path / abi.POD_CREATED).touch()
    manifest = {
        "acKind": "PodManifest",
        "acVersion": "0.8.11",
        "apps": [{"name": a, "image": {"id": IMAGE_ID, "name": f"example.com/{a}"}} for a in apps],
    }
    (path / abi.POD_MANIFEST).write_text(json.dumps(manifest))
    return Pod(root, uuid, phase)


def write_status(pod: Pod, app: str, **fields: object) -> None:
    pod.file(abi.app_status_json(app)).write_text(json.dumps({"name": app, **fields}))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return ensure_pods_root(tmp_path)


def test_ensure_pods_root_makes_every_phase(tmp_path: Path) -> None:
    root = ensure_pods_root(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [EMBRYO, PREPARE, PREPARED, RUN, EXITED_GARBAGE, GARBAGE]
    )


@pytest.mark.parametrize(
    "phase, locked, state",
    [
        (EMBRYO, False, "embryo"),
        (PREPARE, True, "preparing"),
        (PREPARE, False, "aborted prepare"),
        (PREPARED, False, "prepared"),
        (RUN, True, "running"),
        (RUN, False, "exited"),
        (EXITED_GARBAGE, True, "exited deleting"),
        (EXITED_GARBAGE, False, "exited garbage"),
        (GARBAGE, True, "deleting"),
        (GARBAGE, False, "garbage"),
    ],
)
def test_state_is_phase_plus_lock(root: Path, phase: str, locked: bool, state: str) -> None:
    pod = make_pod(root, UUID_A, phase)
    lock = PodLock(pod.path)
    try:
        if locked:
            assert lock.try_exclusive()
        assert pod.state() == state
        assert pod.is_running() == (phase == RUN and locked)
    finally:
        lock.close()


def test_create_embryo_gives_a_locked_preparing_pod(root: Path) -> None:
    pod, lock = create_embryo(root)
    try:
        assert pod.phase == PREPARE and pod.path.is_dir()
        assert pod.state() == "preparing"
        assert pod.created_at() is not None
    finally:
        lock.close()
    assert pod.state() == "aborted prepare"


def test_new_uuid_is_a_random_version_4_uuid() -> None:
    import uuid

    made = {new_uuid() for _ in range(200)}
    assert len(made) == 200
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and is_uuid(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_lock_follows_the_directory_across_renames(root: Path) -> None:
    pod = make_pod(root, UUID_A, PREPARED)
    lock = PodLock(pod.path)
    assert lock.try_exclusive()
    pod.move_to(RUN)
    assert (root / RUN / UUID_A).is_dir() and not (root / PREPARED / UUID_A).exists()
    assert pod.state() == "running"
    lock.close()
    assert pod.state() == "exited"


def test_move_of_a_vanished_pod_is_a_pod_error(root: Path) -> None:
    pod = make_pod(root, UUID_A, RUN)
    os.rename(pod.path, root / EXITED_GARBAGE / UUID_A)
    with pytest.raises(PodError, match="vanished"):
        pod.move_to(EXITED_GARBAGE)


def test_iter_pods_sees_each_pod_once_and_ignores_strays(root: Path) -> None:
    make_pod(root, UUID_A, RUN)
    make_pod(root, UUID_C, PREPARED)
    (root / RUN / "not-a-uuid").mkdir()
    (root / EXITED_GARBAGE / UUID_A).mkdir()  # caught mid-rename: seen in its first phase only
    found = [(p.uuid, p.phase) for p in iter_pods(root)]
    assert sorted(found) == [(UUID_A, RUN), (UUID_C, PREPARED)]


def test_find_pod_by_unique_prefix(root: Path) -> None:
    make_pod(root, UUID_A, RUN)
    make_pod(root, UUID_B, RUN)
    make_pod(root, UUID_C, GARBAGE)
    assert find_pod(root, "cccc").uuid == UUID_C
    assert find_pod(root, UUID_A.upper()).uuid == UUID_A
    assert find_pod(root, "aaaaaaaa").uuid == UUID_A
    with pytest.raises(AmbiguousError, match="matches 2 pods"):
        find_pod(root, "aaaa")
    with pytest.raises(NotFoundError, match="no such pod"):
        find_pod(root, "dddd")
    with pytest.raises(NotFoundError, match="not a pod UUID"):
        find_pod(root, "../etc")


def test_uuid_file(tmp_path: Path) -> None:
    good = tmp_path / "uuid"
    good.write_text(UUID_A + "\n")
    assert read_uuid_file(good) == UUID_A
    bad = tmp_path / "bad"
    bad.write_text("hello\n")
    with pytest.raises(PodError, match="does not contain a pod UUID"):
        read_uuid_file(bad)
    with pytest.raises(PodError, match="uuid file"):
        read_uuid_file(tmp_path / "missing")


def test_the_pod_pid_is_the_init_s_never_the_supervisor_s(root: Path) -> None:
    """``pid`` is the pod init's (what enter joins); ``ppid``, the stage1 supervisor's, is not
    a stand-in for it (docs/stage1-abi.md §2)."""
    pod = make_pod(root, UUID_A, RUN)
    pod.file(abi.PPID_FILE).write_text("4000\n")
    assert pod.pid() is None
    pod.file(abi.PID_FILE).write_text("4242\n")
    assert pod.pid() == 4242
    pod.file(abi.PID_FILE).write_text("\u0664\n")  # an Arabic-Indic four: not a pid
    assert pod.pid() is None


def test_pod_info_reads_status_files(root: Path) -> None:
    pod = make_pod(root, UUID_A, RUN, apps=("web", "db"))
    pod.file(abi.PID_FILE).write_text("4242\n")
    started = time.time_ns()
    write_status(
        pod, "web", state="exited", pid=10, started=started, finished=started + 10**9, exit_code=0
    )
    write_status(
        pod,
        "db",
        state="exited",
        pid=11,
        started=started,
        finished=started + 2 * 10**9,
        exit_code=7,
    )
    pod.file(abi.app_status("db")).write_text("7\n")
    info = pod_info(pod)
    assert info.state == "exited"
    assert info.pid == 4242
    assert [(a.name, a.state, a.exit_code) for a in info.apps] == [
        ("web", "exited", 0),
        ("db", "exited", 7),
    ]
    assert info.started_at is not None and info.created_at is not None
    assert info.exited_at == pytest.approx((started + 2 * 10**9) / 1e9)
    assert pod_exit_code(info) == 7


def test_pod_info_falls_back_to_the_plain_status_file(root: Path) -> None:
    pod = make_pod(root, UUID_A, RUN)
    pod.file(abi.app_status("app")).write_text("3\n")
    info = pod_info(pod)
    assert (info.apps[0].state, info.apps[0].exit_code) == ("exited", 3)


def test_app_of_a_dead_pod_is_not_running(root: Path) -> None:
    pod = make_pod(root, UUID_A, RUN)
    write_status(pod, "app", state="running", pid=99, started=time.time_ns())
    assert pod_info(pod).apps[0].state == "exited"


def test_pod_info_without_manifest_still_lists(root: Path) -> None:
    pod = make_pod(root, UUID_A, PREPARE)
    pod.file(abi.POD_MANIFEST).unlink()
    info = pod_info(pod)
    assert info.state == "aborted prepare" and info.apps == []


def test_list_pods_lists_every_phase(root: Path) -> None:
    make_pod(root, UUID_A, RUN)
    make_pod(root, UUID_B, PREPARED)
    make_pod(root, UUID_C, EXITED_GARBAGE)
    states = {i.uuid: i.state for i in list_pods(root)}
    assert states == {UUID_A: "exited", UUID_B: "prepared", UUID_C: "exited garbage"}


def test_gc_marks_exited_and_aborted_pods_and_keeps_running_ones(root: Path) -> None:
    exited = make_pod(root, UUID_A, RUN)
    running = make_pod(root, UUID_B, RUN)
    aborted = make_pod(root, UUID_C, PREPARE)
    lock = PodLock(running.path)
    assert lock.try_exclusive()
    try:
        report = gc_pods(root, grace=3600, expire_prepared=86400, mark_only=False)
        assert sorted(report.marked) == sorted([UUID_A, UUID_C])
        assert report.removed == []
        assert (root / EXITED_GARBAGE / UUID_A).is_dir()
        assert (root / GARBAGE / UUID_C).is_dir()
        assert running.path.is_dir()
        report = gc_pods(root, grace=0, expire_prepared=86400, mark_only=False)
        assert sorted(report.removed) == sorted([UUID_A, UUID_C])
        assert not (root / EXITED_GARBAGE / UUID_A).exists()
        assert not (root / GARBAGE / UUID_C).exists()
        assert running.path.is_dir() and exited and aborted
    finally:
        lock.close()


def test_gc_mark_only_removes_nothing(root: Path) -> None:
    make_pod(root, UUID_A, RUN)
    report = gc_pods(root, grace=0, expire_prepared=86400, mark_only=True)
    assert report.marked == [UUID_A] and report.removed == []
    assert (root / EXITED_GARBAGE / UUID_A).is_dir()


def test_gc_marks_a_prepared_pod_whose_rkt_run_died_with_networks_started(root: Path) -> None:
    """`rkt run` started the pod's networks early and died between prepare and run: its pod is
    garbage at once (no `rkt prepare` starts networks), not kept 24 h with a namespace and NAT
    rules; a pod `rkt prepare` made stays until it expires, and a locked one is left alone."""
    from rkt.stage0.headstart import EARLY_JOURNAL

    orphan = make_pod(root, UUID_A, PREPARED)
    orphan.file(EARLY_JOURNAL).parent.mkdir(parents=True)
    orphan.file(EARLY_JOURNAL).write_text("{}")
    kept = make_pod(root, UUID_B, PREPARED)
    starting = make_pod(root, UUID_C, PREPARED)
    starting.file(EARLY_JOURNAL).parent.mkdir(parents=True)
    starting.file(EARLY_JOURNAL).write_text("{}")
    report = _gc_while_locked(root, starting.path, mark_only=True)
    assert report.marked == [UUID_A]
    assert (root / GARBAGE / UUID_A).is_dir() and kept.path.is_dir() and starting.path.is_dir()


def test_gc_expires_old_prepared_pods(root: Path) -> None:
    fresh = make_pod(root, UUID_A, PREPARED)
    old = make_pod(root, UUID_B, PREPARED)
    past = time.time() - 7200
    os.utime(old.file(abi.POD_CREATED), (past, past))
    report = gc_pods(root, grace=0, expire_prepared=3600, mark_only=False)
    assert report.removed == [UUID_B]
    assert fresh.path.is_dir()


def _gc_while_locked(root: Path, locked: Path, *, mark_only: bool) -> GcReport:
    """gc (no grace period) while someone holds ``locked``'s pod lock."""
    lock = PodLock(locked)
    assert lock.try_exclusive()
    try:
        return gc_pods(root, grace=0, expire_prepared=86400, mark_only=mark_only)
    finally:
        lock.close()


def test_gc_collects_an_embryo_its_creator_left_behind(root: Path) -> None:
    """A creator killed between making the embryo's directory and moving it to prepare leaves
    it behind: gc collects it once it is unlocked and a minute old, never one being created."""
    abandoned = root / EMBRYO / UUID_A
    abandoned.mkdir(parents=True)
    past = time.time() - 120
    os.utime(abandoned, (past, past))
    fresh = root / EMBRYO / UUID_B
    fresh.mkdir()
    locked = root / EMBRYO / UUID_C
    locked.mkdir()
    os.utime(locked, (past, past))
    report = _gc_while_locked(root, locked, mark_only=False)
    assert report.removed == [UUID_A]
    assert not abandoned.exists() and fresh.is_dir() and locked.is_dir()


def test_gc_leaves_a_pod_being_deleted_by_someone_else(root: Path) -> None:
    pod = make_pod(root, UUID_A, EXITED_GARBAGE)
    lock = PodLock(pod.path)
    assert lock.try_exclusive()
    try:
        report = gc_pods(root, grace=0, expire_prepared=86400, mark_only=False)
        assert report.removed == [] and report.failed == [(UUID_A, f'pod "{UUID_A}": is in use')]
    finally:
        lock.close()


def test_rm_refuses_a_running_pod_and_removes_an_exited_one(root: Path) -> None:
    running = make_pod(root, UUID_A, RUN)
    lock = PodLock(running.path)
    assert lock.try_exclusive()
    try:
        with pytest.raises(PodError, match="is running"):
            remove_pod(running)
    finally:
        lock.close()
    remove_pod(running)
    assert not any(p.uuid == UUID_A for p in iter_pods(root))


def test_rm_removes_a_prepared_pod(root: Path) -> None:
    pod = make_pod(root, UUID_A, PREPARED)
    remove_pod(pod)
    assert list(iter_pods(root)) == []


def test_wait_for_exit_returns_when_the_lock_is_free_or_times_out(root: Path) -> None:
    pod = make_pod(root, UUID_A, RUN)
    assert wait_for_exit(pod, 0.1)
    lock = PodLock(pod.path)
    assert lock.try_exclusive()
    try:
        begin = time.monotonic()
        assert not wait_for_exit(pod, 0.2)
        assert time.monotonic() - begin < 2
    finally:
        lock.close()
