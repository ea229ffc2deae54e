"""The index under concurrency: a fresh store opened by several rkt processes at once (none may
fail with "database is locked": switching a new index to WAL takes a lock sqlite does not wait
for), and threads of one process sharing its connection (store/db.py)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path


def _open(path: str, barrier: object, errors: object) -> None:
    from rkt.errors import RktError
    from rkt.store.store import Store

    barrier.wait()  # type: ignore[attr-defined]
    try:
        with Store(Path(path)) as store:
            store.index.version()
    except RktError as exc:
        errors.put(str(exc))  # type: ignore[attr-defined]


def test_fresh_store_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    for round_ in range(10):
        data = tmp_path / f"data{round_}"
        barrier, errors = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(str(data), barrier, errors)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert errors.empty(), errors.get()


def test_threads_sharing_the_index_commit_one_at_a_time(tmp_path: Path) -> None:
    """Layer imports commit from worker threads on the process's one connection: a BEGIN
    while another thread's transaction is open used to fail ("within a transaction")."""
    import threading

    from rkt.store.db import ImageIndex

    index = ImageIndex(tmp_path / "index.sqlite")
    failures: list[BaseException] = []

    def commit_many(worker: int) -> None:
        try:
            for i in range(200):
                with index.transaction() as conn:
                    conn.execute(
                        "INSERT OR IGNORE INTO layers"
                        " (digest, diff_id, size, uncompressed_size, tree_size, import_time)"
                        " VALUES (?,?,?,?,?,?)",
                        (f"sha256:{worker}-{i}", "d", 1, 1, 1, 0.0),
                    )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=commit_many, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[0]
    assert index.conn.execute("SELECT COUNT(*) FROM layers").fetchone()[0] == 800
    index.close()


def test_a_use_is_recorded_at_most_once_a_minute(tmp_path: Path) -> None:
    """Store.touch is relatime-like: a use within TOUCH_INTERVAL of the recorded one writes
    nothing (no write transaction on every pod start); an older one, or no record, is written."""
    import time

    from rkt.store.db import ImageRecord
    from rkt.store.store import TOUCH_INTERVAL, Store

    with Store(tmp_path / "data") as store:
        now = time.time()
        rec = ImageRecord(
            id="sha512-" + "a" * 128, name="example.com/x", labels={}, manifest=b"{}",
            import_time=now - 3600, last_used=now - 3600, size=1, uncompressed_size=1,
            compression="", source="", tree_id=None, tree_size=0,
        )  # fmt: skip
        with store.index.transaction() as conn:
            store.index.insert_image(conn, rec)

        def recorded() -> float:
            got = store.index.get_image(rec.id)
            assert got is not None
            return got.last_used

        store.touch(rec.id, recorded())  # an hour ago: recorded now
        first = recorded()
        assert now <= first <= time.time()
        store.touch(rec.id, first)  # a moment ago: nothing written
        assert recorded() == first
        store.touch(rec.id, first - TOUCH_INTERVAL - 1)  # the caller's record is older
        assert recorded() > first
        store.touch(rec.id)  # no record given: always written
        assert recorded() >= first
