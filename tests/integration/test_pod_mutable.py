"""Mutable pods (issue 3, stage1 ABI v3): ``rkt app sandbox``, then ``app add/start/stop/rm`` on
the running pod, ``rkt stop`` and gc. Synchronisation is event-driven only: inotify on the
``--uuid-file-save`` file, ``rkt status --wait-ready``, and the app commands returning when done.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rkt.cli.commands.status import Inotify
from tests.conftest import require_root
from tests.integration.conftest import ImageFactory, Rkt
from tests.integration.test_pod_lifecycle import abi_stage1_aci, require_default_stage1

INSECURE = "--insecure-options=image"
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    """The content of ``path`` once it has been written (or fail if ``proc`` died first)."""
    with Inotify() as ino:
        ino.watch(path.parent, IN_CLOSE_WRITE | IN_MOVED_TO)
        while not (path.exists() and path.read_text().strip()):
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"sandbox exited {proc.returncode}: {err.decode()}")
            ready, _, _ = select.select([ino], [], [], timeout)
            assert ready, f"{path} was not written in {timeout}s"
            ino.drain()
    return path.read_text().strip()


class Sandbox:
    def __init__(self, rkt: Rkt, tmp_path: Path, *flags: str, net: str = "none") -> None:
        self.rkt = rkt
        uuid_file = tmp_path / "sandbox.uuid"
        self.proc = rkt.popen(
            "app", "sandbox", f"--net={net}", f"--uuid-file-save={uuid_file}", *flags
        )
        self.uuid = wait_for_file(uuid_file, self.proc)
        ready = rkt.run("status", "--wait-ready=60s", self.uuid, check=False)
        assert ready.returncode == 0, ready.stderr

    @property
    def path(self) -> Path:
        return self.rkt.dir / "pods" / "run" / self.uuid

    def app(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.rkt.run("app", *args, check=check, timeout=120)

    def add(self, image: Path, name: str, script: str) -> None:
        self.app(
            "add", self.uuid, INSECURE, str(image), f"--name={name}", "--exec=/bin/sh",
            "--", "-c", script,
        )  # fmt: skip

    def apps(self) -> dict[str, dict[str, object]]:
        out = self.app("list", "--format=json", self.uuid).stdout
        return {a["name"]: a for a in json.loads(out)}

    def app_status(self, name: str) -> dict[str, object]:
        return dict(
            json.loads(self.app("status", "--format=json", self.uuid, f"--app={name}").stdout)
        )

    def host_pid(self, name: str) -> int:
        doc = json.loads((self.path / f"stage1/rootfs/rkt/status/{name}.json").read_text())
        return int(doc["pid"])

    def pod_state(self) -> str:
        return self.rkt.run("status", self.uuid).stdout.splitlines()[0]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.rkt.run("stop", "--force", self.uuid, check=False)
            self.proc.kill()
        self.proc.communicate(timeout=60)


@pytest.fixture
def sandbox(rkt: Rkt, tmp_path: Path) -> Iterator[Sandbox]:
    require_root()
    require_default_stage1()
    box = Sandbox(rkt, tmp_path)
    yield box
    box.close()


def test_sandbox_comes_up_empty_and_mutable(sandbox: Sandbox) -> None:
    assert sandbox.pod_state() == "state=running"
    assert sandbox.apps() == {}
    manifest = json.loads(sandbox.rkt.run("cat-manifest", sandbox.uuid).stdout)
    assert manifest["apps"] == []
    assert {"name": "coreos.com/rkt/stage1/mutable", "value": "true"} in manifest["annotations"]
    sock = sandbox.path / "stage1/rootfs/rkt/private/control.sock"
    assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o600
    # The pod's PID 1 serving it is the native supervisor: no interpreter stays resident.
    init = int((sandbox.path / "pid").read_text())
    assert Path(f"/proc/{init}/comm").read_text().strip() == "pod-supervisor"
    assert sandbox.rkt.run("app", "list", "--no-legend", sandbox.uuid).stdout.strip() == ""


def test_app_lifecycle_in_a_running_pod(sandbox: Sandbox, images: ImageFactory) -> None:
    image = images.build("example.com/busybox")
    sandbox.add(image, "one", "echo hello-from-one; exec sleep 600")
    assert sandbox.apps()["one"]["state"] == "created"
    sandbox.app("start", sandbox.uuid, "--app=one")
    status = sandbox.app_status("one")
    assert status["state"] == "running" and status["image_id"], status
    assert "started_at" in status and "created_at" in status
    listing = sandbox.rkt.run("app", "list", sandbox.uuid).stdout.splitlines()
    assert listing[0].split()[:2] == ["NAME", "STATE"]
    assert listing[1].split()[:2] == ["one", "running"]

    # A second app shares the pod's pid namespace (the init's) with the first.
    sandbox.add(image, "two", "exec sleep 600")
    sandbox.app("start", sandbox.uuid, "--app=two")
    one, two = sandbox.host_pid("one"), sandbox.host_pid("two")
    assert os.stat(f"/proc/{one}/ns/pid").st_ino == os.stat(f"/proc/{two}/ns/pid").st_ino
    init = int((sandbox.path / "pid").read_text())
    assert os.stat(f"/proc/{one}/ns/pid").st_ino == os.stat(f"/proc/{init}/ns/pid").st_ino
    assert os.stat(f"/proc/{one}/ns/pid").st_ino != os.stat("/proc/self/ns/pid").st_ino

    # Stopping an app ends it, not the pod.
    sandbox.app("stop", sandbox.uuid, "--app=one")
    status = sandbox.app_status("one")
    assert status["state"] == "exited" and "finished_at" in status
    assert status["exit_code"] == 128 + 15  # SIGTERM
    assert not Path(f"/proc/{one}").exists()
    assert sandbox.pod_state() == "state=running"
    assert sandbox.apps()["two"]["state"] == "running"
    logs = sandbox.rkt.run("logs", "--app=one", sandbox.uuid).stdout
    assert "hello-from-one" in logs

    # An app that exits by itself does not end the pod either; it can be started again.
    sandbox.add(image, "short", "echo short-lived; exit 3")
    sandbox.app("start", sandbox.uuid, "--app=short")
    sandbox.app("stop", sandbox.uuid, "--app=short")  # returns once it has exited
    first = sandbox.app_status("short")
    assert first["state"] == "exited" and first["exit_code"] == 3
    assert sandbox.pod_state() == "state=running"
    sandbox.app("start", sandbox.uuid, "--app=short")  # again: a fresh run, the same root
    sandbox.app("stop", sandbox.uuid, "--app=short")
    again = sandbox.app_status("short")
    assert again["state"] == "exited" and again["started_at"] != first["started_at"]
    logs = sandbox.rkt.run("logs", "--app=short", sandbox.uuid).stdout
    assert logs.count("short-lived") == 2

    # Started again, a stopped app runs again: its last run's exit code no longer describes it.
    sandbox.app("start", sandbox.uuid, "--app=one")
    status = sandbox.app_status("one")
    assert status["state"] == "running" and status.get("exit_code") is None, status
    assert sandbox.apps()["one"]["state"] == "running"
    assert "app-one=" not in sandbox.rkt.run("status", sandbox.uuid).stdout

    # rm: a running app is stopped, then removed from the pod and its manifest.
    sandbox.app("rm", sandbox.uuid, "--app=two")
    assert not Path(f"/proc/{two}").exists()
    assert set(sandbox.apps()) == {"one", "short"}
    manifest = json.loads(sandbox.rkt.run("cat-manifest", sandbox.uuid).stdout)
    assert [a["name"] for a in manifest["apps"]] == ["one", "short"]
    assert not (sandbox.path / "appsinfo/two").exists()
    missing = sandbox.app("start", sandbox.uuid, "--app=two", check=False)
    assert missing.returncode == 254 and 'has no app "two"' in missing.stderr

    # Names stay unique; a duplicate is refused and leaves the manifest alone.
    dup = sandbox.app(
        "add", sandbox.uuid, INSECURE, str(image), "--name=one", "--exec=/bin/true", check=False
    )
    assert dup.returncode != 0 and "one" in dup.stderr
    assert [
        a["name"] for a in json.loads(sandbox.rkt.run("cat-manifest", sandbox.uuid).stdout)["apps"]
    ] == ["one", "short"]


def test_stop_ends_the_sandbox_and_gc_cleans_everything(
    sandbox: Sandbox, images: ImageFactory
) -> None:
    image = images.build("example.com/busybox")
    sandbox.add(image, "svc", "exec sleep 600")
    sandbox.app("start", sandbox.uuid, "--app=svc")
    pid = sandbox.host_pid("svc")
    init = int((sandbox.path / "pid").read_text())
    subcgroup = (sandbox.path / "subcgroup").read_text().strip()
    stopped = sandbox.rkt.run("stop", sandbox.uuid)
    assert sandbox.uuid in stopped.stdout
    assert sandbox.proc.wait(timeout=60) == 0
    assert sandbox.pod_state() == "state=exited"
    for _ in range(2):
        sandbox.rkt.run("gc", "--grace-period=0s")
    assert not (sandbox.rkt.dir / "pods/run" / sandbox.uuid).exists()
    assert not (sandbox.rkt.dir / "pods/exited-garbage" / sandbox.uuid).exists()
    assert not Path(f"/proc/{pid}").exists() and not Path(f"/proc/{init}").exists()
    assert sandbox.uuid not in Path("/proc/self/mountinfo").read_text()
    for mount in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"):
        if subcgroup:
            assert not (Path(mount) / subcgroup.lstrip("/")).exists()


def test_app_commands_on_a_non_mutable_pod_are_refused(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    require_root()
    require_default_stage1()
    image = images.build("example.com/busybox")
    uuid = rkt.run("prepare", "--quiet", INSECURE, str(image), "--exec=/bin/true").stdout.strip()
    rkt.run("run-prepared", "--net=none", uuid)
    proc = rkt.run("app", "add", uuid, INSECURE, str(image), "--name=x", check=False)
    assert proc.returncode == 254
    assert proc.stderr.strip().splitlines() == [f'rkt: pod "{uuid}": is exited, not running']


def test_stage1_below_v3_refuses_mutable_pods(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    require_root()
    stage1 = abi_stage1_aci(rkt, images.workdir, interface_version="2")
    refused = rkt.run(
        "app", "sandbox", INSECURE, "--net=host", f"--stage1-path={stage1}", check=False
    )
    assert refused.returncode == 254
    assert refused.stderr.strip().splitlines()[-1] == (
        "rkt: stage1 speaks interface version 2; --mutable needs version 3"
    )
    assert json.loads(rkt.run("list", "--format=json").stdout) == []  # nothing left behind
    # A running (immutable) pod of that stage1: app add is refused before anything changes.
    image = images.build("example.com/busybox")
    uuid = rkt.run(
        "prepare", "--quiet", INSECURE, f"--stage1-path={stage1}", str(image),
        "--exec=/bin/sh", "--", "-c", "exec sleep 600",
    ).stdout.strip()  # fmt: skip
    proc = rkt.popen("run-prepared", "--net=host", uuid)
    try:
        rkt.run("status", "--wait-ready=60s", uuid)
        before = rkt.run("cat-manifest", uuid).stdout
        add = rkt.run("app", "add", uuid, INSECURE, str(image), "--name=late", check=False)
        assert add.returncode == 254
        assert add.stderr.strip().splitlines()[-1] == (
            "rkt: stage1 speaks interface version 2; app add needs version 3"
        )
        assert rkt.run("cat-manifest", uuid).stdout == before
    finally:
        rkt.run("stop", "--force", uuid, check=False)
        proc.communicate(timeout=60)


def test_an_added_docker_app_gets_its_volume_copied_up_and_shares_one_the_pod_has(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """docs/images.md "Volumes": an app added to a running pod from an image with a VOLUME finds
    the image's files there, as with rkt run; a second app whose image declares the same volume
    shares it, without a copy. A refused add leaves nothing that makes the next one fail."""
    from tests.integration.oci_registry import LayoutWriter, busybox_tree

    writer = LayoutWriter(tmp_path / "layout")
    tree = busybox_tree({"data": None, "data/seed.txt": b"seed\n"})
    config = {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Volumes": {"/data": {}}}
    writer.tag("v1", writer.image([(tree, "gzip")], config))
    image = f"oci:{tmp_path / 'layout'}:v1"

    def add(name: str, *flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sandbox.app(
            "add", sandbox.uuid, INSECURE, image, f"--name={name}", *flags, "--exec=/bin/sh",
            "--", "-c", "cat /data/seed.txt; echo from-$AC_APP_NAME >> /data/log; sleep 600",
            check=check,
        )  # fmt: skip

    # refused by the stage1 (a user the image does not have): its new volume goes with it
    refused = add("first", "--user=nosuchuser", check=False)
    assert refused.returncode == 254 and "nosuchuser" in refused.stderr
    assert not (sandbox.path / "volumes" / "volume-data").exists()
    add("first")
    sandbox.app("start", sandbox.uuid, "--app=first")
    add("second")  # the same volume name: shared, no second copy-up annotation
    sandbox.app("start", sandbox.uuid, "--app=second")
    sandbox.app("stop", sandbox.uuid, "--app=first")
    sandbox.app("stop", sandbox.uuid, "--app=second")
    volume = sandbox.path / "volumes" / "volume-data"
    assert (volume / "seed.txt").read_text() == "seed\n"
    assert sorted((volume / "log").read_text().split()) == ["from-first", "from-second"]
    logs = sandbox.rkt.run("logs", sandbox.uuid).stdout
    assert logs.count("seed") == 2
    manifest = json.loads(sandbox.rkt.run("cat-manifest", sandbox.uuid).stdout)
    copy_up = [a for a in manifest["annotations"] if a["name"].startswith("rkt.local/copy-up/")]
    assert copy_up == [{"name": "rkt.local/copy-up/volume-data", "value": "first"}]
