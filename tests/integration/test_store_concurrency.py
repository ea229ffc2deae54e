"""Many rkt processes on one store at once: fetches, removals and listings never corrupt it
(issue 2, acceptance 5 and "Store: concurrency")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ImageFactory, Rkt
from tests.support.aci_craft import blob_files, tmp_entries, tree_dirs

COMPRESSIONS = ("none", "gzip", "bzip2", "xz", "zstd")
FETCH = ("--insecure-options=image", "fetch", "--full")


def build_five(images: ImageFactory) -> list[Path]:
    return [
        images.build(
            f"example.com/concurrent-{i}",
            compression=compression,
            extra_files={f"etc/image-{i}": f"{i}\n".encode()},
        )
        for i, compression in enumerate(COMPRESSIONS)
    ]


def wait_all(
    procs: list[subprocess.Popen[bytes]], timeout: float = 300
) -> list[tuple[int, str, str]]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append((proc.returncode, out.decode(), err.decode()))
    return results


def assert_store_consistent(rkt: Rkt) -> list[dict[str, object]]:
    """Listed images verify, and the blobs and trees on disk are exactly the listed ones'."""
    listed = rkt.image_list()
    ids = sorted(str(img["id"]) for img in listed)
    verify = rkt.run("image", "verify", "--format=json", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert sorted(r["id"] for r in report) == ids
    assert all(r["ok"] for r in report), report
    assert blob_files(rkt.dir) == ids
    assert len(tree_dirs(rkt.dir)) == len(ids)  # root renders one tree per image (no deps here)
    assert tmp_entries(rkt.dir) == []
    return listed


def test_twenty_concurrent_fetches_of_five_images(
    rkt: Rkt, images: ImageFactory, as_root: None
) -> None:
    acis = build_five(images)
    procs = [rkt.popen(*FETCH, str(aci)) for _ in range(4) for aci in acis]
    results = wait_all(procs)
    for status, _, err in results:
        assert status == 0, err
    by_aci: dict[int, set[str]] = {}
    for index, (_, out, _) in enumerate(results):
        by_aci.setdefault(index % len(acis), set()).add(out.strip())
    assert all(len(found) == 1 for found in by_aci.values()), by_aci  # same ID each time
    assert tmp_entries(rkt.dir) == []
    listed = assert_store_consistent(rkt)
    assert len(listed) == 5
    assert sorted(str(img["id"]) for img in listed) == sorted(
        next(iter(found)) for found in by_aci.values()
    )
    assert sorted(str(img["name"]) for img in listed) == [
        f"example.com/concurrent-{i}" for i in range(5)
    ]


@pytest.mark.parametrize("rounds", [3])
def test_concurrent_rm_fetch_and_list_keep_the_store_consistent(
    rkt: Rkt, images: ImageFactory, as_root: None, rounds: int
) -> None:
    acis = build_five(images)
    ids = [rkt.run(*FETCH, str(aci)).stdout.strip() for aci in acis]
    for _ in range(rounds):
        procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        for index, (aci, image_id) in enumerate(zip(acis, ids, strict=True)):
            procs.append(("rm", rkt.popen("image", "rm", image_id)))
            procs.append(("fetch", rkt.popen(*FETCH, str(aci))))
            procs.append(("list", rkt.popen("image", "list", "--format=json")))
            if index % 2:
                procs.append(("fetch", rkt.popen(*FETCH, str(aci))))
                procs.append(("verify", rkt.popen("image", "verify", image_id)))
        for (kind, _), (status, out, err) in zip(
            procs, wait_all([p for _, p in procs]), strict=True
        ):
            assert "Traceback" not in err and "internal error" not in err, err
            if kind == "fetch":
                assert status == 0, err
                assert out.strip() in ids
            elif kind == "list":
                assert status == 0, err
                assert {img["id"] for img in json.loads(out)} <= set(ids)
            elif kind == "rm":
                # Removed, or already gone / not fetched again yet when rm looked.
                assert status == 0 or "not in the store" in err or "no image" in err, err
            else:
                # verify of an image being removed may find it gone; never a corrupt one.
                assert status == 0 or "no image" in err or "not in the store" in err, (out, err)
        assert_store_consistent(rkt)
    # Everything can be fetched back and verifies.
    for aci in acis:
        rkt.run(*FETCH, str(aci))
    assert len(assert_store_consistent(rkt)) == 5
