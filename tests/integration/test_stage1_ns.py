"""The ns stage1 on a real kernel, driven exactly as stage0 would: a pod directory built by hand
from docs/stage1-abi.md §2, ``python -m rkt.stage1.ns.run`` with cwd = pod dir and a locked
``RKT_LOCK_FD``. Needs root (fails in CI without it, skips elsewhere)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rkt import abi
from rkt.stage0.stage1_image import NATIVE_DIR, NATIVE_PROGRAMS
from tests.conftest import REPO, require_root

PYTHON = str(REPO / ".venv" / "bin" / "python")
IMAGE_ID = "sha512-" + "b" * 128
MakePod = Callable[..., "Pod"]


@dataclass
class Pod:
    path: Path
    uuid: str
    tree: Path

    def entry(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", f"rkt.stage1.ns.{name}", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def status(self, app: str) -> dict[str, object]:
        return dict(json.loads((self.path / abi.app_status_json(app)).read_text()))

    def cgroup_dirs(self) -> list[Path]:
        data = json.loads((self.path / "stage1/rootfs/rkt/private/cgroups.json").read_text())
        return [Path(d) for d in data["dirs"]]


@pytest.fixture
def make_pod(tmp_path: Path, busybox_rootfs: Path) -> Iterator[MakePod]:
    require_root()
    made: list[Pod] = []

    def make(
        apps: dict[str, list[str]],
        *,
        volumes: list[dict[str, object]] | None = None,
        mounts: list[dict[str, str]] | None = None,
        read_only: bool = False,
    ) -> Pod:
        uuid = str(uuidlib.uuid4())
        pod = tmp_path / "pods" / uuid
        pod.mkdir(parents=True)
        manifest_apps = []
        for name, exec_ in apps.items():
            info = pod / abi.appsinfo(name)
            info.mkdir(parents=True)
            (info / "rootfs").symlink_to(busybox_rootfs)
            (info / "manifest").write_text(
                json.dumps(
                    {
                        "acKind": "ImageManifest",
                        "acVersion": "0.8.11",
                        "name": "example.com/busybox",
                        "app": {
                            "exec": ["/bin/true"],
                            "user": "0",
                            "group": "0",
                            "environment": [{"name": "FROM_IMAGE", "value": "yes"}],
                        },
                    }
                )
            )
            (pod / abi.app_overlay(name) / "upper").mkdir(parents=True)
            (pod / abi.app_overlay(name) / "work").mkdir()
            app: dict[str, object] = {
                "name": name,
                "image": {"id": IMAGE_ID},
                "app": {"exec": exec_, "user": "0", "group": "0"},
                "readOnlyRootFS": read_only,
            }
            if mounts:
                app["mounts"] = mounts
            manifest_apps.append(app)
        for vol in volumes or []:
            if vol["kind"] == "empty":
                (pod / abi.VOLUMES_DIR / str(vol["name"])).mkdir(parents=True)
        (pod / "pod").write_text(
            json.dumps(
                {
                    "acKind": "PodManifest",
                    "acVersion": "0.8.11",
                    "apps": manifest_apps,
                    "volumes": volumes or [],
                }
            )
        )
        (pod / abi.STAGE1_ROOTFS).mkdir(parents=True)
        for program in NATIVE_PROGRAMS["default"]:  # as the flavor's image ships them
            shutil.copy(NATIVE_DIR / program, pod / abi.STAGE1_ROOTFS / program)
        (pod / abi.STAGE1_MANIFEST).write_text("{}")
        (pod / "pod-created").touch()
        made.append(Pod(pod, uuid, busybox_rootfs))
        return made[-1]

    yield make
    for pod in made:  # never leave cgroups behind, whatever the test did
        pod.entry("gc", pod.uuid)


def start(pod: Pod, *flags: str) -> tuple[subprocess.Popen[bytes], int]:
    lock = os.open(pod.path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    proc = subprocess.Popen(
        [PYTHON, "-m", "rkt.stage1.ns.run", *flags, pod.uuid],
        cwd=pod.path,
        env={"PATH": "/usr/bin:/bin", abi.ENV_LOCK_FD: str(lock)},
        pass_fds=(lock,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, lock


def read_until(proc: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Read the run's stdout until ``marker`` appears (the app says it is ready)."""
    assert proc.stdout is not None
    seen = b""
    while marker not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, f"no {marker!r} within 30 s; got {seen!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"run ended before {marker!r}: {seen!r} {proc.stderr.read()!r}"  # type: ignore[union-attr]
        seen += chunk
    return seen


def lock_is_free(pod: Pod) -> bool:
    fd = os.open(pod.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def assert_nothing_left(pod: Pod) -> None:
    assert str(pod.path) not in Path("/proc/self/mountinfo").read_text()
    assert not any(d.exists() for d in pod.cgroup_dirs())


def test_two_apps_share_pid_and_uts_not_rootfs_and_status_propagates(make_pod: MakePod) -> None:
    pod: Pod = make_pod(
        {
            "a": [
                "/bin/sh",
                "-c",
                "echo secret > /written-by-a; hostname; echo $FROM_IMAGE;"
                " until ps | busybox grep -q '[s]leep 30'; do :; done; ps;"
                " echo oops >&2; exit 3",
            ],
            "b": ["/bin/sleep", "30"],
        }
    )
    proc, lock = start(pod, "--net=none")
    out, err = proc.communicate(timeout=60)
    os.close(lock)
    assert proc.returncode == 3, err
    text = out.decode()
    assert f"rkt-{pod.uuid}" in text  # the pod's hostname
    assert "sleep 30" in text  # app a sees app b's process
    assert "    1 root" in text  # ... and the pod init as PID 1
    assert "yes" in text  # image environment
    assert b"oops" in err
    assert (pod.path / abi.app_status("a")).read_text() == "3"
    assert (pod.path / abi.app_status("b")).read_text() == "143"  # stopped by SIGTERM
    assert pod.status("a")["state"] == "exited"
    assert os.readlink(pod.path / abi.SUPERVISOR_STATUS) == "ready"
    # separate root filesystems: a's write is in a's upper dir only, never in the image tree
    assert (pod.path / "overlay/a/upper/written-by-a").read_text() == "secret\n"
    assert not (pod.path / "overlay/b/upper/written-by-a").exists()
    assert not (pod.tree / "written-by-a").exists()
    log = (pod.path / abi.app_log("a")).read_text().splitlines()
    assert any(line.endswith(" stdout F secret") or " stdout F yes" in line for line in log)
    assert any(" stderr F oops" in line for line in log)
    assert lock_is_free(pod)
    assert str(pod.path) not in Path("/proc/self/mountinfo").read_text()
    assert pod.entry("gc", pod.uuid).returncode == 0
    assert_nothing_left(pod)
    assert pod.entry("gc", pod.uuid).returncode == 0  # idempotent


def test_enter_runs_confined_in_the_app_and_sigterm_stops_the_pod(make_pod: MakePod) -> None:
    pod: Pod = make_pod(
        {
            "a": ["/bin/sh", "-c", "echo mark > /mark; echo ready; exec sleep 300"],
            "b": ["/bin/sleep", "300"],
        }
    )
    proc, lock = start(pod, "--net=none")
    read_until(proc, b"ready")
    seen_a = pod.entry(
        "enter",
        "--app=a",
        pod.uuid,
        "--",
        "/bin/sh",
        "-c",
        "cat /mark; cat /proc/self/status; cat /proc/self/cgroup; hostname",
    )
    assert seen_a.returncode == 0, seen_a.stderr
    assert "mark" in seen_a.stdout
    assert "CapBnd:\t00000000a80425fb" in seen_a.stdout  # rkt's 14 capabilities
    assert f"/rkt-{pod.uuid}" in seen_a.stdout
    assert f"rkt-{pod.uuid}" in seen_a.stdout.splitlines()[-1]
    seen_b = pod.entry("enter", "--app=b", pod.uuid, "--", "/bin/cat", "/mark")
    assert seen_b.returncode == 1  # b has its own root filesystem
    assert pod.entry("enter", "--app=b", pod.uuid, "--", "/bin/sh", "-c", "exit 7").returncode == 7
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    os.close(lock)
    assert proc.returncode == 143
    assert lock_is_free(pod)
    assert pod.entry("gc", pod.uuid).returncode == 0
    assert_nothing_left(pod)


def test_stop_entrypoint_and_force(make_pod: MakePod) -> None:
    pod: Pod = make_pod(
        {"a": ["/bin/sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 1; done"]}
    )
    proc, lock = start(pod, "--net=host")
    read_until(proc, b"ready")
    assert pod.entry("stop", pod.uuid).returncode == 0
    proc.communicate(timeout=15)
    os.close(lock)
    assert proc.returncode == 0  # the app exited 0 on SIGTERM
    assert pod.entry("stop", "--force", pod.uuid).returncode == 0  # not running: no error
    pod2: Pod = make_pod({"a": ["/bin/sh", "-c", "trap '' TERM; echo ready; sleep 300"]})
    proc, lock = start(pod2, "--net=none")
    read_until(proc, b"ready")
    assert pod2.entry("stop", "--force", pod2.uuid).returncode == 0
    proc.communicate(timeout=15)
    os.close(lock)
    assert proc.returncode == 128 + signal.SIGKILL


@pytest.mark.slow
def test_stop_kills_what_ignores_sigterm_after_the_grace_period(make_pod: MakePod) -> None:
    """SIGTERM to every app, SIGKILL to the whole pod 10 s later (the pod supervisor's
    deadline, rkt's semantics); the survivor's status says so."""
    pod: Pod = make_pod(
        {
            "stubborn": ["/bin/sh", "-c", "trap '' TERM; echo ready; sleep 300"],
            "polite": ["/bin/sleep", "300"],
        }
    )
    proc, lock = start(pod, "--net=none")
    read_until(proc, b"ready")
    assert pod.entry("stop", pod.uuid).returncode == 0
    proc.communicate(timeout=30)
    os.close(lock)
    polite, stubborn = pod.status("polite"), pod.status("stubborn")
    assert polite["signal"] == signal.SIGTERM
    assert stubborn["signal"] == signal.SIGKILL and stubborn["exit_code"] == 128 + signal.SIGKILL
    took = (int(str(stubborn["finished"])) - int(str(polite["finished"]))) / 1e9
    assert 9.0 <= took <= 20.0, took  # the grace period, measured by the pod's own clock
    assert proc.returncode in (128 + signal.SIGTERM, 128 + signal.SIGKILL)


def test_sigkill_of_run_leaves_no_process(make_pod: MakePod) -> None:
    pod: Pod = make_pod(
        {
            "a": ["/bin/sh", "-c", "echo ready; sleep 300"],
            "b": ["/bin/sleep", "300"],
        }
    )
    proc, lock = start(pod, "--net=none")
    read_until(proc, b"ready")
    pids = [int(str(pod.status(app)["pid"])) for app in ("a", "b")]
    pids.append(int((pod.path / abi.PID_FILE).read_text()))
    pidfds = [os.pidfd_open(pid) for pid in pids]
    proc.kill()
    proc.wait(timeout=15)
    os.close(lock)
    for fd in pidfds:  # each becomes readable when its process has exited
        assert select.select([fd], [], [], 15)[0], "a pod process outlived rkt run"
        os.close(fd)
    assert lock_is_free(pod)
    assert str(pod.path) not in Path("/proc/self/mountinfo").read_text()
    assert pod.entry("gc", pod.uuid).returncode == 0
    assert_nothing_left(pod)


def test_volumes_and_read_only_rootfs(make_pod: MakePod, tmp_path: Path) -> None:
    host_dir = tmp_path / "hostvol"
    host_dir.mkdir()
    (host_dir / "hello").write_text("from host\n")
    pod: Pod = make_pod(
        {
            "a": [
                "/bin/sh",
                "-c",
                "cat /h/hello; echo w > /e/out; echo x > /h/no || echo ro-vol;"
                " echo x > /rootfile || echo ro-root; echo ok > /tmp/t && cat /tmp/t",
            ]
        },
        volumes=[
            {"name": "h", "kind": "host", "source": str(host_dir), "readOnly": True},
            {"name": "e", "kind": "empty"},
        ],
        mounts=[{"volume": "h", "path": "/h"}, {"volume": "e", "path": "/e"}],
        read_only=True,
    )
    proc, lock = start(pod, "--net=none")
    out, err = proc.communicate(timeout=60)
    os.close(lock)
    assert proc.returncode == 0, err
    assert out.decode().split() == ["from", "host", "ro-vol", "ro-root", "ok"]
    assert (pod.path / "volumes/e/out").read_text() == "w\n"
    assert not (host_dir / "no").exists()
    assert pod.entry("gc", pod.uuid).returncode == 0
    assert_nothing_left(pod)


def test_run_refuses_unknown_cni_networks_clearly(make_pod: MakePod) -> None:
    # (CNI networks themselves are exercised in test_net_*.py, inside namespaces of their own.)
    pod: Pod = make_pod({"a": ["/bin/true"]})
    proc, lock = start(pod, "--net=nosuchnet")
    _, err = proc.communicate(timeout=30)
    os.close(lock)
    assert proc.returncode == 254
    assert b'network "nosuchnet" not found' in err
    assert sys.platform == "linux"


def test_an_app_that_cannot_start_fails_the_pod_with_a_shell_status(make_pod: MakePod) -> None:
    """app-exec's exit codes reach the pod: 127 when the program does not exist (its message in
    the app's stderr and log), and the other app is stopped as for any failing app."""
    pod: Pod = make_pod({"missing": ["/no/such/program"], "b": ["/bin/sleep", "30"]})
    proc, lock = start(pod, "--net=none")
    _, err = proc.communicate(timeout=60)
    os.close(lock)
    assert proc.returncode == 127, err
    assert b'stage1: app "missing": /no/such/program: no such file or directory' in err
    assert (pod.path / abi.app_status("missing")).read_text() == "127"
    assert (pod.path / abi.app_status("b")).read_text() == "143"
    log = (pod.path / abi.app_log("missing")).read_text()
    assert "stderr F stage1: app" in log
    assert pod.entry("gc", pod.uuid).returncode == 0
    assert_nothing_left(pod)
