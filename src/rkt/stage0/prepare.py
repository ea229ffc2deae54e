"""Preparing a pod: images fetched and rendered, the pod manifest written, the pod dir laid out
exactly as docs/stage1-abi.md §2 says, and the pod left in ``prepared``.

Never prints or exits. Environment precedence (rkt's run.md): inherited < image < --set-env-file <
--set-env < per-app --environment; the result is written into the pod manifest's app, which a
stage1 uses as is.

The requests are the records of ``rkt.stage0.request``.
"""

from __future__ import annotations

import os

from rkt import abi, jsonio
from rkt.errors import ImageError, ManifestError, PodError, RktError, UsageError
from rkt.paths import Path
from rkt.pod.pod import (
    Pod,
    PodLock,
    abandon_pod,
    create_embryo,
    ensure_pods_root,
)
from rkt.stage0.layout import Layout, PreparedPod, finish_layout
from rkt.stage0.request import AppRequest, Pairs, PodRequest
from rkt.stage0.stage1_image import Stage1, select_stage1
from rkt.store.records import ImageRecord
from rkt.store.store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


# rkt.formats.oci keeps a Docker/OCI image's Entrypoint in this annotation of the derived manifest.
_DOCKER_ENTRYPOINT = "appc.io/docker/entrypoint"


def _env_list(pairs: Pairs) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]


def _merge_env(*layers: Pairs) -> Pairs:
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer:
            merged.pop(key, None)
            merged[key] = value
    return tuple(merged.items())


def _docker_entrypoint(annotations: list[dict[str, str]]) -> list[str] | None:
    by_name = {a["name"]: a["value"] for a in annotations}
    if _DOCKER_ENTRYPOINT not in by_name:
        return None  # an appc image: no need for the OCI module (~4 ms of imports)
    from rkt.formats.oci import docker_entrypoint

    return docker_entrypoint(by_name)


def _app_section(
    req: AppRequest,
    pod_req: PodRequest,
    image_app: dict[str, Any] | None,
    image_name: str,
    image_annotations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    app = dict(image_app or {})
    entrypoint = _docker_entrypoint(image_annotations or [])
    if not app.get("exec") and req.exec_ is None and entrypoint is None:
        raise ImageError(f'image "{image_name}": has no app to run (give --exec)')
    exec_ = list(app.get("exec") or [])
    if req.exec_ is not None:
        exec_ = [req.exec_]
    if req.has_args and req.exec_ is None and entrypoint is not None:
        exec_ = entrypoint + list(req.args)  # Docker: arguments replace Cmd, not Entrypoint
    elif req.has_args:
        exec_ = exec_[:1] + list(req.args)
    if not exec_:
        raise ImageError(f'image "{image_name}": has no app to run (give --exec)')
    app["exec"] = exec_
    app["user"] = req.user if req.user is not None else str(app.get("user", "0"))
    app["group"] = req.group if req.group is not None else str(app.get("group", "0"))
    if req.supplementary_gids is not None:
        app["supplementaryGIDs"] = list(req.supplementary_gids)
    if req.working_dir is not None:
        app["workingDirectory"] = req.working_dir
    image_env = tuple((e["name"], e["value"]) for e in app.get("environment", []))
    inherited: Pairs = tuple(os.environ.items()) if pod_req.inherit_env else ()
    env = _merge_env(inherited, image_env, pod_req.set_env_file, pod_req.set_env, req.environment)
    if env:
        app["environment"] = _env_list(env)
    if req.isolators:
        names = {iso["name"] for iso in req.isolators}
        # A flag's retain-set also replaces the image's remove-set (and the other way round):
        # the two are mutually exclusive (ace.md), and the command line wins.
        names |= {_RETAIN_REMOVE[n] for n in names if n in _RETAIN_REMOVE}
        kept = [iso for iso in app.get("isolators", []) if iso.get("name") not in names]
        app["isolators"] = kept + list(req.isolators)
    return app


_RETAIN_REMOVE = {
    "os/linux/capabilities-retain-set": "os/linux/capabilities-remove-set",
    "os/linux/capabilities-remove-set": "os/linux/capabilities-retain-set",
    "os/linux/seccomp-retain-set": "os/linux/seccomp-remove-set",
    "os/linux/seccomp-remove-set": "os/linux/seccomp-retain-set",
}


def _unique_name(wanted: str, taken: set[str]) -> str:
    from rkt.schema.names import sanitize_ac_name

    base = sanitize_ac_name(wanted)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _is_from_docker(annotations: list[dict[str, str]]) -> bool:
    """An image derived from a Docker/OCI config (rkt's ``ConvertedFromDocker``)."""
    return any(a.get("name") == "appc.io/docker/manifestdigest" for a in annotations)


def _volumes_and_mounts(
    req: PodRequest,
    apps: list[dict[str, Any]],
    image_apps: list[dict[str, Any]],
    per_app: list[AppRequest],
    from_docker: list[bool],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The pod's volumes and each app's mounts; also ``{volume: app}`` for the implicit volumes
    of Docker/OCI VOLUMEs, which that app fills from its image (copy-up, docs/images.md)."""
    volumes: dict[str, dict[str, Any]] = {}
    copy_up: dict[str, str] = {}
    for vol in req.volumes:  # checked with the flags (rkt.cli.pod_request)
        doc: dict[str, Any] = {"name": vol.name, "kind": vol.kind}
        if vol.kind == "host":
            doc.update(source=vol.source, readOnly=vol.read_only)
            if vol.recursive is not None:
                doc["recursive"] = vol.recursive
        else:
            doc.update(mode=vol.mode, uid=vol.uid, gid=vol.gid, readOnly=vol.read_only)
        volumes[vol.name] = doc
    for app, image_app, areq, docker in zip(apps, image_apps, per_app, from_docker, strict=True):
        mounts = [{"volume": m.volume, "path": m.target} for m in (*req.mounts, *areq.mounts)]
        for m in mounts:
            if m["volume"] not in volumes:
                raise UsageError(f'--mount: volume "{m["volume"]}" is not defined by --volume')
        mounted = {m["volume"] for m in mounts}
        for point in (image_app or {}).get("mountPoints", []):
            if point["name"] in mounted:
                continue
            if point["name"] not in volumes:
                # rkt: an unsatisfied mount point gets an implicit empty volume.
                volumes[point["name"]] = {
                    "name": point["name"],
                    "kind": "empty",
                    "mode": "0755",
                    "uid": 0,
                    "gid": 0,
                    "readOnly": bool(point.get("readOnly", False)),
                }
                if docker:  # Docker semantics: a fresh volume starts as the image's content
                    copy_up[point["name"]] = app["name"]
            mounts.append({"volume": point["name"], "path": point["path"]})
        if mounts:
            app["mounts"] = mounts
    return list(volumes.values()), copy_up


def build_pod_manifest(
    store: Store,
    req: PodRequest,
    fetch: Callable[[str, Path | None], str],
    taken_names: set[str] | None = None,
) -> tuple[dict[str, Any], list[ImageRecord]]:
    """Fetch every app's image and build the reified pod manifest.

    ``taken_names``: the names of apps already in the pod (``rkt app add``).
    """
    from rkt.schema.pod import PodManifest

    if not req.apps and not req.mutable:
        raise UsageError("no image given")
    apps: list[dict[str, Any]] = []
    image_apps: list[dict[str, Any]] = []
    from_docker: list[bool] = []
    records: list[ImageRecord] = []
    taken: set[str] = set(taken_names or ())
    for areq in req.apps:
        image_id = fetch(areq.image, areq.signature)
        rec = store.get(image_id)
        if rec is None:
            raise ImageError(f'image "{areq.image}": not in the store after fetching')
        manifest = jsonio.loads(rec.manifest)
        name = areq.name or manifest["name"].rsplit("/", 1)[-1]
        if areq.name is not None:  # an AC Name (rkt.cli.pod_request); taken: the pod's
            if areq.name in taken:
                raise UsageError(f'--name: app name "{areq.name}" is used twice')
        else:
            name = _unique_name(name, taken)
        taken.add(name)
        image_app = manifest.get("app")
        app_doc: dict[str, Any] = {
            "name": name,
            "image": {
                "id": rec.id,
                "name": rec.name,
                "labels": [{"name": k, "value": v} for k, v in rec.labels.items()],
            },
            "app": _app_section(areq, req, image_app, rec.name, manifest.get("annotations") or []),
        }
        if areq.readonly_rootfs is not None:
            app_doc["readOnlyRootFS"] = areq.readonly_rootfs
        if areq.annotations:
            app_doc["annotations"] = [{"name": k, "value": v} for k, v in areq.annotations]
        apps.append(app_doc)
        image_apps.append(image_app or {})
        from_docker.append(_is_from_docker(manifest.get("annotations") or []))
        records.append(rec)
    pod: dict[str, Any] = {"acKind": "PodManifest", "acVersion": "0.8.11", "apps": apps}
    pod["volumes"], copy_up = _volumes_and_mounts(
        req, apps, image_apps, list(req.apps), from_docker
    )
    annotations = list(req.annotations) + [
        (abi.COPY_UP_ANNOTATION + volume, app) for volume, app in copy_up.items()
    ]
    if annotations:
        pod["annotations"] = [{"name": k, "value": v} for k, v in annotations]
    if req.user_annotations:
        pod["userAnnotations"] = dict(req.user_annotations)
    if req.user_labels:
        pod["userLabels"] = dict(req.user_labels)
    PodManifest.from_json(pod)  # validate before anything is written
    return pod, records


def _copy_stage1(store: Store, stage1: Stage1, layout: Layout) -> None:
    """A private copy of the (small) stage1 tree: hard links where possible, no mounts. The
    stage1 image counts as used, as the apps' images do: ``image gc`` keeps what pods start
    with (rkt's LastUsed)."""
    rec = stage1.image
    if rec.tree_id is None:
        from rkt.store.render import render_image_tree

        render_image_tree(store, rec.id)
        rec = store.get(rec.id) or rec
    assert rec.tree_id is not None
    layout.link_tree(abi.STAGE1_ROOTFS, str(store.tree_path(rec.tree_id) / "rootfs"))
    layout.write(abi.STAGE1_MANIFEST, rec.manifest)
    for sub in (abi.STATUS_DIR, abi.LOGS_DIR, abi.ENV_DIR):
        layout.mkdir(sub, exist_ok=True)
    _touch(store, rec, layout)


def _touch(store: Store, rec: ImageRecord, layout: Layout) -> None:
    store.touch(rec.id, rec.last_used)
    layout.used(rec.last_used)


def _lay_out_apps(
    store: Store,
    layout: Layout,
    pod: dict[str, Any],
    records: list[ImageRecord],
    resolve: Callable[..., str] | None,
) -> None:
    for app, rec in zip(pod["apps"], records, strict=True):
        info = abi.appsinfo(app["name"])
        layout.mkdir(info)
        layout.write(f"{info}/manifest", rec.manifest)
        if not _lay_out_layers(store, info, rec, layout):
            tree_id = rec.tree_id
            if tree_id is None or not store.tree_path(tree_id).is_dir():
                from rkt.store.render import render_image_tree

                tree_id = render_image_tree(store, rec.id, resolve_dependency=resolve).id
            rootfs = str(store.tree_path(tree_id) / "rootfs")
            layout.write(f"{info}/treeStoreID", tree_id.encode())
            layout.symlink(f"{info}/rootfs", rootfs)
            layout.sources.append(rootfs)
        overlay = abi.app_overlay(app["name"])
        layout.mkdir(f"{overlay}/upper")
        layout.mkdir(f"{overlay}/work")
        _touch(store, rec, layout)
    for vol in pod.get("volumes", []):
        if vol["kind"] == "empty":
            layout.mkdir(
                f"{abi.VOLUMES_DIR}/{vol['name']}",
                mode=int(str(vol.get("mode", "0755")), 8),
                uid=int(vol.get("uid", 0)),
                gid=int(vol.get("gid", 0)),
            )


def _lay_out_layers(store: Store, info: str, rec: ImageRecord, layout: Layout) -> bool:
    """A Docker/OCI image: ``lowerdirs`` lists its layer trees, top-most first (stage1-abi §2).

    ``rootfs`` points at the top-most layer (informational; the stack is what a stage1 mounts).
    """
    digests = store.image_layers(rec.id)
    if not digests:
        return False  # an ACI: its rendered tree (no need for rkt.store.layers)
    from rkt.store.layers import layer_key, layer_path

    trees = [layer_path(store, d) / "rootfs" for d in reversed(digests)]
    missing = [t for t in trees if not t.is_dir()]
    if missing:
        raise ImageError(
            f'image "{rec.name}": layer {missing[0].parent.name} is missing from the store; '
            "fetch the image again"
        )
    unique = [str(t) for t in dict.fromkeys(trees)]  # a layer listed twice: its top-most place
    layout.write(f"{info}/lowerdirs", "".join(f"{t}\n" for t in unique).encode())
    layout.write(f"{info}/treeStoreID", layer_key(digests[-1]).encode())
    layout.symlink(f"{info}/rootfs", unique[0])
    layout.sources.extend(unique)
    return True


def prepare_pod(
    data_dir: Path,
    store: Store,
    req: PodRequest,
    *,
    fetch: Callable[[str, Path | None], str],
    resolve_dependency: Callable[..., str] | None = None,
    stage1_config: dict[str, str] | None = None,
    embryo: tuple[Pod, PodLock] | None = None,
    on_abort: Callable[[], None] | None = None,
    keep_lock: bool = False,
) -> PreparedPod:
    """Create a pod directory in ``prepared``; on any failure the pod is left as garbage.

    ``embryo``: the pod, created and locked by the caller (``rkt run`` starts its networks
    before the store is even opened: stage0/headstart.py); ``on_abort`` is called before a failed
    pod is abandoned, while it is still locked. ``keep_lock``: the pod's lock stays held
    (``PreparedPod.lock``) for the caller, who runs the pod next. The stage1 is laid out first:
    from then on gc can call its gc entrypoint on the pod, whatever happens to this process."""
    pod, lock = embryo if embryo is not None else create_embryo(ensure_pods_root(data_dir))
    try:
        stage1 = select_stage1(store, req.stage1, stage1_config or {}, lambda ref: fetch(ref, None))
        layout = Layout()
        _copy_stage1(store, stage1, layout)
        layout.apply(str(pod.path))
        if req.pod_manifest is not None:
            manifest, records = _load_pod_manifest(store, req.pod_manifest)
        else:
            manifest, records = build_pod_manifest(store, req, fetch)
        _lay_out_apps(store, layout, manifest, records, resolve_dependency)
        manifest_json = jsonio.dumps(manifest).encode()
        finish_layout(pod, layout, manifest_json)
    except (RktError, OSError) as exc:
        abandon_pod(pod, lock, on_abort)
        if isinstance(exc, OSError):
            raise PodError(f'pod "{pod.uuid}": prepare failed: {exc}') from exc
        raise
    except BaseException:
        abandon_pod(pod, lock, on_abort)
        raise
    if keep_lock:
        return PreparedPod(pod, stage1, lock, layout, manifest_json)
    lock.close()
    return PreparedPod(pod, stage1, None, layout, manifest_json)


def _load_pod_manifest(store: Store, path: Path) -> tuple[dict[str, Any], list[ImageRecord]]:
    from rkt.schema.pod import PodManifest

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f'--pod-manifest "{path}": {exc.strerror}') from exc
    parsed = PodManifest.from_json(data)
    if not parsed.apps:
        raise ManifestError(f'--pod-manifest "{path}": has no apps')
    records = []
    for app in parsed.apps:
        rec = store.get(app.image.id)
        if rec is None:
            raise ImageError(
                f'pod manifest: image "{app.image.id[:19]}" of app "{app.name}" is '
                "not in the store (fetch it first)"
            )
        records.append(rec)
    manifest = jsonio.loads(data)
    for key in ("volumes", "isolators", "annotations", "ports"):  # null: as the schema reads it
        if key in manifest and manifest[key] is None:
            del manifest[key]
    for app_doc, rec in zip(manifest["apps"], records, strict=True):
        if not app_doc.get("app"):
            app_doc["app"] = jsonio.loads(rec.manifest).get("app")
    return manifest, records
