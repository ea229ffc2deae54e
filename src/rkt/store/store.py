"""The content-addressed image store under ``<dir>/cas``.

Layout (documented in docs/architecture.md)::

    cas/db/index.sqlite            the index (WAL); see rkt.store.db
    cas/db/names/<name>.rows       the index's rows by image name; see rkt.store.names
    cas/blob/sha512/ab/sha512-ab…  each image as fetched (maybe compressed), named by its image ID
    cas/tree/deps-<hex>/           rendered trees: rootfs/ and manifest, named by the render chain
    cas/locks/<id>.lock            per-image and per-tree flock files
    cas/tmp/<name>/                work in progress, each with a held .lock (see rkt.store.locks)

Every write lands in ``cas/tmp`` first, is fsynced (syncfs for trees) and renamed into place; the
index row that makes it visible is written last, so a process killed at any instant leaves at worst
an orphan that the next command (or ``rkt image gc``) removes, never a listed-but-broken image.

May import ``rkt.errors``, ``rkt.schema`` and ``rkt.formats``.
"""

from __future__ import annotations

import grp
import os
import time

from rkt.errors import AmbiguousError, NotFoundError, StoreError
from rkt.paths import Path
from rkt.store import names
from rkt.store.locks import FileLock, TempDir, clean_stale_tempdirs, remove_tree
from rkt.store.records import ImageRecord, RemoteRecord, TreeRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from rkt.store.db import ImageIndex

STORE_GROUP = "rkt"
_DIR_MODE = 0o2775
TOUCH_INTERVAL = 60.0  # seconds: how stale an image's recorded last use may be (Store.touch)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path) -> None:
    """Flush the whole filesystem holding ``path`` (one call instead of an fsync per file)."""
    import ctypes  # only a render or an import syncs (~2 ms of imports otherwise)

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def tree_id_for(chain: Sequence[str]) -> str:
    """A tree is named by the ordered list of images rendered into it."""
    import hashlib  # OpenSSL (~3 ms to import): only when a tree is named, never on `rkt run`

    return "deps-" + hashlib.sha512("\n".join(chain).encode()).hexdigest()[:64]


class Store:
    """The store of one data directory. The index (sqlite) is opened on first use: a pod start
    whose images are all in the name files (rkt.store.names) never opens it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.cas = data_dir / "cas"
        self.blob_dir = self.cas / "blob" / "sha512"
        self.tree_dir = self.cas / "tree"
        self.tmp_dir = self.cas / "tmp"
        self.lock_dir = self.cas / "locks"
        self.db_dir = self.cas / "db"
        self.names_dir = self.db_dir / names.DIR_NAME
        self._group: tuple[int | None] | None = None  # the rkt group's gid, once looked up
        self._ensure_layout()
        self._index: ImageIndex | None = None
        # images read from the name files by this process (id -> entry), while the index is
        # not open; once it is, it answers (this process may be writing)
        self._seen: dict[str, names.Entry] = {}
        clean_stale_tempdirs(self.tmp_dir)

    @property
    def index(self) -> ImageIndex:
        if self._index is None:
            from rkt.store.db import ImageIndex

            db_path = self.db_dir / "index.sqlite"
            self._index = ImageIndex(db_path, names_dir=self.names_dir)
            self._share_db_files(db_path, self._gid())
            self._seen.clear()
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # layout -----------------------------------------------------------------------------------

    def _gid(self) -> int | None:
        """Group ``rkt``'s gid, looked up (NSS reads /etc/group) once, and only when something
        is created: not on the way of a store that is already laid out and whose index stays
        closed (``rkt run`` of a stored image)."""
        if self._group is None:
            self._group = (_store_gid(),)
        return self._group[0]

    def _ensure_layout(self) -> None:
        old_umask = os.umask(0o002)
        try:
            for path in (
                self.data_dir,
                self.cas,
                self.cas / "blob",
                self.blob_dir,
                self.tree_dir,
                self.tmp_dir,
                self.lock_dir,
                self.db_dir,
                self.names_dir,
            ):
                if path.is_dir():
                    continue
                try:
                    path.mkdir(mode=_DIR_MODE if path != self.data_dir else 0o755, exist_ok=True)
                    gid = self._gid() if os.geteuid() == 0 and path != self.data_dir else None
                    if gid is not None:
                        os.chown(path, 0, gid)
                        os.chmod(path, _DIR_MODE)
                except PermissionError as exc:
                    raise StoreError(
                        f'image store "{self.cas}": cannot create "{path}" (permission denied; '
                        f'run as root or as a member of group "{STORE_GROUP}")'
                    ) from exc
                except OSError as exc:  # a file where a directory belongs, a read-only fs...
                    raise StoreError(
                        f'image store "{self.cas}": cannot create "{path}": {exc.strerror}'
                    ) from exc
        finally:
            os.umask(old_umask)

    def _share_db_files(self, db_path: Path, gid: int | None) -> None:
        """Group ``rkt`` members must be able to write the index (and its WAL files)."""
        if os.geteuid() != 0:
            return
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            try:
                if gid is not None:
                    os.chown(path, 0, gid)
                os.chmod(path, 0o664)
            except FileNotFoundError:
                pass

    def tempdir(self, prefix: str = "t") -> TempDir:
        old_umask = os.umask(0o002)
        try:
            return TempDir(self.tmp_dir, prefix)
        finally:
            os.umask(old_umask)

    def lock_for(self, key: str) -> FileLock:
        return FileLock(self.lock_dir / f"{key}.lock")

    def blob_path(self, image_id: str) -> Path:
        return self.blob_dir / image_id[7:9] / image_id

    def tree_path(self, tree_id: str) -> Path:
        return self.tree_dir / tree_id

    # lookups ----------------------------------------------------------------------------------

    def get(self, image_id: str) -> ImageRecord | None:
        seen = self._seen.get(image_id) if self._index is None else None
        return seen[0] if seen is not None else self.index.get_image(image_id)

    def image_layers(self, image_id: str) -> list[str]:
        """The digests of an image's Docker/OCI layers, bottom-most first ([] for an ACI)."""
        seen = self._seen.get(image_id) if self._index is None else None
        return list(seen[1]) if seen is not None else self.index.image_layers(image_id)

    def list_images(self) -> list[ImageRecord]:
        return self.index.all_images()

    def resolve_id(self, prefix: str) -> ImageRecord:
        """A full image ID or a unique prefix of one (``sha512-abc``)."""
        matches = self.index.images_with_prefix(prefix)
        if not matches:
            raise NotFoundError(f'image "{prefix}": no image with this ID in the store')
        if len(matches) > 1:
            raise AmbiguousError(
                f'image "{prefix}": ID prefix matches {len(matches)} images; give more digits'
            )
        return matches[0]

    def find_by_name(self, name: str, labels: Mapping[str, str] | None = None) -> list[ImageRecord]:
        """Images called ``name`` whose labels include ``labels``; newest import first."""
        wanted = dict(labels or {})
        return [
            rec
            for rec in self._named(name)
            if all(rec.labels.get(k) == v for k, v in wanted.items())
        ]

    def _named(self, name: str) -> list[ImageRecord]:
        """The name's images: from its name file when there is one (while this process has
        not opened the index: once it has, it may be writing, and the index answers), else
        from the index, and the missing file written for next time."""
        if self._index is not None:
            return self._index.images_named(name)
        entries = names.read(self.names_dir, name)
        if entries is not None:
            for entry in entries:
                self._seen[entry[0].id] = entry
            return [rec for rec, _layers in entries]
        found = self.index.images_named(name)
        if found:
            self.index.repair_name_file(name)
        return found

    def get_remote(self, url: str) -> RemoteRecord | None:
        return self.index.get_remote(url)

    def put_remote(self, rec: RemoteRecord) -> None:
        self.index.put_remote(rec)

    def touch(self, image_id: str, last_used: float | None = None) -> None:
        """Record a use of the image (``rkt run``). Like the ``relatime`` mount option, not again
        within ``TOUCH_INTERVAL`` of the last one recorded (``last_used``, when the caller has
        the record): a write to the index on every pod start costs its WAL checkpoint (~0.8 ms)
        and serialises pods starting at once on the index's write lock, while ``image gc``
        (a grace period of hours) and ``image list`` need the last use to the minute at most."""
        now = time.time()
        if last_used is not None and 0 <= now - last_used < TOUCH_INTERVAL:
            return
        self.index.touch_image(image_id, now)

    # writes -----------------------------------------------------------------------------------

    def commit_blob(self, tmp_blob: Path, image_id: str) -> Path:
        """Move a verified, fsynced temp file into the blob store (idempotent)."""
        dest = self.blob_path(image_id)
        old_umask = os.umask(0o002)
        try:
            dest.parent.mkdir(mode=_DIR_MODE, exist_ok=True)
        finally:
            os.umask(old_umask)
        if dest.exists():
            return dest
        with open(tmp_blob, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_blob, 0o664)
        os.replace(tmp_blob, dest)
        _fsync_dir(dest.parent)
        return dest

    def commit_tree(self, tmp_tree: Path, tree: TreeRecord) -> Path:
        """Move a complete rendered tree into place and record it (idempotent)."""
        dest = self.tree_path(tree.id)
        if not dest.exists():
            syncfs(tmp_tree)
            os.replace(tmp_tree, dest)
            _fsync_dir(self.tree_dir)
        with self.index.transaction() as conn:
            self.index.insert_tree(conn, tree)
            self.index.set_image_tree(conn, tree.image_id, tree)
        return dest

    def add_image(self, rec: ImageRecord) -> None:
        """Make an image visible; its blob must already be committed."""
        if not self.blob_path(rec.id).is_file():
            raise StoreError(f'image "{rec.id}": blob missing, refusing to index it')
        with self.index.transaction() as conn:
            existing = self.index.get_image(rec.id)
            if existing is not None:
                rec = rec._replace(
                    import_time=existing.import_time,
                    tree_id=existing.tree_id or rec.tree_id,
                    tree_size=existing.tree_size or rec.tree_size,
                )
            self.index.insert_image(conn, rec)

    def trees_built_on(self, image_id: str) -> list[str]:
        """The rendered trees that have the image in their chain (its own, and those of the
        images that depend on it): what removing it removes."""
        return [t.id for t in self.index.all_trees() if image_id in t.chain]

    def remove_image(self, image_id: str) -> None:
        """Unlist the image first, then delete its blob and the trees rendered from it."""
        with self.lock_for(image_id):
            rec = self.index.get_image(image_id)
            if rec is None:
                raise NotFoundError(f'image "{image_id}": not in the store')
            trees = self.trees_built_on(image_id)
            with self.index.transaction() as conn:
                self.index.delete_image(conn, image_id)
                for tree in trees:
                    self.index.delete_tree(conn, tree)
            for tree in trees:
                self._discard(self.tree_path(tree))
            self._discard(self.blob_path(image_id))
        from rkt.store.layers import reclaim_layers

        reclaim_layers(self)  # Docker/OCI layers no other image uses

    def discard_unlisted_blob(self, image_id: str) -> None:
        """Drop a committed blob whose image never got listed (the caller holds its lock)."""
        if self.index.get_image(image_id) is None:
            self._discard(self.blob_path(image_id))

    def _discard(self, path: Path) -> None:
        """Rename out of sight, then delete: a crash mid-delete leaves only a temp dir."""
        if not path.exists() and not path.is_symlink():
            return
        with self.tempdir("rm") as tmp:
            target = tmp.path / "victim"
            try:
                os.replace(path, target)
            except FileNotFoundError:
                return
            remove_tree(target)

    # garbage ----------------------------------------------------------------------------------

    def _discard_unlisted(self, path: Path, is_listed: Callable[[str], bool]) -> bool:
        """Delete ``path`` if nobody holds its lock and the index still does not list it."""
        lock = self.lock_for(path.name)
        if not lock.acquire(blocking=False):
            return False  # an importer is committing it right now
        try:
            if is_listed(path.name):
                return False
            self._discard(path)
            return True
        finally:
            lock.release()

    def remove_orphans(self) -> list[str]:
        """Delete blobs and trees on disk that the index does not list; return their names."""
        known_images = {rec.id for rec in self.index.all_images()}
        known_trees = {tree.id for tree in self.index.all_trees()}
        removed: list[str] = []
        for shard in sorted(self.blob_dir.glob("*")):
            for blob in shard.iterdir():
                if blob.name not in known_images and self._discard_unlisted(
                    blob, lambda name: self.index.get_image(name) is not None
                ):
                    removed.append(blob.name)
        # A tree recorded for an image that is not listed: a fetch killed between committing the
        # tree and listing the image. The importer holds the image's lock until it lists it.
        for rec in self.index.all_trees():
            if rec.image_id in known_images:
                continue
            lock = self.lock_for(rec.image_id)
            if lock.acquire(blocking=False):
                try:
                    if self.index.get_image(rec.image_id) is None:
                        with self.index.transaction() as conn:
                            self.index.delete_tree(conn, rec.id)
                        known_trees.discard(rec.id)
                        with self.lock_for(rec.id):
                            self._discard(self.tree_path(rec.id))
                        removed.append(rec.id)
                finally:
                    lock.release()
        for tree in sorted(self.tree_dir.iterdir()):
            if tree.name not in known_trees and self._discard_unlisted(
                tree, lambda name: self.index.get_tree(name) is not None
            ):
                removed.append(tree.name)
        from rkt.store.layers import reclaim_layers

        removed += reclaim_layers(self)
        return removed


def _store_gid() -> int | None:
    try:
        return grp.getgrnam(STORE_GROUP).gr_gid
    except KeyError:
        return None
