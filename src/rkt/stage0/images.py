"""Image operations behind the ``rkt image`` commands: resolve, remove, export, extract, verify, gc.

Never prints or exits; returns data for the CLI to format.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from rkt import abi, jsonio
from rkt.errors import (
    AmbiguousError,
    ImageError,
    NotFoundError,
    PrivilegeError,
    RktError,
    StoreError,
    UsageError,
)
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.store.locks import locked
from rkt.store.records import ImageRecord
from rkt.store.store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from rkt.pod.pod import Pod


def open_store(opts: GlobalOptions) -> Store:
    return Store(opts.dir)


def parse_name_and_labels(text: str) -> tuple[str, dict[str, str]]:
    """``name[:version]`` or ``name,label=value,...`` as rkt accepts image names."""
    from rkt.fetch.reference import NameRef, parse_image_reference

    ref = parse_image_reference(text)
    if not isinstance(ref, NameRef):
        raise UsageError(f'image "{text}": not an image name or ID')
    return ref.name, dict(ref.labels)


def resolve_image(store: Store, text: str) -> ImageRecord:
    """An image ID (or unique prefix), or a name with optional version/labels (newest wins)."""
    if text.startswith("sha512-"):
        return store.resolve_id(text)
    name, labels = parse_name_and_labels(text)
    found = store.find_by_name(name, labels)
    if not found:
        raise NotFoundError(f'image "{text}": not in the store')
    return found[0]


def store_resolver(store: Store) -> Callable[[str, dict[str, str], str | None], str]:
    """Resolve appc dependencies from the store only (no fetching)."""

    def resolve(name: str, labels: dict[str, str], image_id: str | None) -> str:
        if image_id is not None and store.get(image_id) is not None:
            return image_id
        found = store.find_by_name(name, labels)
        if not found:
            raise NotFoundError(f'dependency "{name}": not in the store (fetch it first)')
        return found[0].id

    return resolve


def images_for_removal(store: Store, text: str) -> list[ImageRecord]:
    if text.startswith("sha512-"):
        return [store.resolve_id(text)]
    name, labels = parse_name_and_labels(text)
    found = store.find_by_name(name, labels)
    if not found:
        raise NotFoundError(f'image "{text}": not in the store')
    if len(found) > 1 and not labels:
        ids = ", ".join(rec.id[:19] for rec in found)
        raise AmbiguousError(
            f'image "{text}": name matches {len(found)} images ({ids}); give an ID'
        )
    return found


def export_image(store: Store, rec: ImageRecord, out: Path, *, overwrite: bool) -> None:
    """Write the image as an uncompressed ACI (same image ID when re-imported)."""
    from rkt.formats.aci import check_output
    from rkt.formats.compression import open_decompressed

    if rec.compression == "layers":
        raise ImageError(f'image "{rec.name}": a Docker/OCI image; export works on ACIs only')
    check_output(out, overwrite=overwrite)
    tmp = out.with_name(f".{out.name}.rkt-tmp-{os.getpid()}")
    try:
        with open(store.blob_path(rec.id), "rb") as raw, open(tmp, "wb") as dst:
            stream = open_decompressed(raw)
            while chunk := stream.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ImageError(f'export "{out}": {exc.strerror}') from exc
    except BaseException:  # e.g. ArchiveError from a corrupt blob: leave no temp file behind
        tmp.unlink(missing_ok=True)
        raise


def prepare_target(target: Path, store: Store, *, overwrite: bool) -> None:
    """Check ``target`` for ``image extract|render``. With ``--overwrite`` an existing one is
    replaced only once the new tree is complete (``rkt.store.render``), and never when it is,
    or holds, the store itself."""
    if os.path.lexists(target):
        if not overwrite:
            raise UsageError(f'target "{target}": already exists (use --overwrite)')
        here, data = os.path.realpath(target), os.path.realpath(store.data_dir)
        if data == here or data.startswith(here.rstrip("/") + "/"):
            raise UsageError(f'target "{target}": holds the image store (--dir); not replaced')
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f'target "{target}": {exc.strerror}') from exc


@dataclass(frozen=True)
class VerifyResult:
    image_id: str
    name: str
    ok: bool
    problem: str = ""


def verify_image(store: Store, rec: ImageRecord) -> VerifyResult:
    """Re-hash the blob (must equal the ID) and the rendered tree (must equal its recorded hash)."""
    # Shared with other verifiers; `image rm` (exclusive) waits, so a removal is not a failure.
    with locked(store.lock_dir / f"{rec.id}.lock", shared=True):
        current = store.get(rec.id)
        if current is None:
            raise NotFoundError(f'image "{rec.id[:19]}": not in the store (removed meanwhile)')
        return _verify_locked(store, current)


def _verify_locked(store: Store, rec: ImageRecord) -> VerifyResult:
    import hashlib

    from rkt.formats.compression import open_decompressed
    from rkt.formats.treehash import compute_tree_hash

    if rec.compression == "layers":  # Docker/OCI: digests were checked on import
        from rkt.store.layers import layer_trees

        missing = [t.parent.name for t in layer_trees(store, rec.id) if not t.is_dir()]
        problem = f"layer {missing[0]} missing" if missing else ""
        return VerifyResult(rec.id, rec.name, not missing, problem)
    try:
        digest = hashlib.sha512()
        with open(store.blob_path(rec.id), "rb") as raw:
            stream = open_decompressed(raw)
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        if "sha512-" + digest.hexdigest() != rec.id:
            return VerifyResult(rec.id, rec.name, False, "blob does not match its image ID")
        if rec.tree_id is not None:
            tree = store.index.get_tree(rec.tree_id)
            if tree is None:
                return VerifyResult(rec.id, rec.name, False, "tree record missing")
            actual = compute_tree_hash(store.tree_path(tree.id) / "rootfs")
            if actual != tree.hash:
                return VerifyResult(
                    rec.id, rec.name, False, f"rendered tree {tree.id[:17]} was modified"
                )
    except (OSError, StoreError, ImageError) as exc:
        return VerifyResult(rec.id, rec.name, False, str(exc))
    return VerifyResult(rec.id, rec.name, True)


def gc_images(store: Store, grace_seconds: float, in_use: set[str]) -> tuple[list[str], list[str]]:
    """Remove images unused for longer than the grace period and not used by any pod.

    Returns (removed image IDs, removed orphan blobs/trees)."""
    now = time.time()
    removed: list[str] = []
    for rec in store.list_images():
        if rec.id in in_use or now - rec.last_used < grace_seconds:
            continue
        try:
            store.remove_image(rec.id)
            removed.append(rec.id)
        except NotFoundError:
            continue
    return removed, store.remove_orphans()


def pods_holding_images(pods_root: Path) -> dict[str, list[tuple[str, str]]]:
    """Image ID, and rendered tree ID, -> (UUID, state) of each prepared or running pod whose
    apps use it: their roots are overlays on the tree (a prepared pod's will be), so removing
    the image, or an image the tree was rendered from (a dependency), would take the files from
    under them. An exited pod does not hold its images (as in rkt, ``image rm`` may remove
    them; ``list``, ``status`` and ``gc`` still work). Pods are root's: a member of group
    ``rkt``, who cannot see them, gets a one-line refusal rather than a removal in the dark."""
    from rkt.pod.pod import STATE_PREPARED, STATE_RUNNING

    held: dict[str, list[tuple[str, str]]] = {}
    for pod in _visible_pods(pods_root):
        state = pod.state()
        if state not in (STATE_PREPARED, STATE_RUNNING):
            continue
        keys: set[str] = set()
        for app, image_id in _pod_apps(pod):
            if image_id is not None:
                keys.add(image_id)
            try:
                tree = pod.file(f"{abi.appsinfo(str(app.get('name')))}/treeStoreID").read_text()
            except OSError:
                continue
            keys.add(tree.strip())
        for key in keys:  # a pod once per key, however many of its apps share it
            held.setdefault(key, []).append((pod.uuid, state))
    return held


def _visible_pods(pods_root: Path) -> list[Pod]:
    """Every pod, for a command that must not remove what one uses: pods are root's, and a
    member of group ``rkt`` who cannot list them gets a one-line refusal (``PrivilegeError``)
    rather than a removal in the dark."""
    from rkt.pod.pod import iter_pods

    try:
        return list(iter_pods(pods_root))
    except PermissionError as exc:
        raise PrivilegeError(
            f'cannot see which pods use images ("{exc.filename}": permission denied); run as root'
        ) from None


def images_in_use(opts: GlobalOptions) -> set[str]:
    """Image IDs referenced by pods that still exist (read from their pod manifests)."""
    return {
        image_id
        for pod in _visible_pods(opts.dir / "pods")
        for _, image_id in _pod_apps(pod)
        if image_id is not None
    }


def _pod_apps(pod: Pod) -> list[tuple[dict[str, Any], str | None]]:
    """The apps of the pod's manifest, each with its image ID; none if the manifest is not
    there (yet) or not readable."""
    try:
        doc = jsonio.loads(pod.read_manifest())
    except (OSError, ValueError, RktError):
        return []
    out = []
    for app in doc.get("apps", []):
        image_id = app.get("image", {}).get("id")
        out.append((app, image_id if isinstance(image_id, str) else None))
    return out
