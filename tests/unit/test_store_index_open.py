"""A fresh store opened by several rkt processes at once: none may fail with "database is
locked" (switching a new index to WAL takes a lock sqlite does not wait for; store/db.py)."""

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
