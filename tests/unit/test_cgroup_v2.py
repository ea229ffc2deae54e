"""The cgroup v2 backend against a fake cgroupfs tree (file contents asserted), and the choice of
backend from /proc/self/mountinfo (issue 4, acceptance 5)."""

from __future__ import annotations

from pathlib import Path

from rkt.host.cgroups import Limits, PodCgroup, detect_backend, is_unified
from rkt.host.cgroups.v1 import CgroupV1
from rkt.host.cgroups.v2 import CgroupV2, shares_to_weight

UNIFIED = (
    "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n"
    "30 22 0:26 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
)
HYBRID = (
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
)
SELF = "0::/user.slice/rkt.scope\n"


def fake_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    own = root / "user.slice" / "rkt.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (own / "cgroup.subtree_control").write_text("")
    return root, own


def test_detection_picks_v2_only_on_a_unified_host(tmp_path: Path) -> None:
    root, _ = fake_tree(tmp_path)
    assert is_unified(UNIFIED.format(root=root))
    assert isinstance(detect_backend(UNIFIED.format(root=root), SELF), CgroupV2)
    assert not is_unified(HYBRID)  # this project's hosts: v1 controllers + a hugetlb-only v2
    assert isinstance(detect_backend(HYBRID, "4:memory:/\n0::/\n"), CgroupV1)
    named_only = HYBRID.replace(" cgroup cgroup rw,memory", " cgroup cgroup rw,name=x")
    assert is_unified(named_only)


def test_pod_and_app_cgroups_with_limits(tmp_path: Path) -> None:
    root, own = fake_tree(tmp_path)
    backend = CgroupV2(UNIFIED.format(root=root), SELF)
    planned = backend.planned("rkt-1234")
    assert not (own / "rkt-1234").exists()
    pod = backend.create("rkt-1234")
    assert pod == planned
    assert pod.dirs == (own / "rkt-1234",)
    assert pod.relative == "/user.slice/rkt.scope/rkt-1234"
    assert (own / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (own / "rkt-1234" / "supervisor").is_dir()  # no internal processes in the pod's

    backend.attach(pod, 4242)
    assert (own / "rkt-1234" / "supervisor" / "cgroup.procs").read_text() == "4242"

    app = backend.create_app(pod, "web", Limits(64 * 1024 * 1024, 250, 512, 100))
    d = own / "rkt-1234" / "app-web"
    assert app == PodCgroup(dirs=(d,), relative="/user.slice/rkt.scope/rkt-1234/app-web")
    assert (own / "rkt-1234" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (d / "memory.max").read_text() == "67108864"
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "cpu.max").read_text() == "25000 100000"
    assert (d / "cpu.weight").read_text() == str(shares_to_weight(512))
    assert (d / "pids.max").read_text() == "100"
    backend.attach(app)
    assert (d / "cgroup.procs").read_text() == "0"


def test_unlimited_knobs_are_not_written_and_missing_controller_fails(tmp_path: Path) -> None:
    root, own = fake_tree(tmp_path)
    backend = CgroupV2(UNIFIED.format(root=root), SELF)
    pod = backend.create("rkt-1")
    backend.create_app(pod, "a", Limits())
    assert not (own / "rkt-1" / "app-a" / "memory.max").exists()
    (own / "cgroup.controllers").write_text("cpu pids\n")
    try:
        backend.create_app(pod, "b", Limits(memory_bytes=1 << 20))
    except OSError as exc:
        assert "memory" in str(exc)
    else:
        raise AssertionError("a memory limit without the memory controller must fail")


def test_oom_kills_from_memory_events(tmp_path: Path) -> None:
    root, _ = fake_tree(tmp_path)
    backend = CgroupV2(UNIFIED.format(root=root), SELF)
    app = backend.create_app(backend.create("rkt-1"), "a", Limits())
    assert backend.oom_kills(app) == 0
    (app.dirs[0] / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert backend.oom_kills(app) == 1


def test_shares_to_weight_matches_the_kernel_mapping() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


def test_remove_deletes_the_tree(tmp_path: Path) -> None:
    root, own = fake_tree(tmp_path)
    backend = CgroupV2(UNIFIED.format(root=root), SELF)
    pod = backend.create("rkt-1")
    backend.create_app(pod, "a", Limits())
    # a fake tree holds regular files, which rmdir would refuse: empty it as the kernel would
    for f in sorted((own / "rkt-1").rglob("*"), reverse=True):
        if f.is_file():
            f.unlink()
    backend.remove(pod)
    assert not (own / "rkt-1").exists()
