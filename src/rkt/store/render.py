"""Rendering: an image and its appc dependencies flattened into one tree.

appc ace.md "Filesystem Setup": dependencies are applied depth-first in the order listed, then the
image's own rootfs; later files overwrite earlier ones: ``A -> [B, C], C -> [D]`` renders
B, D, C, A.
Each image's ``pathWhitelist`` limits the files of its own subtree (itself and its dependencies);
directories on the way to a whitelisted path are kept.

Trees land in the tree store (``render_image_tree``) or in any directory (``render_to``, for
``rkt image render``); both write into a temp directory that appears whole or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rkt import jsonio
from rkt.errors import ArchiveError, ImageError
from rkt.paths import Path
from rkt.store.records import TreeRecord
from rkt.store.store import Store, tree_id_for

ResolveDependency = Callable[[str, dict[str, str], "str | None"], str]
MAX_DEPTH = 32


@dataclass(frozen=True)
class Layer:
    """One image of a render chain, with the whitelists that constrain it (outermost first)."""

    image_id: str
    whitelists: tuple[frozenset[str], ...]


def _whitelist_filter(whitelists: tuple[frozenset[str], ...]) -> Callable[[str], bool] | None:
    active = [w for w in whitelists if w]
    if not active:
        return None
    prefixes = [frozenset(p.rstrip("/") for p in w) for w in active]
    parents = [
        frozenset(str(Path(p).parents[i]) for p in w for i in range(len(Path(p).parents)))
        for w in prefixes
    ]

    def allowed(rel: str) -> bool:
        path = "/" + rel.strip("/")
        return all(
            path in exact or path in dirs for exact, dirs in zip(prefixes, parents, strict=True)
        )

    return allowed


def render_chain(
    store: Store,
    image_id: str,
    resolve_dependency: ResolveDependency | None,
    *,
    manifest: bytes | None = None,
) -> list[Layer]:
    """The ordered layers of an image: dependencies depth-first, then the image itself.

    ``manifest`` stands for the image's own manifest while it is being imported (not listed yet).
    """
    from rkt.schema.image import ImageManifest

    layers: list[Layer] = []

    def visit(
        current: str, outer: tuple[frozenset[str], ...], depth: int, seen: tuple[str, ...]
    ) -> None:
        if depth > MAX_DEPTH or current in seen:
            raise ImageError(
                f'image "{image_id[:19]}": dependency cycle or chain deeper than {MAX_DEPTH}'
            )
        rec = store.get(current)
        if rec is not None:
            raw = rec.manifest
        elif current == image_id and manifest is not None:
            raw = manifest
        else:
            raise ImageError(f'image "{current[:19]}": not in the store')
        parsed = ImageManifest.from_json(raw)
        whitelists = (*outer, frozenset(parsed.path_whitelist))
        for dep in parsed.dependencies:
            if resolve_dependency is None:
                raise ImageError(
                    f'image "{parsed.name}": dependency "{dep.image_name}" is not in the store'
                )
            labels = {label.name: label.value for label in dep.labels}
            dep_id = resolve_dependency(dep.image_name, labels, dep.image_id)
            visit(dep_id, whitelists, depth + 1, (*seen, current))
        layers.append(Layer(current, whitelists))

    visit(image_id, (), 0, ())
    return layers


def extract_layers(store: Store, layers: list[Layer], rootfs: Path) -> tuple[str, int]:
    """Extract every layer's rootfs into ``rootfs``; return (tree hash, bytes written)."""
    from rkt.formats.compression import open_decompressed
    from rkt.formats.safetar import extract_tar
    from rkt.formats.treehash import TreeHashBuilder

    hasher = TreeHashBuilder()
    written = 0
    rootfs.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        try:
            raw = open(store.blob_path(layer.image_id), "rb")  # noqa: SIM115
        except FileNotFoundError as exc:
            raise ImageError(
                f'image "{layer.image_id[:19]}": blob missing (removed meanwhile?)'
            ) from exc
        with raw:
            stats = extract_tar(
                open_decompressed(raw),
                rootfs,
                strip_prefix="rootfs/",
                path_filter=_whitelist_filter(layer.whitelists),
                hasher=hasher,
            )
            written += int(getattr(stats, "bytes_written", 0))
    return hasher.hexdigest(), written


def render_image_tree(
    store: Store,
    image_id: str,
    *,
    resolve_dependency: ResolveDependency | None = None,
    manifest: bytes | None = None,
    layers: list[Layer] | None = None,
) -> TreeRecord:
    """Render ``image_id`` with its dependencies into the tree store (once; reused after).

    While an image is being imported it is not listed yet: the importer passes its ``manifest``
    and the ``layers`` it resolved (see :func:`render_chain`).
    """
    if layers is None:
        layers = render_chain(store, image_id, resolve_dependency, manifest=manifest)
    chain = tuple(layer.image_id for layer in layers)
    tree_id = tree_id_for(chain)
    with store.lock_for(tree_id):
        existing = store.index.get_tree(tree_id)
        current = store.get(image_id)
        if existing is not None and store.tree_path(tree_id).is_dir():
            if current is not None and current.tree_id != tree_id:
                with store.index.transaction() as conn:
                    store.index.set_image_tree(conn, image_id, existing)
            return existing
        own_manifest = current.manifest if current is not None else manifest
        if own_manifest is None:
            raise ImageError(f'image "{image_id[:19]}": not in the store')
        with store.tempdir("render") as tmp:
            tree_tmp = tmp.path / "tree"
            tree_hash, size = extract_layers(store, layers, tree_tmp / "rootfs")
            (tree_tmp / "manifest").write_bytes(own_manifest)
            (tree_tmp / "chain").write_text(jsonio.dumps(list(chain)))
            tree = TreeRecord(tree_id, image_id, chain, tree_hash, size, time.time())
            store.commit_tree(tree_tmp, tree)
        return tree


def render_to(
    store: Store,
    image_id: str,
    target: Path,
    *,
    rootfs_only: bool,
    resolve_dependency: ResolveDependency | None = None,
) -> None:
    """``rkt image render``: the flattened tree in ``target`` (rootfs/ + manifest, or rootfs)."""
    layers = render_chain(store, image_id, resolve_dependency)
    _write_to(store, image_id, layers, target, rootfs_only)


def extract_to(store: Store, image_id: str, target: Path, *, rootfs_only: bool) -> None:
    """``rkt image extract``: the image's own files only, without dependencies."""
    _write_to(store, image_id, [Layer(image_id, ())], target, rootfs_only)


def _write_to(
    store: Store, image_id: str, layers: list[Layer], target: Path, rootfs_only: bool
) -> None:
    import os

    rec = store.get(image_id)
    assert rec is not None
    if rec.compression == "layers":
        raise ImageError(f'image "{rec.name}": a Docker/OCI image; this works on ACIs only')
    from rkt.store.locks import remove_tree

    staging = target.parent / f".{target.name}.rkt-tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.rkt-old-{os.getpid()}"
    try:
        if rootfs_only:
            extract_layers(store, layers, staging)
        else:
            extract_layers(store, layers, staging / "rootfs")
            (staging / "manifest").write_bytes(rec.manifest)
        if os.path.lexists(target):  # (--overwrite): set aside, replaced, then removed
            os.rename(target, old)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(old, target)
                raise
        else:
            os.rename(staging, target)
    except OSError as exc:
        raise ImageError(f'target "{target}": {exc.strerror or exc}') from exc
    except ArchiveError as exc:  # writing a member failed (the store's blob was checked)
        raise ImageError(f'target "{target}": {exc}') from exc
    finally:
        for leftover in (staging, old):
            if leftover.is_dir() and not leftover.is_symlink():
                remove_tree(leftover)
            elif os.path.lexists(leftover):
                os.unlink(leftover)
