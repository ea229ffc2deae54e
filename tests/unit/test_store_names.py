"""The name files (rkt/store/names.py): a pod start finds its images without sqlite, and a name
file is either absent or equal to the index, whatever writes the index and wherever it stops."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from rkt.errors import StoreError
from rkt.store import names
from rkt.store.records import ImageRecord
from rkt.store.store import Store

LAYER = "sha256:" + "ab" * 32


def _rec(n: int, name: str = "example.com/app", **labels: str) -> ImageRecord:
    manifest = b'{"acKind": "ImageManifest", "name": "%s", "\xc3\xa9": "\\u00e9"}'
    return ImageRecord(
        id="sha512-" + f"{n:02x}" * 64, name=name, labels={"version": str(n), **labels},
        manifest=manifest % name.encode(),
        import_time=1000.0 + n, last_used=2000.0 + n, size=10 + n, uncompressed_size=20 + n,
        compression="gzip", source=f"/src/{n}.aci", tree_id="deps-" + f"{n:02x}" * 32,
        tree_size=30 + n,
    )  # fmt: skip


def _add(store: Store, rec: ImageRecord) -> None:
    blob = store.blob_path(rec.id)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"blob")
    store.add_image(rec)


def _file(store: Store, name: str) -> Path:
    fname = names.file_name(name)
    assert fname is not None
    return Path(store.names_dir) / fname


def _index_entries(data: Path, name: str) -> list[names.Entry]:
    with Store(data) as store:
        return store.index.entries_named(name)


def test_file_names_are_escaped_one_to_one_and_never_hidden() -> None:
    assert names.file_name("example.com/app") == "example.com%2fapp.rows"
    assert names.file_name("a%2fb") == "a%252fb.rows"  # "%" itself is escaped
    assert names.file_name("a/b") != names.file_name("a%2fb")
    assert names.file_name("..") == "%2e..rows"
    assert names.file_name(".hidden") == "%2ehidden.rows"
    assert names.file_name("Upper:é") == "%55pper%3a%c3%a9.rows"
    assert names.file_name("") is None
    assert names.file_name("x" * 241) is None
    for name in ("example.com/app", "..", "a/../../b", "/etc/passwd"):
        fname = names.file_name(name)
        assert fname is not None and "/" not in fname and not fname.startswith(".")


def test_a_file_reads_back_as_the_records_and_layers_written(tmp_path: Path) -> None:
    entries = [(_rec(2), [LAYER, "sha256:" + "cd" * 32]), (_rec(1), [])]
    names.write(tmp_path, "example.com/app", entries)
    assert names.read(tmp_path, "example.com/app") == entries
    assert names.read(tmp_path, "example.com/other") is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"v": 2, "name": "example.com/app", "rows": [["x"]]}\n',
        b'{"v": 1, "name": "example.com/app", "rows": []}\n',
        b'{"v": 2, "name": "example.com/app", "rows": []}',  # no newline: torn
        b"{\n",
        b"[]\n",
    ],
)
def test_a_torn_or_foreign_file_is_not_used(tmp_path: Path, content: bytes) -> None:
    names.write(tmp_path, "example.com/app", [(_rec(1), [])])
    (tmp_path / "example.com%2fapp.rows").write_bytes(content)
    assert names.read(tmp_path, "example.com/app") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (0, "sha512-../../etc"),
        (10, "../../../../etc"),
        (10, "deps-" + "0" * 63 + "/"),
        (12, ["sha256:../x"]),
        (12, ["sha256:" + "A" * 64]),
    ],
)
def test_a_row_naming_paths_the_store_never_makes_is_not_used(
    tmp_path: Path, field: int, value: object
) -> None:
    """Ids, tree ids and layer digests become paths in the store: only their own forms."""
    from rkt import jsonio

    names.write(tmp_path, "example.com/app", [(_rec(1), [LAYER])])
    path = tmp_path / "example.com%2fapp.rows"
    header, _, blobs = path.read_bytes().partition(b"\n")
    doc = jsonio.loads(header)
    doc["rows"][0][field] = value
    path.write_bytes(jsonio.dumps(doc).encode() + b"\n" + blobs)
    assert names.read(tmp_path, "example.com/app") is None


@pytest.mark.parametrize("span", [[0, 10**6], [-1, 3], [5, -1], ["x", 1], [1]])
def test_a_row_whose_manifest_is_not_in_the_file_is_not_used(
    tmp_path: Path, span: list[object]
) -> None:
    from rkt import jsonio

    names.write(tmp_path, "example.com/app", [(_rec(1), [])])
    path = tmp_path / "example.com%2fapp.rows"
    header, _, blobs = path.read_bytes().partition(b"\n")
    doc = jsonio.loads(header)
    doc["rows"][0][3] = span
    path.write_bytes(jsonio.dumps(doc).encode() + b"\n" + blobs)
    assert names.read(tmp_path, "example.com/app") is None


def test_a_file_of_another_name_is_not_used(tmp_path: Path) -> None:
    names.write(tmp_path, "example.com/app", [(_rec(1), [])])
    os.rename(tmp_path / "example.com%2fapp.rows", tmp_path / "example.com%2fother.rows")
    assert names.read(tmp_path, "example.com/other") is None


def test_a_pod_start_finds_its_images_without_opening_the_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))
        _add(store, _rec(2))
        _add(store, _rec(3, name="example.com/other"))
    with Store(data) as store:
        found = store.find_by_name("example.com/app", {"version": "1"})
        assert [r.id for r in found] == [_rec(1).id]
        assert store.get(found[0].id) == _rec(1)
        assert store.image_layers(found[0].id) == []
        assert [r.id for r in store.find_by_name("example.com/app")] == [_rec(2).id, _rec(1).id]
        assert store._index is None  # no sqlite on this path
    assert _index_entries(data, "example.com/app") == [(_rec(2), []), (_rec(1), [])]


def test_every_kind_of_write_keeps_the_file_equal_to_the_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    name = "example.com/app"

    def file_equals_index() -> None:
        with Store(data) as store:
            assert names.read(store.names_dir, name) == store.index.entries_named(name)

    with Store(data) as store:
        _add(store, _rec(1))
        file_equals_index()
        _add(store, _rec(2))  # a second image of the name
        file_equals_index()
        store.touch(_rec(1).id)  # last use
        assert names.read(store.names_dir, name)[1][0].last_used > 2001.0  # type: ignore[index]
        file_equals_index()
        with store.index.transaction() as conn:  # layers, written by plain SQL
            conn.execute(
                "INSERT INTO image_layers (image_id, position, digest) VALUES (?, 0, ?)",
                (_rec(2).id, LAYER),
            )
        assert names.read(store.names_dir, name)[0][1] == [LAYER]  # type: ignore[index]
        with store.index.transaction() as conn:  # a tree dropped (an UPDATE by tree id)
            store.index.delete_tree(conn, "deps-" + "02" * 32)
        assert names.read(store.names_dir, name)[0][0].tree_id is None  # type: ignore[index]
        file_equals_index()
        store.remove_image(_rec(2).id)
        file_equals_index()
        store.remove_image(_rec(1).id)
        assert not _file(store, name).exists()  # no images: no file


def test_a_reader_that_finds_no_file_writes_it_from_the_index(tmp_path: Path) -> None:
    """A store from before name files, or one a crash left without them."""
    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))
        path = _file(store, "example.com/app")
    path.unlink()
    with Store(data) as store:
        assert [r.id for r in store.find_by_name("example.com/app")] == [_rec(1).id]
    assert names.read(path.parent, "example.com/app") == [(_rec(1), [])]


def test_a_change_that_cannot_remove_the_file_is_not_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))

    def fail(names_dir: object, changed: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(names, "invalidate", fail)
    with Store(data) as store, pytest.raises(StoreError, match="cannot remove a name file"):
        store.remove_image(_rec(1).id)
    monkeypatch.undo()
    with Store(data) as store:
        assert store.index.get_image(_rec(1).id) is not None
        assert names.read(store.names_dir, "example.com/app") == [(_rec(1), [])]


def test_a_writer_that_stops_after_its_commit_leaves_no_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is removed (durably) before the commit and written after it: stopping in
    between leaves it absent, and the next reader rewrites it from the index."""
    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(names, "write", killed)
    with Store(data) as store, pytest.raises(KeyboardInterrupt):
        _add(store, _rec(2))
    monkeypatch.undo()
    with Store(data) as store:
        assert not _file(store, "example.com/app").exists()
        assert len(store.find_by_name("example.com/app")) == 2  # committed; file rewritten
    with Store(data) as store:
        assert [r.id for r in store.find_by_name("example.com/app")] == [_rec(2).id, _rec(1).id]
        assert store._index is None


def _writer(data: str, worker: int, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    with Store(Path(data)) as store:
        for i in range(8):
            _add(store, _rec(worker * 16 + i))
            store.touch(_rec(worker * 16 + i).id)


def test_writers_in_many_processes_leave_the_file_equal_to_the_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Store(data).close()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(str(data), w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(data) as store:
        from_index = store.index.entries_named("example.com/app")
        assert len(from_index) == 32
        assert names.read(store.names_dir, "example.com/app") == from_index


def test_a_store_made_before_name_files_gets_the_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))
        names_dir = Path(store.names_dir)
    for f in names_dir.iterdir():
        f.unlink()
    names_dir.rmdir()
    started = time.time()
    with Store(data) as store:
        assert names_dir.is_dir()
        assert store.find_by_name("example.com/app")[0].last_used < started
    assert names.read(names_dir, "example.com/app") == [(_rec(1), [])]


def test_manifests_are_kept_byte_for_byte(tmp_path: Path) -> None:
    """Manifests follow the JSON line as they are: any bytes, newlines included."""
    data = tmp_path / "data"
    rec = _rec(1)._replace(manifest=b'{"x": "\xff"}\n\n')
    other = _rec(2)._replace(manifest=b"")
    with Store(data) as store:
        _add(store, rec)
        _add(store, other)
    with Store(data) as store:
        assert store.find_by_name("example.com/app") == [other, rec]
        assert store._index is None


def test_an_index_from_before_name_files_is_migrated_and_a_newer_one_refused(
    tmp_path: Path,
) -> None:
    """Version 3 marks an index whose writers keep the name files: an rkt that predates them
    (version 2) refuses it, as this one refuses a version it does not know."""
    import _sqlite3

    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))
        db_path = str(store.db_dir / "index.sqlite")
    conn = _sqlite3.connect(db_path, isolation_level=None)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.execute("PRAGMA user_version=2")  # as an rkt before name files left it
    conn.close()
    with Store(data) as store:
        assert store.index.version() == 3
        assert store.find_by_name("example.com/app") == [_rec(1)]
    conn = _sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA user_version=4")
    conn.close()
    with Store(data) as store, pytest.raises(StoreError, match="schema version 4 is newer"):
        store.index.version()


def test_a_process_with_the_index_open_asks_it_and_rewrites_nothing(tmp_path: Path) -> None:
    """Once a process has opened the index (it may be writing), lookups go to the index and do
    not rewrite the name file each time."""
    data = tmp_path / "data"
    with Store(data) as store:
        _add(store, _rec(1))
        path = _file(store, "example.com/app")
        before = path.stat().st_ino
        for _ in range(3):
            assert store.find_by_name("example.com/app") == [_rec(1)]
        assert path.stat().st_ino == before
