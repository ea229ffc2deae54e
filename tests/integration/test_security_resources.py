"""Issue 4, acceptance 3: per-app cgroup limits on this (v1) host, through the real ``rkt run``.

A memory hog is OOM-killed inside its own cgroup and ``rkt status`` says so; a fork bomb stops at
the pids limit; a busy loop under ``--cpu=250m`` gets about a quarter of a CPU, measured from the
app cgroup's own accounting (CPU time used per CFS period it ran in), not from wall-clock
timings; another pod running beside them is unharmed."""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_root
from tests.integration.conftest import ImageFactory, Rkt
from tests.integration.test_pod_lifecycle import require_default_stage1

INSECURE = "--insecure-options=image"


@pytest.fixture
def image(images: ImageFactory) -> Iterator[Path]:
    require_root()
    require_default_stage1()
    require(Path("/sys/fs/cgroup/memory").is_dir(), "needs the v1 memory controller")
    yield images.build(
        "example.com/limited",
        manifest_extra={
            "app": {
                "exec": ["/bin/true"],
                "user": "0",
                "group": "0",
                "isolators": [{"name": "os/linux/pids-limit", "value": {"limit": 40}}],
            }
        },
    )
    images.rkt.run("gc", "--grace-period=0s", check=False)


def sh(script: str) -> list[str]:
    return ["--exec=/bin/sh", "--", "-c", script, "---"]


def pod_status(rkt: Rkt, uuid: str) -> dict[str, object]:
    return dict(json.loads(rkt.run("status", "--format=json", uuid).stdout))


def app_cgroup_dirs(rkt: Rkt, uuid: str, app: str) -> list[Path]:
    private = rkt.dir / "pods" / "run" / uuid / "stage1/rootfs/rkt/private/cgroups.json"
    return [Path(d) / f"app-{app}" for d in json.loads(private.read_text())["dirs"]]


def knob(dirs: list[Path], name: str) -> str:
    for d in dirs:
        if (d / name).exists():
            return (d / name).read_text()
    raise AssertionError(f"no {name} in {dirs}")


def read_until(proc: subprocess.Popen[bytes], marker: bytes) -> None:
    assert proc.stdout is not None
    seen = b""
    while marker not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, f"no {marker!r}: {seen!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"pod ended early: {seen!r}"
        seen += chunk


@pytest.mark.slow
def test_memory_hog_is_oom_killed_and_reported_other_pod_unharmed(
    rkt: Rkt, image: Path, tmp_path: Path
) -> None:
    save = tmp_path / "neighbour"
    neighbour = rkt.popen(
        "run", INSECURE, "--net=host", f"--uuid-file-save={save}", str(image),
        *sh("echo up; read x; echo fine"),
    )  # fmt: skip
    read_until(neighbour, b"up")
    hog_uuid_file = tmp_path / "hog"
    hog = rkt.run(
        "run", INSECURE, "--net=host", f"--uuid-file-save={hog_uuid_file}", str(image),
        "--memory=32Mi", *sh("exec busybox dd if=/dev/zero of=/dev/null bs=128M count=1"),
        check=False,
    )  # fmt: skip
    assert hog.returncode == 137, hog.stdout + hog.stderr  # SIGKILL
    uuid = hog_uuid_file.read_text().strip()
    (app,) = pod_status(rkt, uuid)["apps"]  # type: ignore[misc]
    assert app["oom_killed"] is True and app["exit_code"] == 137
    assert any(line.endswith("-oom-killed=true") for line in rkt.run("status", uuid).stdout.split())
    assert neighbour.stdin is None  # the neighbour pod is still running, and finishes normally
    rkt.run("stop", save.read_text().strip())
    neighbour.communicate(timeout=30)


@pytest.mark.slow
def test_fork_bomb_stops_at_the_pids_limit(rkt: Rkt, image: Path) -> None:
    # each "sleep &" is one more process; busybox sh gives up when fork fails (EAGAIN)
    script = "n=0; while [ $n -lt 200 ]; do n=$((n+1)); echo n=$n; sleep 30 & done"
    proc = rkt.run("run", INSECURE, "--net=host", str(image), *sh(script), check=False)
    counts = [int(line[2:]) for line in proc.stdout.split() if line.startswith("n=")]
    assert "can't fork" in proc.stderr, proc.stderr
    assert 10 <= max(counts) <= 40, counts


@pytest.mark.slow
def test_cpu_limit_gives_about_a_quarter_cpu(rkt: Rkt, image: Path, tmp_path: Path) -> None:
    save = tmp_path / "uuid"
    busy = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done; exec sleep 300"
    proc = rkt.popen(
        "run", INSECURE, "--net=host", f"--uuid-file-save={save}", str(image), "--name=busy",
        "--cpu=250m", "--cpu-shares=512", *sh(busy),
    )  # fmt: skip
    try:
        read_until(proc, b"done")
        uuid = save.read_text().strip()
        dirs = app_cgroup_dirs(rkt, uuid, "busy")
        assert knob(dirs, "cpu.cfs_quota_us").strip() == "25000"
        assert knob(dirs, "cpu.cfs_period_us").strip() == "100000"
        assert knob(dirs, "cpu.shares").strip() == "512"
        assert knob(dirs, "pids.max").strip() == "40"
        stat = dict(line.split() for line in knob(dirs, "cpu.stat").splitlines())
        usage_ns = int(knob(dirs, "cpuacct.usage"))
        periods = int(stat["nr_periods"])
        assert periods >= 10 and int(stat["nr_throttled"]) > 0
        share = usage_ns / (periods * 100_000_000)  # CPU used per period in which it ran
        assert 0.15 <= share <= 0.30, (share, stat)
    finally:
        rkt.run("stop", "--force", save.read_text().strip(), check=False)
        proc.communicate(timeout=30)
