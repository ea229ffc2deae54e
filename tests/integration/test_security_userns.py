"""Issue 4, acceptance 4: ``--private-users`` keeps overlayfs (idmapped lower layers), root in
the pod is an unprivileged uid on the host, concurrent pods get disjoint ranges, and ``rkt
enter`` joins the pod's user namespace."""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.integration.conftest import ImageFactory, Rkt
from tests.integration.test_pod_lifecycle import require_default_stage1

INSECURE = "--insecure-options=image"


@pytest.fixture
def image(images: ImageFactory) -> Iterator[Path]:
    require_root()
    require_default_stage1()
    yield images.build("example.com/userns")
    images.rkt.run("gc", "--grace-period=0s", check=False)


def sh(script: str) -> list[str]:
    return ["--exec=/bin/sh", "--", "-c", script, "---"]


def read_until(proc: subprocess.Popen[bytes], marker: bytes) -> bytes:
    assert proc.stdout is not None
    seen = b""
    while marker not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, f"no {marker!r}: {seen!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"pod ended early: {seen!r} {proc.stderr.read() if proc.stderr else ''!r}"
        seen += chunk
    return seen


@pytest.mark.slow
def test_root_in_the_pod_is_an_unprivileged_host_uid_and_overlay_stays(
    rkt: Rkt, image: Path, tmp_path: Path
) -> None:
    save = tmp_path / "uuid"
    script = "id -u; echo x > /written-by-root; busybox awk '$2 == \"/\" {print $3}' /proc/mounts"
    proc = rkt.run(
        "run", INSECURE, "--net=host", "--private-users", f"--uuid-file-save={save}", str(image),
        *sh(script),
    )  # fmt: skip
    uid_inside, fstype = proc.stdout.split()
    assert uid_inside == "0" and fstype == "overlay"
    uuid = save.read_text().strip()
    written = next((rkt.dir / "pods").glob(f"*/{uuid}/overlay/*/upper/written-by-root"))
    owner = written.stat().st_uid
    assert owner >= 65536 and written.stat().st_gid == owner  # not root, not a system user
    assert not list((rkt.dir / "cas" / "tree").rglob("written-by-root"))


@pytest.mark.slow
def test_concurrent_pods_get_disjoint_ranges_and_enter_joins_the_userns(
    rkt: Rkt, image: Path
) -> None:
    procs = [
        rkt.popen(
            "run",
            INSECURE,
            "--net=host",
            "--private-users",
            str(image),
            *sh("cat /proc/self/uid_map; echo ready; exec sleep 300"),
        )
        for _ in range(2)
    ]
    try:
        ranges = []
        for proc in procs:
            inside, outside, count = map(int, read_until(proc, b"ready").split()[:3])
            assert inside == 0 and outside > 0 and count == 65536
            ranges.append(range(outside, outside + count))
        assert not set(ranges[0]) & set(ranges[1])
        pods = [p for p in rkt.run("list", "--no-legend", "--full").stdout.split("\n") if p]
        uuid = pods[0].split()[0]
        entered = rkt.run("enter", uuid, "/bin/sh", "-c", "id -u; cat /proc/self/uid_map").stdout
        assert entered.split()[0] == "0"
        assert range(int(entered.split()[2]), int(entered.split()[2]) + 65536) in ranges
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate(timeout=30)


def test_private_users_pod_gets_volumes_and_its_hosts_file(
    rkt: Rkt, image: Path, tmp_path: Path
) -> None:
    """The pod's root cannot search the pods dir's parents: volumes and the generated /etc/hosts
    still reach the apps (bound idmapped, mounted by paths relative to the pod dir)."""
    host_dir = tmp_path / "host-volume"
    host_dir.mkdir()
    (host_dir / "file").write_text("from the host\n")
    proc = rkt.run(
        "run", INSECURE, "--net=none", "--private-users", "--volume=data,kind=empty",
        f"--volume=hv,kind=host,source={host_dir}", "--hostname=userns-pod", str(image),
        "--mount=volume=data,target=/data", "--mount=volume=hv,target=/hv",
        *sh("echo x > /data/y && cat /data/y; cat /hv/file; grep -c userns-pod /etc/hosts"),
    )  # fmt: skip
    assert proc.stdout.split("\n")[:3] == ["x", "from the host", "1"]


def test_private_users_pod_reports_its_status_and_stops(rkt: Rkt, image: Path) -> None:
    """The pod's exit status reaches ``rkt run`` through the helper (two waiters); a running pod
    is found by its published pid and stopped by ``rkt stop``; ``rkt status`` has both."""
    failed = rkt.run(
        "run", INSECURE, "--net=none", "--private-users", str(image), *sh("exit 7"), check=False
    )  # fmt: skip
    assert failed.returncode == 7, failed.stderr
    proc = rkt.popen(
        "run", INSECURE, "--net=none", "--private-users", str(image),
        *sh("echo ready; exec sleep 300"),
    )  # fmt: skip
    try:
        read_until(proc, b"ready")
        listing = rkt.run("list", "--no-legend", "--full").stdout.split("\n")
        uuid = next(line.split()[0] for line in listing if "running" in line)
        pid = (next((rkt.dir / "pods" / "run").glob(uuid)) / "pid").read_text()
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        rkt.run("stop", uuid)
        proc.communicate(timeout=30)
        status = rkt.run("status", uuid).stdout
        assert "state=exited" in status, status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def test_private_users_app_gets_its_oom_score_and_a_clear_refusal_to_lower_it(
    rkt: Rkt, image: Path
) -> None:
    """--oom-score-adj in a user namespace: app-exec changed its ids there, which left it not
    dumpable and its /proc files the host root's; it writes the score all the same (raising it
    needs no privilege). Lowering it needs CAP_SYS_RESOURCE in the host's namespace, which the
    namespace's root never has: one line saying so, exit 254."""
    proc = rkt.run(
        "run", INSECURE, "--net=host", "--private-users", str(image), "--oom-score-adj=500",
        *sh("cat /proc/self/oom_score_adj"),
    )  # fmt: skip
    assert proc.stdout.split() == ["500"]
    low = rkt.run(
        "run", INSECURE, "--net=host", "--private-users", str(image), "--oom-score-adj=-500",
        *sh("true"), check=False,
    )  # fmt: skip
    assert low.returncode == 254
    assert "oom score -500: lowering it needs CAP_SYS_RESOURCE" in low.stderr, low.stderr
