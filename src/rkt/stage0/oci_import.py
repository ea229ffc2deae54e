"""Fetching Docker and OCI images natively: registry pulls and local layouts/archives into layers.

The flow (docs/images.md):

1. refuse unless ``--insecure-options=image`` (there is no signature rkt can check; rkt's
   dockerfetcher did the same), and unless root (layers are rendered with owners, whiteout
   devices and trusted xattrs);
2. apply the pull policy with the ``remotes`` table, keyed by the canonical reference;
3. resolve the source to this machine's image manifest and its config (``ImageSource``);
4. import every layer not in the store yet, in parallel threads, each in one pass: bytes from the
   source -> sha256 of the blob -> decompression -> sha256 of the tar (diff_id) -> extraction
   into a temp tree; a digest mismatch at the end discards the tree, so nothing unverified is
   ever committed;
5. derive the appc ImageManifest, list the image: its small blob (the source manifest and config),
   then the index row with its ordered layer list, under the image's lock, while shared locks
   keep ``image gc`` off the layers.

Never prints: warnings go to the fetcher's ``warn`` callback.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from rkt import jsonio
from rkt.errors import (
    ArchiveError,
    ImageError,
    ManifestError,
    NotFoundError,
    PrivilegeError,
    SignatureError,
    naming,
)
from rkt.formats.oci import Descriptor, derive_image_manifest, diff_ids
from rkt.formats.oci_source import ImageSource, ResolvedImage, is_local_source
from rkt.paths import Path
from rkt.store.layers import (
    LayerRecord,
    add_layered_image,
    commit_layer,
    has_layer,
    layer_path,
    layers_held,
    layers_size,
)
from rkt.store.records import ImageRecord, RemoteRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from rkt.stage0.fetch import Fetcher
    from rkt.store.store import Store

PARALLEL_LAYERS = 4
BLOB_MEDIA_TYPE = "application/vnd.rkt.oci-image.v1+json"


def is_oci_reference(text: str) -> bool:
    return text.startswith("docker://") or is_local_source(text)


def fetch_oci_image(fetcher: Fetcher, text: str, pull_policy: str) -> str:
    """Bring a ``docker://``, ``oci:``, ``oci-archive:`` or ``docker-archive:`` image in."""
    if not fetcher.opts.insecure.image:
        raise SignatureError(
            f'image "{text}": Docker and OCI images carry no signature rkt can verify; '
            "refusing to run it",
            hint="pass --insecure-options=image to run it unverified",
        )
    store = fetcher.store
    source, key = _open_source(fetcher, text)
    cached = store.get_remote(key)
    kept = None if cached is None else store.get(cached.image_id)
    resolved = None
    if cached is not None and kept is not None:
        if pull_policy in ("new", "never"):
            return cached.image_id
        if is_local_source(text):
            resolved = _resolve(source)
            origin = resolved.origin
            if _origin_digests(kept.manifest) == (origin.manifest_digest, origin.config_digest):
                return cached.image_id  # update: the path still names what was imported
    elif pull_policy == "never":
        raise NotFoundError(f'image "{text}": not in the store and --pull-policy=never')
    if os.geteuid() != 0:
        raise PrivilegeError(
            f'image "{text}": importing Docker/OCI layers needs root '
            "(owners, whiteouts and overlay xattrs are kept)"
        )
    fetcher.warn_insecure_once()
    image_id = import_from_source(store, source, source_label=key, resolved=resolved)
    store.put_remote(RemoteRecord(key, None, None, image_id, 0, time.time()))
    return image_id


def _resolve(source: ImageSource) -> ResolvedImage:
    with naming(f'image "{source.label}"', ArchiveError, ImageError, ManifestError):
        return source.resolve()


def _origin_digests(image_manifest: bytes) -> tuple[str, str]:
    """The Docker/OCI manifest and config digests an imported image was made from (its
    annotations; a docker-archive has no manifest digest)."""
    by_name = {
        a.get("name"): str(a.get("value") or "")
        for a in jsonio.loads(image_manifest).get("annotations") or []
    }
    return (
        by_name.get("appc.io/docker/manifestdigest", ""),
        by_name.get("appc.io/docker/imageid", ""),
    )


def _open_source(fetcher: Fetcher, text: str) -> tuple[ImageSource, str]:
    if is_local_source(text):
        from rkt.formats.oci_source import open_local_source

        transport, _, rest = text.partition(":")
        return open_local_source(text), f"{transport}:{os.path.abspath(rest)}"
    from rkt.fetch.registry import RegistrySource, parse_docker_reference

    ref = parse_docker_reference(text)
    credentials = fetcher.config().docker_auth
    source = RegistrySource(
        ref, fetcher.client, credentials, insecure_http=fetcher.opts.insecure.http
    )
    return source, str(ref)


def import_from_source(
    store: Store,
    source: ImageSource,
    *,
    source_label: str,
    jobs: int = PARALLEL_LAYERS,
    resolved: ResolvedImage | None = None,
) -> str:
    """Import the image ``source`` resolves to (``resolved``: already); return its image ID."""
    if resolved is None:
        resolved = _resolve(source)  # (what is wrong in it: named after the image)
    layers = resolved.manifest.layers
    if not layers:
        raise ImageError(f'image "{source.label}": has no layers')
    expected = diff_ids(resolved.config)
    if resolved.manifest.config is not None and len(expected) != len(layers):
        raise ImageError(
            f'image "{source.label}": {len(layers)} layers, {len(expected)} diff_ids in its config'
        )
    digests = [layer.digest for layer in layers]
    try:
        return _import_held(store, source, resolved, expected, digests, source_label, jobs)
    except BaseException:
        from rkt.store.layers import reclaim_layers

        reclaim_layers(store)  # layers this failed import committed, now used by no image
        raise


def _import_held(
    store: Store,
    source: ImageSource,
    resolved: ResolvedImage,
    expected: list[str],
    digests: list[str],
    source_label: str,
    jobs: int,
) -> str:
    layers = resolved.manifest.layers
    with layers_held(store, digests):
        wanted: dict[str, tuple[Descriptor, str]] = {}
        for i, layer in enumerate(layers):
            if layer.digest not in wanted and not has_layer(store, layer.digest):
                wanted[layer.digest] = (layer, expected[i] if expected else "")
        _import_layers(store, source, list(wanted.values()), jobs)
        trees = [layer_path(store, d) / "rootfs" for d in reversed(digests)]
        manifest = _with_resolved_user(
            derive_image_manifest(resolved.config, resolved.origin), resolved.config, trees
        )
        image_id = image_id_for(manifest, digests)
        with store.lock_for(image_id), store.tempdir("oci") as tmp:
            blob = tmp.path / "blob"
            blob.write_bytes(_image_blob(resolved))
            store.commit_blob(blob, image_id)
            labels = {
                item["name"]: item["value"] for item in jsonio.loads(manifest).get("labels", [])
            }
            now = time.time()
            total = sum(max(layer.size, 0) for layer in layers)
            add_layered_image(
                store,
                ImageRecord(
                    id=image_id,
                    name=resolved.origin.name,
                    labels=labels,
                    manifest=manifest,
                    import_time=now,
                    last_used=now,
                    size=total,
                    uncompressed_size=total,
                    compression="layers",
                    source=source_label,
                    tree_id=None,
                    tree_size=layers_size(store, digests),
                ),
                digests,
            )
    return image_id


def image_id_for(manifest: bytes, digests: list[str]) -> str:
    """An appc-style ID: sha512 over the derived manifest and the ordered layer digests."""
    h = hashlib.sha512(manifest)
    h.update(("\n" + "\n".join(digests)).encode())
    return "sha512-" + h.hexdigest()


def _image_blob(resolved: ResolvedImage) -> bytes:
    doc = {
        "mediaType": BLOB_MEDIA_TYPE,
        "manifestDigest": resolved.manifest_digest,
        "manifest": resolved.manifest_bytes.decode("utf-8", "replace"),
        "config": resolved.config_bytes.decode("utf-8", "replace"),
    }
    return jsonio.dumps(doc, sort_keys=True).encode()


def _import_layers(
    store: Store, source: ImageSource, wanted: list[tuple[Descriptor, str]], jobs: int
) -> None:
    if not wanted:
        return
    if len(wanted) == 1:
        import_layer(store, source, *wanted[0])
        return
    with ThreadPoolExecutor(
        max_workers=min(jobs, len(wanted)), thread_name_prefix="rkt-layer"
    ) as pool:
        futures = [pool.submit(import_layer, store, source, desc, diff) for desc, diff in wanted]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                for other in futures:
                    other.cancel()
                raise future.exception()  # type: ignore[misc]


def import_layer(store: Store, source: ImageSource, desc: Descriptor, diff_id: str) -> None:
    """Download (or read), verify and extract one layer in one pass, then commit it."""
    from rkt.formats.compression import open_decompressed
    from rkt.formats.oci_layer import DigestReader, extract_layer

    what = f"layer {desc.digest[:19]}…"
    with store.tempdir("layer") as tmp:
        root = tmp.path / "layer"
        try:
            with source.open_blob(desc) as raw:
                reader = DigestReader(raw, desc.digest, desc.size, what=what)
                stats = extract_layer(open_decompressed(reader), root / "rootfs")  # type: ignore[arg-type]
                reader.finish()
        except ArchiveError as exc:
            raise ImageError(f'image "{source.label}": {exc.message}') from exc
        if diff_id and stats.diff_id != diff_id:
            raise ImageError(
                f'image "{source.label}": {what}: uncompressed content {stats.diff_id} '
                f"does not match the config's diff_id {diff_id}"
            )
        rec = LayerRecord(
            desc.digest,
            stats.diff_id,
            reader.count,
            stats.uncompressed_size,
            stats.bytes_written,
            0,
        )
        commit_layer(store, root, rec)


# -- users: names resolved in the image's own /etc/passwd, as Docker does -----------------------


def _with_resolved_user(manifest: bytes, config: dict[str, Any], trees: list[Path]) -> bytes:
    from rkt.formats.oci_layer import lookup_in_layers

    conf = config.get("config") or {}
    user, has_group, group = str(conf.get("User") or "").partition(":")
    needs_user = not user.isdigit()
    needs_group = not has_group or not group.isdigit()
    if not user or not (needs_user or needs_group):
        return manifest
    passwd = _table(lookup_in_layers(trees, "etc/passwd"))
    doc = jsonio.loads(manifest)
    app = doc["app"]
    entry = next((e for e in passwd if e[0] == user or (user.isdigit() and e[2] == user)), None)
    if entry is not None:
        app["user"] = entry[2]
        if not has_group:
            app["group"] = entry[3]
    if has_group and not group.isdigit():
        groups = _table(lookup_in_layers(trees, "etc/group"))
        found = next((e for e in groups if e[0] == group), None)
        if found is not None:
            app["group"] = found[2]
    return jsonio.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _table(path: Path | None) -> list[list[str]]:
    if path is None:
        return []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line.count(":") >= 3]
