"""Crash safety: a fetch killed with SIGKILL at random instants never leaves a listed-but-broken
image; the next rkt command removes the dead process's temp dirs and ``rkt image gc`` its orphan
blobs and trees (issue 2, acceptance 5 and "Store: crash safety").

The kill times are random on purpose (a seeded ``random.Random``): the sleep before each kill is
the experiment, not synchronisation. They are spread over the fetch's measured duration, one per
twentieth of it, so every phase (start-up, download, extraction, commit) gets hit.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ImageFactory, Rkt
from tests.support.aci_craft import blob_files, tmp_entries, tree_dirs

KILLS = 20
SEED = 20_240_602
FETCH = ("--insecure-options=image", "fetch", "--full")


@pytest.fixture
def big_image(images: ImageFactory) -> Path:
    """busybox plus ~30 MB of incompressible files, gzip-compressed."""
    rng = random.Random(SEED)
    files = {f"data/blob-{i:02}": rng.randbytes(1 << 20) for i in range(30)}
    return images.build("example.com/crash", compression="gzip", extra_files=files)


def assert_store_matches_index(rkt: Rkt) -> list[str]:
    """After gc: the blobs and trees on disk are exactly those of the listed images."""
    ids = sorted(str(img["id"]) for img in rkt.image_list())
    assert blob_files(rkt.dir) == ids
    assert len(tree_dirs(rkt.dir)) == len(ids)
    return ids


@pytest.mark.slow
def test_fetch_killed_at_random_instants_never_leaves_a_broken_image(
    rkt: Rkt, big_image: Path, as_root: None
) -> None:
    started = time.monotonic()
    image_id = rkt.run(*FETCH, str(big_image)).stdout.strip()
    duration = time.monotonic() - started
    rkt.run("image", "rm", image_id)
    assert blob_files(rkt.dir) == [] and tree_dirs(rkt.dir) == []

    rng = random.Random(SEED)
    outcomes = {"listed": 0, "absent": 0, "finished": 0, "orphans": 0}
    for kill in range(KILLS):
        delay = duration * (kill + rng.random()) / KILLS
        proc = rkt.popen(*FETCH, str(big_image))
        time.sleep(delay)  # the random instant under test, not a synchronisation
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            outcomes["finished"] += 1
        else:
            assert proc.returncode == -signal.SIGKILL, err.decode()

        # The next command (any rkt command) deletes the dead process's temp dirs...
        listed = rkt.image_list()
        assert tmp_entries(rkt.dir) == [], f"kill {kill} after {delay:.3f}s"
        # ... and the image is either whole and verified, or not there at all.
        assert [img["id"] for img in listed] in ([], [image_id]), listed
        if listed:
            outcomes["listed"] += 1
            verify = rkt.run("image", "verify", check=False)
            assert verify.returncode == 0, f"kill {kill} after {delay:.3f}s: {verify.stdout}"
        else:
            outcomes["absent"] += 1
        # gc removes what a kill between commits left unlisted (a blob, a tree).
        gc = rkt.run("image", "gc", "--grace-period=24h")
        outcomes["orphans"] += gc.stderr.count("removed orphan")
        assert assert_store_matches_index(rkt) == ([image_id] if listed else [])
        if listed:
            rkt.run("image", "rm", image_id)
        assert blob_files(rkt.dir) == [] and tree_dirs(rkt.dir) == []

    assert rkt.run(*FETCH, str(big_image)).stdout.strip() == image_id
    rkt.run("image", "verify", image_id)
    assert assert_store_matches_index(rkt) == [image_id]
    assert tmp_entries(rkt.dir) == []
    # Kills were spread over the whole fetch: some before the commit, some (maybe) after.
    assert outcomes["absent"] > 0, outcomes
    print(f"fetch took {duration:.2f}s; outcomes of {KILLS} kills: {outcomes}")


@pytest.mark.slow
def test_fetch_killed_while_image_is_listed_keeps_it_valid(
    rkt: Rkt, big_image: Path, as_root: None
) -> None:
    """Re-fetching an image already in the store, killed at random instants: it stays listed
    and verifies every time."""
    started = time.monotonic()
    image_id = rkt.run(*FETCH, str(big_image)).stdout.strip()
    duration = time.monotonic() - started
    rng = random.Random(SEED + 1)
    kills = 8
    for kill in range(kills):
        proc = rkt.popen(*FETCH, str(big_image))
        time.sleep(duration * (kill + rng.random()) / kills)  # the random instant under test
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
        assert [img["id"] for img in rkt.image_list()] == [image_id]
        assert tmp_entries(rkt.dir) == []
        rkt.run("image", "verify", image_id)
    rkt.run("image", "gc", "--grace-period=24h")
    assert assert_store_matches_index(rkt) == [image_id]


# -- the states a kill can leave, made deterministically -----------------------------------------


def test_next_command_removes_dead_temp_dirs_and_keeps_live_ones(rkt: Rkt, tmp_path: Path) -> None:
    rkt.image_list()  # creates the store
    tmp = rkt.dir / "cas" / "tmp"
    killed_after_mkdir = tmp / "import-0000000000000000"
    killed_after_mkdir.mkdir()
    killed_mid_import = tmp / "import-1111111111111111"
    (killed_mid_import / "tree" / "rootfs" / "ro").mkdir(parents=True)
    (killed_mid_import / ".lock").touch()
    (killed_mid_import / "blob").write_bytes(b"partial")
    (killed_mid_import / "tree" / "rootfs" / "ro").chmod(0o500)
    live = tmp / "import-2222222222222222"
    live.mkdir()
    with open(live / ".lock", "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a live creator
        rkt.image_list()
        assert tmp_entries(rkt.dir) == [live.name]
    rkt.image_list()
    assert tmp_entries(rkt.dir) == []


def test_gc_removes_a_tree_and_blob_committed_but_never_listed(
    rkt: Rkt, tmp_path: Path, images: ImageFactory, as_root: None
) -> None:
    """A kill between committing blob and tree and inserting the image row: gc removes both
    (the tree's index record included), and a new fetch works."""
    aci = images.build("example.com/half", extra_files={"etc/half": b"half\n"})
    image_id = rkt.run(*FETCH, str(aci)).stdout.strip()
    db = sqlite3.connect(rkt.dir / "cas" / "db" / "index.sqlite")
    with db:
        db.execute("DELETE FROM images WHERE id = ?", (image_id,))
    db.close()
    assert rkt.image_list() == []
    gc = rkt.run("image", "gc", "--grace-period=24h")
    assert gc.stderr.count("removed orphan") == 2, gc.stderr
    assert blob_files(rkt.dir) == [] and tree_dirs(rkt.dir) == []
    db = sqlite3.connect(rkt.dir / "cas" / "db" / "index.sqlite")
    assert db.execute("SELECT COUNT(*) FROM trees").fetchone() == (0,)
    db.close()
    assert rkt.run(*FETCH, str(aci)).stdout.strip() == image_id
    rkt.run("image", "verify", image_id)
    assert len(tree_dirs(rkt.dir)) == 1
