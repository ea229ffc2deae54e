"""Docker/OCI layers in the store: each rendered once, by digest, shared by every image using it.

Layout (docs/images.md)::

    cas/layers/sha256-<hex>/rootfs/    one layer's files, whiteouts in overlayfs form
    cas/locks/sha256-<hex>.lock        held shared by an import from before it looks the layer
                                       up until the image that uses it is listed

Tables (schema version 2, ``rkt.store.db``): ``layers`` (one row per rendered layer) and
``image_layers`` (the ordered layers of each image, position 0 the bottom-most). Commit order, as
for every store write: the tree is renamed into place, then its ``layers`` row is written, and the
image's row together with its ``image_layers`` rows come last. A layer no listed image uses is
reclaimed by ``reclaim_layers`` (``image rm``, ``image gc``) unless an import holds its lock.

May import ``rkt.errors``, ``rkt.store.db`` and ``rkt.store.locks``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rkt.errors import StoreError
from rkt.paths import Path
from rkt.store.locks import FileLock
from rkt.store.records import ImageRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.store.store import Store

LAYERS_DIR = "layers"


@dataclass(frozen=True)
class LayerRecord:
    digest: str  # sha256:<hex> of the blob as distributed
    diff_id: str  # sha256:<hex> of the uncompressed tar
    size: int
    uncompressed_size: int
    tree_size: int
    import_time: float


def layer_key(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>``: a file name and a lock name."""
    algo, _, hexdigest = digest.partition(":")
    if (
        algo != "sha256"
        or len(hexdigest) != 64
        or not all(c in "0123456789abcdef" for c in hexdigest)
    ):
        raise StoreError(f'layer "{digest}": not a sha256 digest')
    return f"{algo}-{hexdigest}"


def layers_root(store: Store) -> Path:
    path = store.cas / LAYERS_DIR
    if not path.is_dir():
        old = os.umask(0o002)
        try:
            path.mkdir(mode=0o2775, exist_ok=True)
        finally:
            os.umask(old)
    return path


def layer_path(store: Store, digest: str) -> Path:
    """The layer's directory; the tree a stage1 stacks is its ``rootfs``."""
    return layers_root(store) / layer_key(digest)


def get_layer(store: Store, digest: str) -> LayerRecord | None:
    row = store.index.conn.execute(
        "SELECT digest, diff_id, size, uncompressed_size, tree_size, import_time"
        " FROM layers WHERE digest = ?",
        (digest,),
    ).fetchone()
    if row is None:
        return None
    return LayerRecord(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), float(row[5]))


def has_layer(store: Store, digest: str) -> bool:
    return get_layer(store, digest) is not None and (layer_path(store, digest) / "rootfs").is_dir()


def image_layers(store: Store, image_id: str) -> list[str]:
    """The digests of an image's layers, bottom-most first ([] for an ACI)."""
    return store.image_layers(image_id)


def layer_trees(store: Store, image_id: str) -> list[Path]:
    """The layer trees of an image, top-most first: what overlayfs takes as ``lowerdir``."""
    return [layer_path(store, d) / "rootfs" for d in reversed(image_layers(store, image_id))]


@contextlib.contextmanager
def layers_held(store: Store, digests: Sequence[str]) -> Iterator[None]:
    """Shared locks on layers: ``reclaim_layers`` leaves them alone while this is open."""
    locks = [FileLock(store.lock_dir / f"{layer_key(d)}.lock") for d in dict.fromkeys(digests)]
    try:
        for lock in locks:
            lock.acquire(shared=True)
        yield
    finally:
        for lock in locks:
            lock.release()


def commit_layer(store: Store, tmp_dir: Path, rec: LayerRecord) -> None:
    """Move a fully extracted layer (``tmp_dir/rootfs``) into place and record it (idempotent)."""
    from rkt.store.store import syncfs

    dest = layer_path(store, rec.digest)
    if not (dest / "rootfs").is_dir():
        syncfs(tmp_dir)
        try:
            os.replace(tmp_dir, dest)
        except OSError as exc:
            if not (dest / "rootfs").is_dir():  # else: a concurrent import committed it first
                raise StoreError(f'layer "{rec.digest}": cannot commit: {exc.strerror}') from exc
    with store.index.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO layers"
            " (digest, diff_id, size, uncompressed_size, tree_size, import_time)"
            " VALUES (?,?,?,?,?,?)",
            (rec.digest, rec.diff_id, rec.size, rec.uncompressed_size, rec.tree_size, time.time()),
        )


def add_layered_image(store: Store, rec: ImageRecord, digests: Sequence[str]) -> None:
    """List an image made of layers: its row and its ordered layer list, in one transaction."""
    if not store.blob_path(rec.id).is_file():
        raise StoreError(f'image "{rec.id}": blob missing, refusing to index it')
    for digest in digests:
        if not has_layer(store, digest):
            raise StoreError(f'image "{rec.id[:19]}": layer {digest} missing, refusing to index it')
    with store.index.transaction() as conn:
        existing = store.index.get_image(rec.id)
        if existing is not None:
            rec = rec._replace(import_time=existing.import_time)
        store.index.insert_image(conn, rec)
        conn.execute("DELETE FROM image_layers WHERE image_id = ?", (rec.id,))
        conn.executemany(
            "INSERT INTO image_layers (image_id, position, digest) VALUES (?,?,?)",
            [(rec.id, i, d) for i, d in enumerate(digests)],
        )


def layers_size(store: Store, digests: Sequence[str]) -> int:
    total = 0
    for digest in dict.fromkeys(digests):
        layer = get_layer(store, digest)
        total += layer.tree_size if layer else 0
    return total


def reclaim_layers(store: Store) -> list[str]:
    """Delete layers no listed image uses (rows and trees, orphan trees too); return their keys."""
    conn = store.index.conn
    unused = [
        str(r[0])
        for r in conn.execute(
            "SELECT digest FROM layers WHERE digest NOT IN (SELECT digest FROM image_layers)"
        ).fetchall()
    ]
    known = {layer_key(str(r[0])) for r in conn.execute("SELECT digest FROM layers").fetchall()}
    root = layers_root(store)
    on_disk = [p.name for p in root.iterdir()] if root.is_dir() else []
    orphans = [name for name in on_disk if name not in known and name.startswith("sha256-")]
    removed: list[str] = []
    for key, digest in [(layer_key(d), d) for d in unused] + [(n, None) for n in orphans]:
        lock = FileLock(store.lock_dir / f"{key}.lock")
        if not lock.acquire(blocking=False):
            continue  # an import is using it
        try:
            if digest is not None:
                with store.index.transaction() as tx:
                    still = tx.execute(
                        "SELECT 1 FROM image_layers WHERE digest = ? LIMIT 1", (digest,)
                    ).fetchone()
                    if still is not None:
                        continue
                    tx.execute("DELETE FROM layers WHERE digest = ?", (digest,))
            elif get_layer(store, "sha256:" + key[7:]) is not None:
                continue
            store._discard(root / key)
            removed.append(key)
        finally:
            lock.release()
    return removed
