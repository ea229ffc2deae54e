"""A fetch turns the cyclic garbage collector back on: rkt.cli.main turns it off while a command
starts, and `rkt run` keeps it off until the stage1 unless it has to download or import."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rkt.errors import RktError
from rkt.settings import GlobalOptions, InsecureOptions
from rkt.stage0.fetch import Fetcher, FetchRequest


@pytest.fixture
def collector_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _fetcher(tmp_path: Path) -> Fetcher:
    opts = GlobalOptions(dir=tmp_path, insecure=InsecureOptions(image=True))
    store: Any = object()  # nothing here reaches the store
    return Fetcher(opts, store)


def test_importing_a_file_turns_the_collector_on(tmp_path: Path, collector_off: None) -> None:
    bogus = tmp_path / "image.aci"
    bogus.write_bytes(b"not an image")
    with pytest.raises(RktError):  # the import itself fails: not an ACI
        _fetcher(tmp_path).fetch(FetchRequest(image=str(bogus), pull_policy="new"))
    assert gc.isenabled()


def test_a_missing_file_leaves_it_off(tmp_path: Path, collector_off: None) -> None:
    with pytest.raises(RktError):
        _fetcher(tmp_path).fetch(FetchRequest(image=str(tmp_path / "none.aci"), pull_policy="new"))
    assert not gc.isenabled()
