"""The image index: an sqlite database in WAL mode, with a schema version and migrations.

Readers never block writers (WAL); every write is one short transaction (``BEGIN IMMEDIATE``), so
many rkt processes can fetch, list and remove at once. The database is the visibility point of the
store: an image is listed only once its blob (and tree, when rendered) is complete on disk.

Imports only the standard library and ``rkt.errors``. The records are ``NamedTuple``s: immutable
and typed, and much cheaper to create at import than dataclasses (every command imports this).
"""

from __future__ import annotations

import _sqlite3 as sqlite3
import _thread
from collections.abc import Callable

from rkt import jsonio
from rkt.errors import StoreError
from rkt.paths import Path
from rkt.store import names
from rkt.store.records import ImageRecord, RemoteRecord, TreeRecord

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 60_000


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript() would COMMIT the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE images (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            labels TEXT NOT NULL,
            manifest BLOB NOT NULL,
            import_time REAL NOT NULL,
            last_used REAL NOT NULL,
            size INTEGER NOT NULL,
            uncompressed_size INTEGER NOT NULL,
            compression TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            tree_id TEXT,
            tree_size INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX images_name ON images(name);
        CREATE TABLE remotes (
            url TEXT PRIMARY KEY,
            sig_url TEXT,
            etag TEXT,
            image_id TEXT NOT NULL,
            max_age INTEGER NOT NULL DEFAULT 0,
            download_time REAL NOT NULL
        );
        CREATE TABLE trees (
            id TEXT PRIMARY KEY,
            image_id TEXT NOT NULL,
            chain TEXT NOT NULL,
            hash TEXT NOT NULL,
            size INTEGER NOT NULL,
            render_time REAL NOT NULL
        );
        """,
    )


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Docker/OCI layers (rkt.store.layers): stored once by digest, listed per image in order."""
    _run_script(
        conn,
        """
        CREATE TABLE layers (
            digest TEXT PRIMARY KEY,
            diff_id TEXT NOT NULL,
            size INTEGER NOT NULL,
            uncompressed_size INTEGER NOT NULL,
            tree_size INTEGER NOT NULL,
            import_time REAL NOT NULL
        );
        CREATE TABLE image_layers (
            image_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (image_id, position)
        );
        CREATE INDEX image_layers_digest ON image_layers(digest);
        """,
    )


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """No table changes: from version 3 on, every writer keeps the name files equal to the
    index (rkt.store.names). The version makes an rkt that predates them refuse this index
    instead of writing it without them, which would leave the files stale."""


# MIGRATIONS[n] brings a database from version n to n + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _migrate_to_1,
    1: _migrate_to_2,
    2: _migrate_to_3,
}

# Temporary (per-connection) triggers reporting every name whose rows a write changes, for the
# name files (rkt.store.names): whichever statement makes the change, the name is caught.
_NAME_TRIGGERS = (
    "CREATE TEMP TRIGGER rkt_images_insert AFTER INSERT ON images"
    " BEGIN SELECT rkt_name_changed(NEW.name); END",
    "CREATE TEMP TRIGGER rkt_images_update AFTER UPDATE ON images"
    " BEGIN SELECT rkt_name_changed(OLD.name), rkt_name_changed(NEW.name); END",
    "CREATE TEMP TRIGGER rkt_images_delete AFTER DELETE ON images"
    " BEGIN SELECT rkt_name_changed(OLD.name); END",
    "CREATE TEMP TRIGGER rkt_layers_insert AFTER INSERT ON image_layers"
    " BEGIN SELECT rkt_name_changed((SELECT name FROM images WHERE id = NEW.image_id)); END",
    "CREATE TEMP TRIGGER rkt_layers_update AFTER UPDATE ON image_layers"
    " BEGIN SELECT rkt_name_changed((SELECT name FROM images WHERE id = OLD.image_id)),"
    " rkt_name_changed((SELECT name FROM images WHERE id = NEW.image_id)); END",
    "CREATE TEMP TRIGGER rkt_layers_delete AFTER DELETE ON image_layers"
    " BEGIN SELECT rkt_name_changed((SELECT name FROM images WHERE id = OLD.image_id)); END",
)


_IMAGE_COLUMNS = (
    "id, name, labels, manifest, import_time, last_used, size, uncompressed_size, compression,"
    " source, tree_id, tree_size"
)


def _image(row: tuple[object, ...]) -> ImageRecord:
    return ImageRecord(
        id=str(row[0]),
        name=str(row[1]),
        labels=jsonio.loads(str(row[2])),
        manifest=bytes(row[3]),  # type: ignore[call-overload]
        import_time=float(row[4]),  # type: ignore[arg-type]
        last_used=float(row[5]),  # type: ignore[arg-type]
        size=int(row[6]),  # type: ignore[call-overload]
        uncompressed_size=int(row[7]),  # type: ignore[call-overload]
        compression=str(row[8]),
        source=str(row[9]),
        tree_id=None if row[10] is None else str(row[10]),
        tree_size=int(row[11]),  # type: ignore[call-overload]
    )


class _CreationLock:
    """An exclusive flock on ``<index>.init.lock`` beside the index (never deleted)."""

    def __init__(self, db_path: Path) -> None:
        self.path = f"{db_path}.init.lock"

    def __enter__(self) -> None:
        import fcntl
        import os

        self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        import os

        os.close(self.fd)


class ImageIndex:
    """Typed queries over the index database; one connection per process."""

    def __init__(self, path: Path, *, writable: bool = True, names_dir: Path | None = None) -> None:
        """``names_dir``: the store's name files (rkt.store.names), kept equal to the index by
        every write transaction of this connection."""
        self.path = path
        self._tx_lock = _thread.RLock()  # the builtin: no `threading` import
        self.names_dir = names_dir
        self._names_lock = names.NamesLock(path.parent) if names_dir is not None else None
        self._changed_names: set[str] = set()
        self._in_transaction = False
        try:
            self.conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            # (connect's timeout is the busy timeout: no PRAGMA busy_timeout needed)
            if writable:
                self.conn.execute("PRAGMA synchronous=FULL")
            if writable and (self._journal_mode() != "wal" or self.version() != SCHEMA_VERSION):
                # A new (or old) index: switching it to WAL takes an exclusive lock for which
                # sqlite does not wait (busy_timeout does not apply), so two rkt processes using
                # a fresh store at once would see "database is locked". Creators take turns.
                with _CreationLock(path):
                    if self._journal_mode() != "wal":
                        self.conn.execute("PRAGMA journal_mode=WAL")
                    self._migrate(writable)
            else:
                self._migrate(writable)
            if names_dir is not None:
                self.conn.create_function("rkt_name_changed", 1, self._name_changed)
                for statement in _NAME_TRIGGERS:
                    self.conn.execute(statement)
        except sqlite3.Error as exc:
            raise StoreError(f'image index "{path}": {exc}') from exc

    def close(self) -> None:
        self.conn.close()
        if self._names_lock is not None:
            self._names_lock.close()

    def _name_changed(self, name: object) -> None:
        if isinstance(name, str):
            self._changed_names.add(name)

    # name files ---------------------------------------------------------------------------------

    def entries_named(self, name: str) -> list[names.Entry]:
        """The name's images with their layers, newest import first: a name file's content."""
        return [(rec, self.image_layers(rec.id)) for rec in self.images_named(name)]

    def write_name_files(self, changed: set[str]) -> None:
        """Write the files of ``changed`` names from the index (the names lock is held). A file
        that cannot be written stays absent: readers then ask the index."""
        assert self.names_dir is not None
        for name in sorted(changed):
            try:
                names.write(self.names_dir, name, self.entries_named(name))
            except (OSError, sqlite3.Error):
                pass

    def repair_name_file(self, name: str) -> None:
        """Write the name's file (a reader found none), in turn with the writers."""
        if self._names_lock is None or self._in_transaction:
            return  # (in a transaction of ours: it writes the files it changes)
        self._tx_lock.acquire()
        try:
            self._names_lock.acquire()
            try:
                self.write_name_files({name})
            finally:
                self._names_lock.release()
        except OSError:
            pass  # no lock file (a read-only store): the index answers, as before
        finally:
            self._tx_lock.release()

    def transaction(self) -> _Transaction:
        """One write transaction at a time on this connection: layer imports commit from
        worker threads, and a second BEGIN on a connection inside a transaction fails."""
        return _Transaction(self)

    def _journal_mode(self) -> str:
        return str(self.conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def version(self) -> int:
        row = self.conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def _migrate(self, writable: bool) -> None:
        if self.version() == SCHEMA_VERSION:
            return
        if self.version() > SCHEMA_VERSION:
            raise StoreError(
                f'image index "{self.path}": schema version {self.version()} is newer than this '
                f"rkt understands ({SCHEMA_VERSION})"
            )
        if not writable:
            raise StoreError(f'image index "{self.path}": needs a migration; run rkt as root once')
        with self.transaction() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version={version}")

    # images -----------------------------------------------------------------------------------

    def get_image(self, image_id: str) -> ImageRecord | None:
        row = self.conn.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)
        ).fetchone()
        return None if row is None else _image(row)

    def images_with_prefix(self, prefix: str) -> list[ImageRecord]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.conn.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",)
        ).fetchall()
        return [_image(r) for r in rows]

    def images_named(self, name: str) -> list[ImageRecord]:
        rows = self.conn.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE name = ? ORDER BY import_time DESC", (name,)
        ).fetchall()
        return [_image(r) for r in rows]

    def all_images(self) -> list[ImageRecord]:
        rows = self.conn.execute(f"SELECT {_IMAGE_COLUMNS} FROM images").fetchall()
        return [_image(r) for r in rows]

    def insert_image(self, conn: sqlite3.Connection, rec: ImageRecord) -> None:
        conn.execute(
            f"INSERT OR REPLACE INTO images ({_IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec.id,
                rec.name,
                jsonio.dumps(rec.labels, sort_keys=True),
                rec.manifest,
                rec.import_time,
                rec.last_used,
                rec.size,
                rec.uncompressed_size,
                rec.compression,
                rec.source,
                rec.tree_id,
                rec.tree_size,
            ),
        )

    def set_image_tree(self, conn: sqlite3.Connection, image_id: str, tree: TreeRecord) -> None:
        conn.execute(
            "UPDATE images SET tree_id = ?, tree_size = ? WHERE id = ?",
            (tree.id, tree.size, image_id),
        )

    def touch_image(self, image_id: str, when: float) -> None:
        """Record a use (``rkt run``). Committed without an fsync of the WAL (synchronous=NORMAL:
        still atomic and consistent): last_used only orders ``image gc``, so losing it to a power
        cut is harmless, and the fsync was ~0.8 ms of every pod start."""
        self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.transaction() as conn:
                conn.execute("UPDATE images SET last_used = ? WHERE id = ?", (when, image_id))
        finally:
            self.conn.execute("PRAGMA synchronous=FULL")

    def delete_image(self, conn: sqlite3.Connection, image_id: str) -> None:
        conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        conn.execute("DELETE FROM remotes WHERE image_id = ?", (image_id,))
        conn.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))

    def image_layers(self, image_id: str) -> list[str]:
        """The digests of an image's Docker/OCI layers, bottom-most first ([] for an ACI)."""
        rows = self.conn.execute(
            "SELECT digest FROM image_layers WHERE image_id = ? ORDER BY position", (image_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    # remotes ----------------------------------------------------------------------------------

    def get_remote(self, url: str) -> RemoteRecord | None:
        row = self.conn.execute(
            "SELECT url, sig_url, etag, image_id, max_age, download_time"
            " FROM remotes WHERE url = ?",
            (url,),
        ).fetchone()
        if row is None:
            return None
        return RemoteRecord(row[0], row[1], row[2], row[3], int(row[4]), float(row[5]))

    def put_remote(self, rec: RemoteRecord) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO remotes"
                " (url, sig_url, etag, image_id, max_age, download_time) VALUES (?,?,?,?,?,?)",
                (rec.url, rec.sig_url, rec.etag, rec.image_id, rec.max_age, rec.download_time),
            )

    # trees ------------------------------------------------------------------------------------

    def get_tree(self, tree_id: str) -> TreeRecord | None:
        row = self.conn.execute(
            "SELECT id, image_id, chain, hash, size, render_time FROM trees WHERE id = ?",
            (tree_id,),
        ).fetchone()
        if row is None:
            return None
        return TreeRecord(row[0], row[1], tuple(jsonio.loads(row[2])), row[3], int(row[4]), row[5])

    def all_trees(self) -> list[TreeRecord]:
        rows = self.conn.execute(
            "SELECT id, image_id, chain, hash, size, render_time FROM trees"
        ).fetchall()
        return [
            TreeRecord(r[0], r[1], tuple(jsonio.loads(r[2])), r[3], int(r[4]), r[5]) for r in rows
        ]

    def insert_tree(self, conn: sqlite3.Connection, tree: TreeRecord) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO trees (id, image_id, chain, hash, size, render_time)"
            " VALUES (?,?,?,?,?,?)",
            (
                tree.id,
                tree.image_id,
                jsonio.dumps(list(tree.chain)),
                tree.hash,
                tree.size,
                tree.render_time,
            ),
        )

    def delete_tree(self, conn: sqlite3.Connection, tree_id: str) -> None:
        conn.execute("DELETE FROM trees WHERE id = ?", (tree_id,))
        conn.execute(
            "UPDATE images SET tree_id = NULL, tree_size = 0 WHERE tree_id = ?", (tree_id,)
        )


class _Transaction:
    """``with index.transaction() as conn:`` BEGIN IMMEDIATE; COMMIT, or ROLLBACK on an error
    (a class, not ``contextlib.contextmanager``: contextlib is off the start path)."""

    def __init__(self, index: ImageIndex) -> None:
        self.index = index

    def __enter__(self) -> sqlite3.Connection:
        index = self.index
        index._tx_lock.acquire()
        locked = False
        try:
            if index._names_lock is not None:
                index._names_lock.acquire()  # before the index's lock: rkt.store.names
                locked = True
            index._changed_names.clear()
            index.conn.execute("BEGIN IMMEDIATE")
            index._in_transaction = True
        except BaseException as exc:
            if locked:
                index._names_lock.release()  # type: ignore[union-attr]
            index._tx_lock.release()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f'image index "{index.path}": {exc}') from exc
            if isinstance(exc, OSError):
                raise StoreError(f'image index "{index.path}": names lock: {exc}') from exc
            raise
        return index.conn

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        index = self.index
        changed = set(index._changed_names) if index.names_dir is not None else set()
        try:
            if kind is not None:
                index.conn.execute("ROLLBACK")
                return
            if changed:
                try:
                    names.invalidate(index.names_dir, changed)  # type: ignore[arg-type]
                except OSError as exc:
                    index.conn.execute("ROLLBACK")
                    raise StoreError(
                        f'image index "{index.path}": cannot remove a name file ({exc}); '
                        "nothing was changed"
                    ) from exc
            index.conn.execute("COMMIT")
            if changed:
                index.write_name_files(changed)
        finally:
            index._in_transaction = False
            index._changed_names.clear()
            if index._names_lock is not None:
                index._names_lock.release()
            index._tx_lock.release()
