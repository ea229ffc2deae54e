"""pod-supervisor serving a mutable pod's control socket, driven directly (no stage0, no stage1
Python): many apps added, started, stopped and removed in turn, as a Kubernetes node does to a
long-lived pod sandbox. The app slots and output streams of removed apps are reused, so the
count of apps over a pod's life is not bounded by the table size (256)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rkt.cli.commands.status import Inotify
from rkt.errors import PodError
from rkt.stage0.stage1_image import NATIVE_DIR
from rkt.stage1.common.control import ControlRequest, call_pod_init
from rkt.stage1.common.poddir import CONTROL_SOCKET
from rkt.stage1.ns.launch import LaunchPlan
from tests.conftest import require, require_root

INIT = NATIVE_DIR / "pod-init"
SUPERVISOR = NATIVE_DIR / "pod-supervisor"
LAUNCHER = NATIVE_DIR / "app-exec"
HANDOFF = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}


class Pod:
    def __init__(self, path: Path, pid: int) -> None:
        self.path = path
        self.pid = pid  # pod-init exec'd the supervisor: the pod's mount namespace is its

    def seen(self, path: Path) -> Path:
        """``path`` as the supervisor sees it (the app roots are mounted in its namespace)."""
        return Path(f"/proc/{self.pid}/root{path}")

    def mounted(self, path: Path) -> bool:
        return f" {path} " in Path(f"/proc/{self.pid}/mountinfo").read_text()


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pod]:
    require_root()  # the supervisor mounts each added app's overlay root
    require(INIT.exists() and SUPERVISOR.exists(), "native programs not built (make setup)")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "apps").mkdir()
    (tmp_path / "lower").mkdir()
    (tmp_path / "lower" / "marker").write_text("from the image\n")
    plan = LaunchPlan("stage1: pod init")
    plan.step("unshare", 0x00020000)  # CLONE_NEWNS: the test's mounts stay in the pod
    plan.step("private")
    plan.step("listen", CONTROL_SOCKET, tmp_path / "apps")
    plan.step("ready", tmp_path / "ready")
    plan.step("supervise", SUPERVISOR)
    r, w = os.pipe()
    os.write(w, plan.encode())
    os.close(w)
    proc = subprocess.Popen(
        [str(INIT), str(r)],
        pass_fds=(r,),
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, HANDOFF),
    )
    os.close(r)
    try:
        with Inotify() as ino:
            ino.watch(tmp_path, 0x080)  # IN_MOVED_TO: "ready" is renamed into place
            while not (tmp_path / "ready").is_symlink():
                assert proc.poll() is None, proc.communicate()[1]
                assert select.select([ino], [], [], 30)[0], "pod-init did not get ready"
                ino.drain()
        yield Pod(tmp_path, proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _add(box: Pod, name: str, argv: list[str]) -> None:
    """What app/add writes (start.prepare_added_app), for an app that runs ``argv`` unconfined."""
    pod = box.path
    root = pod / "roots" / name
    for d in ("upper", "work"):
        (pod / "overlay" / name / d).mkdir(parents=True, exist_ok=True)
    app = LaunchPlan(f'app "{name}"')
    app.step("exec", "/", len(argv), *argv, 1, "PATH=/usr/bin:/bin")
    (pod / "apps" / f"{name}.plan").write_bytes(app.encode())
    record = LaunchPlan(f'app "{name}"')
    layers = pod / "overlay" / name
    data = f"lowerdir={pod}/lower,upperdir={layers}/upper,workdir={layers}/work"
    record.step("overlay", root, data)
    record.step(
        "app", name, LAUNCHER, pod / "apps" / f"{name}.plan", pod / f"{name}.status",
        pod / f"{name}.json", pod / f"{name}.log", "", root,
    )  # fmt: skip
    (pod / "apps" / f"{name}.add").write_bytes(record.encode())
    call_pod_init(pod, ControlRequest("add", name), timeout=30)


def _state(pod: Path, name: str) -> dict[str, object]:
    doc = json.loads((pod / f"{name}.json").read_text())
    assert isinstance(doc, dict)
    return doc


def _wait_for_log(pod: Pod, name: str, text: str, times: int = 1) -> None:
    """Until the supervisor has copied ``text`` to the app's log ``times`` times (inotify)."""
    log = pod.path / f"{name}.log"
    with Inotify() as ino:
        ino.watch(pod.path, 0x002 | 0x100)  # IN_MODIFY, IN_CREATE
        while not (log.exists() and log.read_text().count(text) >= times):
            assert select.select([ino], [], [], 30)[0], f"{name} did not log {text!r}"
            ino.drain()


def test_three_hundred_apps_come_and_go_in_one_pod(pod: Pod) -> None:
    for i in range(300):
        name = f"app-{i}"
        root = pod.path / "roots" / name
        _add(pod, name, ["/bin/sh", "-c", f"echo out-{i}; exec sleep 60"])
        assert _state(pod.path, name)["state"] == "created"
        assert pod.seen(root / "marker").read_text() == "from the image\n"
        call_pod_init(pod.path, ControlRequest("start", name), timeout=30)
        assert _state(pod.path, name)["state"] == "running"
        _wait_for_log(pod, name, f"out-{i}\n")  # its output still reaches its own log
        call_pod_init(pod.path, ControlRequest("rm", name), timeout=30)  # stops it first
        assert _state(pod.path, name)["state"] == "exited"
        assert not pod.mounted(root)
    with pytest.raises(PodError, match='app "app-0": is not in the pod'):
        call_pod_init(pod.path, ControlRequest("start", "app-0"), timeout=30)


def test_an_app_is_stopped_and_started_again_with_its_root_kept(pod: Pod) -> None:
    root = pod.path / "roots" / "web"
    _add(pod, "web", ["/bin/sh", "-c", f"echo run >> {root}/count; echo up; exec sleep 60"])
    for run in (1, 2, 3):
        call_pod_init(pod.path, ControlRequest("start", "web"), timeout=30)
        _wait_for_log(pod, "web", " up\n", times=run)
        with pytest.raises(PodError, match="is already running"):
            call_pod_init(pod.path, ControlRequest("start", "web"), timeout=30)
        call_pod_init(pod.path, ControlRequest("stop", "web"), timeout=30)
        doc = _state(pod.path, "web")
        assert doc["state"] == "exited" and doc["exit_code"] == 128 + signal.SIGTERM
        # the writes went to the app's upper layer, kept across its runs
        assert (pod.path / "overlay" / "web" / "upper" / "count").read_text() == "run\n" * run
