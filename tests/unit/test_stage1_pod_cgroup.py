"""The pod's cgroup (rkt.stage1.ns.run.create_cgroup): where no hierarchy is writable the pod
still runs, and says what it runs without (docs/security.md: limits are never dropped silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkt import abi
from rkt.host.cgroups import PodCgroup
from rkt.paths import Path as RktPath
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.ns import run

UUID = "5f0c1ad2-7f44-4a5e-9a0e-6e4bb1b2c3d4"


class _Backend:
    """Plans ``planned`` and makes ``dirs``; records what the record file said when it did."""

    def __init__(self, dirs: tuple[RktPath, ...], planned: tuple[RktPath, ...] = ()) -> None:
        self.dirs = dirs
        self.planned_dirs = planned or dirs
        self.record_at_create: bytes | None = None
        self.record: Path | None = None

    def planned(self, name: str) -> PodCgroup:
        return PodCgroup(dirs=self.planned_dirs, relative=f"/{name}")

    def create(self, name: str) -> PodCgroup:
        if self.record is not None and self.record.exists():
            self.record_at_create = self.record.read_bytes()
        return PodCgroup(dirs=self.dirs, relative=f"/{name}")


def _pod(tmp_path: Path) -> PodDir:
    (tmp_path / "stage1/rootfs/rkt/private").mkdir(parents=True)
    return PodDir(RktPath(str(tmp_path)), UUID)


def test_no_writable_hierarchy_warns_and_runs_without_a_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("rkt.host.cgroups.detect_backend", lambda: _Backend(()))
    assert run.create_cgroup(_pod(tmp_path)) == (None, None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f'pod "{UUID}": no cgroup hierarchy is writable' in err
    assert "pids limit" in err and not (tmp_path / abi.SUBCGROUP_FILE).exists()


def test_a_cgroup_is_recorded_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = _Backend((RktPath(str(tmp_path / "cg" / f"rkt-{UUID}")),))
    monkeypatch.setattr("rkt.host.cgroups.detect_backend", lambda: backend)
    _, cgroup = run.create_cgroup(_pod(tmp_path))
    assert cgroup is not None and capsys.readouterr().err == ""
    assert (tmp_path / abi.SUBCGROUP_FILE).read_text() == f"/rkt-{UUID}\n"


def test_the_record_names_the_directories_before_they_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run process killed while it makes the pod's cgroup directories leaves a record of all
    of them (gc removes what the record names, and only that); the record is rewritten when a
    hierarchy refused a directory, and removed when none was made."""
    made = RktPath(str(tmp_path / "cg" / "memory" / f"rkt-{UUID}"))
    refused = RktPath(str(tmp_path / "cg" / "cpuset" / f"rkt-{UUID}"))
    pod = _pod(tmp_path)
    record = tmp_path / "stage1/rootfs/rkt/private/cgroups.json"
    backend = _Backend((made,), planned=(made, refused))
    backend.record = record
    monkeypatch.setattr("rkt.host.cgroups.detect_backend", lambda: backend)
    _, cgroup = run.create_cgroup(pod)
    assert backend.record_at_create is not None  # written before ``create`` ran
    assert PodCgroup.from_json(backend.record_at_create).dirs == (made, refused)
    assert cgroup is not None and PodCgroup.from_json(record.read_bytes()).dirs == (made,)
    nothing = _Backend((), planned=(made,))
    monkeypatch.setattr("rkt.host.cgroups.detect_backend", lambda: nothing)
    assert run.create_cgroup(pod) == (None, None)
    assert not record.exists()
