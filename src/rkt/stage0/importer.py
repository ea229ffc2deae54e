"""Import a verified image file into the store in one pass over its bytes.

While the file is read once, its raw bytes are copied into the blob temp file, the decompressed tar
is hashed (the image ID) and the rootfs is extracted into a temp tree. Only then, under the image's
lock, are blob, tree and index row committed, in that order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from rkt.errors import ImageError
from rkt.fetch.progress import NullProgress, Progress
from rkt.paths import Path
from rkt.store.records import ImageRecord, TreeRecord
from rkt.store.render import render_chain, render_image_tree
from rkt.store.store import Store, tree_id_for

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

ResolveDependency = Callable[[str, dict[str, str], "str | None"], str]


class _TeeReader:
    """A read-only stream that copies every byte it hands out into ``sink``."""

    def __init__(self, source: BinaryIO, sink: BinaryIO | None, progress: Progress) -> None:
        self.source = source
        self.sink = sink
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if data:
            if self.sink is not None:
                self.sink.write(data)
            self.progress.advance(len(data))
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        n = self.source.readinto(buf)  # type: ignore[attr-defined]
        if n:
            if self.sink is not None:
                self.sink.write(memoryview(buf)[:n])
            self.progress.advance(n)
        return int(n or 0)

    def readable(self) -> bool:
        return True


def import_image_file(
    store: Store,
    path: Path,
    *,
    source: str,
    render: bool,
    progress: Progress | None = None,
    resolve_dependency: ResolveDependency | None = None,
) -> str:
    """Import the ACI at ``path``; return its image ID. The file itself is left untouched."""
    from rkt.formats.aci import import_aci
    from rkt.schema.image import ImageManifest

    progress = progress or NullProgress()
    with store.tempdir("import") as tmp:
        blob_tmp = tmp.path / "blob"
        tree_tmp = tmp.path / "tree"
        tree_tmp.mkdir()
        rootfs = tree_tmp / "rootfs"
        size = path.stat().st_size
        progress.start(f"importing {path.name}", size)
        with open(path, "rb") as raw, open(blob_tmp, "wb") as sink:
            imported = import_aci(_TeeReader(raw, sink, progress), rootfs if render else None)  # type: ignore[arg-type]
            sink.flush()
            os.fsync(sink.fileno())
        progress.finish()
        manifest = ImageManifest.from_json(imported.manifest_bytes)
        image_id = imported.image_id
        has_deps = bool(manifest.dependencies)
        needs_chain = render and (has_deps or bool(manifest.path_whitelist))
        layers = None
        if needs_chain:
            if has_deps and resolve_dependency is None:
                raise ImageError(f'image "{manifest.name}": dependencies cannot be resolved here')
            # Resolved (and dependencies fetched) before taking this image's lock.
            layers = render_chain(
                store, image_id, resolve_dependency, manifest=imported.manifest_bytes
            )
        now = time.time()
        # The index row is the commit point: blob, then tree, then the row, all under the image's
        # lock (which keeps `image gc` off the not-yet-listed blob and tree). A failed render
        # leaves the image unlisted.
        with store.lock_for(image_id):
            store.commit_blob(blob_tmp, image_id)
            tree: TreeRecord | None = None
            if layers is not None:
                try:
                    tree = render_image_tree(
                        store, image_id, manifest=imported.manifest_bytes, layers=layers
                    )
                except BaseException:
                    store.discard_unlisted_blob(image_id)
                    raise
            elif render:
                assert imported.tree_hash is not None
                (tree_tmp / "manifest").write_bytes(imported.manifest_bytes)
                tree = TreeRecord(
                    id=tree_id_for([image_id]),
                    image_id=image_id,
                    chain=(image_id,),
                    hash=imported.tree_hash,
                    size=_tree_size(imported),
                    render_time=now,
                )
                with store.lock_for(tree.id):
                    store.commit_tree(tree_tmp, tree)
            labels = {label.name: label.value for label in manifest.labels}
            store.add_image(
                ImageRecord(
                    id=image_id,
                    name=manifest.name,
                    labels=labels,
                    manifest=imported.manifest_bytes,
                    import_time=now,
                    last_used=now,
                    size=blob_size(store, image_id),
                    uncompressed_size=imported.uncompressed_size,
                    compression=imported.compression,
                    source=source,
                    tree_id=tree.id if tree else None,
                    tree_size=tree.size if tree else 0,
                )
            )
    return image_id


def blob_size(store: Store, image_id: str) -> int:
    return store.blob_path(image_id).stat().st_size


def _tree_size(imported: object) -> int:
    return int(getattr(imported, "tree_size", 0) or getattr(imported, "uncompressed_size", 0))
