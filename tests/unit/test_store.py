"""The store's layout (rkt.store.store.Store): what it makes, and what it refuses on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkt.errors import StoreError
from rkt.store.store import Store


def test_a_file_where_a_store_directory_belongs_is_named(tmp_path: Path) -> None:
    (tmp_path / "cas").mkdir()
    (tmp_path / "cas" / "tmp").write_text("")
    with pytest.raises(StoreError, match=r'cannot create ".*/cas/tmp": File exists'):
        Store(tmp_path)


def test_the_layout_is_made_when_missing(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    for path in (store.blob_dir, store.tree_dir, store.tmp_dir, store.lock_dir, store.names_dir):
        assert path.is_dir()
