"""cgroup v1 backend against a fake cgroupfs tree (no root needed)."""

from __future__ import annotations

from pathlib import Path

from rkt.host.cgroups import PodCgroup
from rkt.host.cgroups.v1 import CgroupV1, parse_hierarchies, parse_self_cgroup


def _mountinfo(root: Path) -> str:
    lines = ["27 1 254:0 / / rw,relatime - ext4 /dev/vda rw"]
    for i, (name, opts) in enumerate(
        [
            ("cpu", "rw,cpu"),
            ("memory", "rw,memory"),
            ("cpuset", "rw,cpuset"),
            ("systemd", "rw,name=systemd"),
        ]
    ):
        lines.append(f"{40 + i} 31 0:{29 + i} / {root / name} rw,relatime - cgroup cgroup {opts}")
    lines.append(f"50 31 0:40 / {root / 'unified'} rw,relatime - cgroup2 cgroup2 rw")
    return "\n".join(lines) + "\n"


SELF = "4:systemd:/\n3:cpuset:/\n2:memory:/sup/job1\n1:cpu:/\n0::/\n".replace(
    "4:systemd", "4:name=systemd"
)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "cg"
    for d in ("cpu", "memory/sup/job1", "cpuset", "systemd", "unified"):
        (root / d).mkdir(parents=True)
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    return root


def test_parse_hierarchies_keeps_v1_only() -> None:
    hs = parse_hierarchies(_mountinfo(Path("/sys/fs/cgroup")))
    assert [h.controllers for h in hs] == [
        frozenset({"cpu"}),
        frozenset({"memory"}),
        frozenset({"cpuset"}),
        frozenset({"name=systemd"}),
    ]


def test_parse_self_cgroup_skips_unified_line() -> None:
    assert parse_self_cgroup(SELF)[frozenset({"memory"})] == "/sup/job1"
    assert frozenset() not in parse_self_cgroup(SELF)


def test_create_puts_pod_under_callers_cgroup_in_each_hierarchy(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    backend = CgroupV1(_mountinfo(root), SELF)
    planned = backend.planned("rkt-x")
    assert not any(d.exists() for d in planned.dirs)  # planned: nothing made
    cg = backend.create("rkt-x")
    assert cg == planned  # every hierarchy let us: what the record said before is right
    assert set(cg.dirs) == {
        root / "cpu/rkt-x",
        root / "memory/sup/job1/rkt-x",
        root / "cpuset/rkt-x",
        root / "systemd/rkt-x",
    }
    assert cg.relative == "/rkt-x"  # the name=systemd hierarchy's path, as rkt wrote it
    assert not (root / "unified/rkt-x").exists()


def test_create_copies_cpuset_from_parent(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "cpuset/rkt-x").mkdir()
    (root / "cpuset/rkt-x/cpuset.cpus").write_text("\n")
    (root / "cpuset/rkt-x/cpuset.mems").write_text("")
    (root / "cpuset/rkt-x/cgroup.clone_children").write_text("")
    CgroupV1(_mountinfo(root), SELF).create("rkt-x")
    assert (root / "cpuset/rkt-x/cpuset.cpus").read_text() == "0-1\n"
    assert (root / "cpuset/rkt-x/cpuset.mems").read_text() == "0\n"
    # the apps' cgroups get them from the kernel as they are made (no writes of ours)
    assert (root / "cpuset/rkt-x/cgroup.clone_children").read_text() == "1"


def test_attach_writes_pid_everywhere_and_processes_lists_them(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    backend = CgroupV1(_mountinfo(root), SELF)
    cg = backend.create("rkt-x")
    for d in cg.dirs:
        (d / "cgroup.procs").write_text("")
    backend.attach(cg, 4242)
    assert all((d / "cgroup.procs").read_text() == "4242" for d in cg.dirs)


def test_remove_is_idempotent(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    backend = CgroupV1(_mountinfo(root), SELF)
    cg = backend.create("rkt-x")
    (cg.dirs[0] / "child").mkdir()
    assert backend.processes(cg) == []
    backend.remove(cg)
    assert not any(d.exists() for d in cg.dirs)
    backend.remove(cg)  # already gone: no error


def test_pod_cgroup_json_round_trip() -> None:
    cg = PodCgroup(dirs=(Path("/a/rkt-x"), Path("/b/c/rkt-x")), relative="/rkt-x")
    assert PodCgroup.from_json(cg.to_json()) == cg
