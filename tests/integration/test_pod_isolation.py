"""What only the default stage1 promises (issue 3, acceptance 1, 4, 5): apps of a pod share PID and
UTS namespaces but not root filesystems; writes never reach the tree store; ``rkt enter`` runs under
the app's bounding set and in its cgroup; and 200 run + gc cycles leave nothing behind."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.integration.conftest import ImageFactory, Rkt
from tests.integration.test_pod_lifecycle import (
    INSECURE,
    Pods,
    _processes_mentioning,
    require_default_stage1,
    sh,
)

# rkt's default bounding set (Documentation/capabilities-guide.md): 14 capabilities.
DEFAULT_CAPBND = "00000000a80425fb"


@pytest.fixture
def default_pods(rkt: Rkt, images: ImageFactory) -> Iterator[Pods]:
    require_root()
    require_default_stage1()
    helper = Pods(rkt, images, [])
    yield helper
    helper.cleanup()


def test_two_apps_share_pid_and_uts_namespaces_but_not_rootfs(default_pods: Pods) -> None:
    pods = default_pods
    image_a = pods.images.build("example.com/app-a", extra_files={"marker-a": b"a"})
    image_b = pods.images.build("example.com/app-b", extra_files={"marker-b": b"b"})
    uuid, _ = pods.start(
        str(image_a),
        "--name=a",
        *sh("exec sleep 601"),
        str(image_b),
        "--name=b",
        *sh("exec sleep 602"),
    )
    ps_b = pods.rkt.run("enter", "--app=b", uuid, "/bin/ps").stdout
    assert "sleep 601" in ps_b and "sleep 602" in ps_b
    host_a = pods.rkt.run("enter", "--app=a", uuid, "/bin/hostname").stdout
    host_b = pods.rkt.run("enter", "--app=b", uuid, "/bin/hostname").stdout
    assert host_a == host_b == f"rkt-{uuid}\n"
    root_a = pods.rkt.run("enter", "--app=a", uuid, "/bin/ls", "/").stdout.split()
    root_b = pods.rkt.run("enter", "--app=b", uuid, "/bin/ls", "/").stdout.split()
    assert "marker-a" in root_a and "marker-b" not in root_a
    assert "marker-b" in root_b and "marker-a" not in root_b
    pods.rkt.run(
        "enter", "--app=a", uuid, "/bin/sh", "-c", "echo x > /written-by-app; rm /marker-a"
    )
    tree_store = pods.rkt.dir / "cas" / "tree"
    assert not list(tree_store.rglob("written-by-app"))
    assert list(tree_store.rglob("marker-a"))  # the delete stayed in the pod's upper dir
    assert pods.rkt.run("enter", "--app=b", uuid, "/bin/ls", "/").stdout.count("written") == 0


def test_hostname_flag(default_pods: Pods) -> None:
    proc = default_pods.run("--hostname=custom-host", str(default_pods.image()), *sh("hostname"))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("custom-host")


def test_enter_has_the_apps_bounding_set_and_cgroup(default_pods: Pods) -> None:
    pods = default_pods
    uuid, _ = pods.start(str(pods.image()), *sh("exec sleep 603"))
    status = pods.rkt.run("enter", uuid, "/bin/cat", "/proc/self/status").stdout
    capbnd = re.search(r"^CapBnd:\s*(\S+)$", status, re.M)
    assert capbnd is not None and capbnd.group(1) == DEFAULT_CAPBND
    script = "cat /proc/self/cgroup; echo ---; cat /proc/$(busybox pidof sleep)/cgroup"
    mine, app = pods.rkt.run("enter", uuid, "/bin/sh", "-c", script).stdout.split("---\n")
    assert mine.strip() and mine == app
    app_status = pods.rkt.run(
        "enter", uuid, "/bin/sh", "-c", "grep CapBnd /proc/$(busybox pidof sleep)/status"
    ).stdout
    assert DEFAULT_CAPBND in app_status


def test_interactive_app_gets_the_terminal(default_pods: Pods) -> None:
    import pty
    import select
    import subprocess

    pods = default_pods
    image = pods.image()
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        pods.rkt.argv(
            "run",
            INSECURE,
            "--net=host",
            "--interactive",
            str(image),
            *sh("test -t 0 && test -t 1 && echo is-a-tty; tty; read line; echo got-$line"),
        ),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    os.write(controller, b"hello\n")
    seen = b""
    while b"got-hello" not in seen:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, seen
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(controller)
    assert b"is-a-tty" in seen and b"got-hello" in seen
    assert b"/dev/console" in seen  # the terminal has a name there (ttyname), as in rkt


def _mount_points() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def _cgroups_named(uuids: set[str]) -> list[str]:
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for dirpath, dirnames, _ in os.walk(hierarchy):
            for name in dirnames:
                if any(u in name for u in uuids):
                    found.append(os.path.join(dirpath, name))
    return found


@pytest.mark.slow
def test_run_and_gc_cycles_leave_nothing_behind(default_pods: Pods, tmp_path: Path) -> None:
    pods = default_pods
    image = pods.image()
    uuids: set[str] = set()
    mounts_before = _mount_points()
    for i in range(200):
        uuid_file = tmp_path / f"uuid-{i}"
        proc = pods.rkt.run(
            "run",
            INSECURE,
            "--net=none",
            f"--uuid-file-save={uuid_file}",
            str(image),
            "--exec=/bin/true",
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        uuids.add(uuid_file.read_text().strip())
        pods.rkt.run("gc", "--grace-period=0s")
    assert len(uuids) == 200
    # Other tests may mount meanwhile (this machine is shared): only our pods' mounts count.
    new_mounts = _mount_points() - mounts_before
    ours = [m for m in new_mounts if str(pods.rkt.dir) in m or any(u in m for u in uuids)]
    assert not ours, ours
    assert not [pid for u in uuids for pid in _processes_mentioning(u)]
    assert not _cgroups_named(uuids)
    pods_dir = pods.rkt.dir / "pods"
    assert not [p for p in pods_dir.glob("*/*")]
