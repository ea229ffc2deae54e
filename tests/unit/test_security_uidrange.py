"""``--private-users`` uid ranges: allocated under a lock, never shared, freed with the pod."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from rkt.errors import PodError
from rkt.stage0.uidrange import FIRST_SHIFT, RANGE_SIZE, allocate_range
from rkt.stage1.common.args import parse_run

UUID = "0f293609-a27c-48b1-8cae-4ab5d9a41040"


def _make_pod(data: Path, uuid: str) -> None:
    (data / "pods" / "run" / uuid).mkdir(parents=True, exist_ok=True)


def _allocate(args: tuple[str, str]) -> int:
    data, uuid = args
    _make_pod(Path(data), uuid)
    return allocate_range(Path(data), uuid)[0]


def test_concurrent_allocations_are_disjoint(tmp_path: Path) -> None:
    uuids = [f"{i:08x}-0000-0000-0000-000000000000" for i in range(16)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        shifts = pool.map(_allocate, [(str(tmp_path), u) for u in uuids])
    assert len(set(shifts)) == 16
    assert all(s >= FIRST_SHIFT and (s - FIRST_SHIFT) % RANGE_SIZE == 0 for s in shifts)


def test_same_pod_keeps_its_range_and_a_gone_pod_frees_it(tmp_path: Path) -> None:
    _make_pod(tmp_path, "a")
    first = allocate_range(tmp_path, "a")
    assert allocate_range(tmp_path, "a") == first == (FIRST_SHIFT, RANGE_SIZE)
    _make_pod(tmp_path, "b")
    assert allocate_range(tmp_path, "b")[0] == FIRST_SHIFT + RANGE_SIZE
    (tmp_path / "pods" / "run" / "a").rmdir()
    _make_pod(tmp_path, "c")
    assert allocate_range(tmp_path, "c")[0] == FIRST_SHIFT  # a's block is free again


def test_stage1_private_users_flag() -> None:
    assert parse_run([f"--private-users={FIRST_SHIFT}:65536", UUID]).private_users == (
        FIRST_SHIFT,
        65536,
    )
    assert parse_run([UUID]).private_users is None
    for bad in ("0:65536", "5", "x:y", "4294967295:2"):
        with pytest.raises(PodError):
            parse_run([f"--private-users={bad}", UUID])
