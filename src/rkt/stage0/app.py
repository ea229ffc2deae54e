"""Mutable pods (``rkt app add|start|stop|rm``): change the apps of a running ``app sandbox`` pod.

stage0 owns the pod manifest and ``appsinfo/``; the stage1 owns the running apps (app/*
entrypoints, docs/stage1-abi.md §3, interface version 3). Changes of the manifest are serialised
by an exclusive flock on ``run/<uuid>/pod.lck`` (rkt's name; the pod directory's own lock is held
by the stage1 for the pod's lifetime) and the manifest is replaced atomically (rename), so readers
(``rkt list``, ``rkt status``, ``cat-manifest``) always see a whole manifest.

``add``: fetch and render the image, lay out ``appsinfo/<app>`` and ``overlay/<app>``, rewrite the
manifest, then call app/add; if that fails, the manifest and the app's directories are restored.
``rm``: call app/rm, then drop the app from the manifest and delete its directories.
Never prints or exits.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rkt import abi, jsonio
from rkt.errors import PodError, UsageError
from rkt.paths import Path
from rkt.pod.pod import RUN, Pod, write_atomic
from rkt.stage0.prepare import build_pod_manifest
from rkt.stage0.request import PodRequest
from rkt.stage0.run import call_entrypoint, require_mutable_stage1, stage1_interface_version
from rkt.store.locks import remove_tree
from rkt.store.store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

APP_TIMEOUT = 60.0  # an app/stop waits up to 10 s for the app, then kills it


@dataclass(frozen=True)
class AppVolume:
    """``--mnt-volume=name=N,kind=host|empty,source=S,target=T,readOnly=B``: the app's own."""

    name: str
    kind: str
    target: str
    source: str | None = None
    read_only: bool = False

    def mount_doc(self) -> dict[str, Any]:
        vol: dict[str, Any] = {"name": self.name, "kind": self.kind, "readOnly": self.read_only}
        if self.kind == "host":
            vol["source"] = self.source
        else:
            vol.update(mode="0755", uid=0, gid=0)
        return {"volume": self.name, "path": self.target, "appVolume": vol}


def check_mutable(pod: Pod, what: str) -> None:
    """The pod runs, was started mutable, and its stage1 knows the app entrypoints."""
    require_mutable_stage1(stage1_interface_version(pod), what)
    if pod.phase != RUN or not pod.is_running():
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}, not running')
    try:
        config = jsonio.loads(pod.file(abi.STAGE1_CONFIG).read_bytes())
    except (OSError, ValueError) as exc:
        raise PodError(f'pod "{pod.uuid}": cannot read its stage1 config') from exc
    if not isinstance(config, dict) or config.get("mutable") is not True:
        raise PodError(f'pod "{pod.uuid}": is not mutable (start it with rkt app sandbox)')
    if not pod.is_ready():  # the app entrypoints answer once it is (stage1-abi §3)
        raise PodError(f'pod "{pod.uuid}": is not ready yet (rkt status --wait-ready waits for it)')


@contextmanager
def manifest_lock(pod: Pod) -> Iterator[dict[str, Any]]:
    """Hold ``pod.lck`` exclusively; yield the current manifest."""
    fd = os.open(pod.file(abi.MUTABLE_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            manifest = jsonio.loads(pod.read_manifest())
        except ValueError as exc:
            raise PodError(f'pod "{pod.uuid}": its manifest is not JSON') from exc
        yield manifest
    finally:
        os.close(fd)


def write_manifest(pod: Pod, manifest: dict[str, Any]) -> None:
    from rkt.schema.pod import PodManifest

    PodManifest.from_json(manifest)  # validate before it replaces the old one
    write_atomic(pod.file(abi.POD_MANIFEST), jsonio.dumps(manifest, indent=2).encode())


def app_names(manifest: dict[str, Any]) -> list[str]:
    return [str(a.get("name")) for a in manifest.get("apps", [])]


def require_app(pod: Pod, manifest: dict[str, Any], app: str) -> None:
    if app not in app_names(manifest):
        raise PodError(f'pod "{pod.uuid}": has no app "{app}"')


def add_app(
    pod: Pod,
    store: Store,
    req: PodRequest,
    volumes: tuple[AppVolume, ...],
    *,
    fetch: Callable[[str, Path | None], str],
    resolve_dependency: Callable[..., str] | None = None,
) -> str:
    """Add the (single) app of ``req`` to the running mutable pod; returns its name."""
    from rkt.stage0.layout import Layout
    from rkt.stage0.prepare import _lay_out_apps

    check_mutable(pod, "app add")
    with manifest_lock(pod) as manifest:
        new, records = build_pod_manifest(store, req, fetch, set(app_names(manifest)))
        (app,) = new["apps"]
        name = str(app["name"])
        _add_app_volumes(app, volumes, manifest)
        old = jsonio.loads(jsonio.dumps(manifest))
        merged = _merge(manifest, new, app)
        layout = {"apps": [app], "volumes": _new_volumes(old, merged, volumes)}
        try:
            steps = Layout()
            _lay_out_apps(store, steps, layout, list(records), resolve_dependency)
            steps.apply(str(pod.path))
            write_manifest(pod, merged)
            call_entrypoint(pod, abi.ANN_APP_ADD, [f"--app={name}"], timeout=APP_TIMEOUT)
        except BaseException:
            write_manifest(pod, old)
            _remove_app_dirs(pod, name, [str(v["name"]) for v in layout["volumes"]])
            raise
    return name


def _add_app_volumes(
    app: dict[str, Any], volumes: tuple[AppVolume, ...], manifest: dict[str, Any]
) -> None:
    taken = {v.get("name") for v in manifest.get("volumes", [])}
    for vol in volumes:
        if vol.name in taken:
            raise UsageError(f'--mnt-volume: volume "{vol.name}" is already a volume of the pod')
        app.setdefault("mounts", []).append(vol.mount_doc())


def _merge(manifest: dict[str, Any], new: dict[str, Any], app: dict[str, Any]) -> dict[str, Any]:
    merged = dict(manifest)
    merged["apps"] = [*manifest.get("apps", []), app]
    names = {v["name"] for v in manifest.get("volumes", [])}
    merged["volumes"] = [
        *manifest.get("volumes", []),
        *(v for v in new.get("volumes", []) if v["name"] not in names),
    ]
    known = {(a["name"], a["value"]) for a in manifest.get("annotations", [])}
    shared = {abi.COPY_UP_ANNOTATION + name for name in names}  # (docs/images.md: no copy)
    extra = [
        a
        for a in new.get("annotations", [])
        if (a["name"], a["value"]) not in known and a["name"] not in shared
    ]
    if extra:
        merged["annotations"] = [*manifest.get("annotations", []), *extra]
    return merged


def _new_volumes(
    old: dict[str, Any], merged: dict[str, Any], volumes: tuple[AppVolume, ...]
) -> list[dict[str, Any]]:
    """Volumes whose directories must be made now: the pod's new ones, and empty app volumes."""
    names = {v["name"] for v in old.get("volumes", [])}
    out = [v for v in merged.get("volumes", []) if v["name"] not in names]
    out += [v.mount_doc()["appVolume"] for v in volumes if v.kind == "empty"]
    return out


def _remove_app_dirs(pod: Pod, app: str, volumes: list[str]) -> None:
    for path in (
        pod.file(abi.appsinfo(app)),
        pod.file(abi.app_overlay(app)),
        *(pod.file(f"{abi.VOLUMES_DIR}/{v}") for v in volumes),
    ):
        if path.is_dir() and not path.is_symlink():
            remove_tree(path)


def start_app(pod: Pod, app: str) -> None:
    _call(pod, app, abi.ANN_APP_START, "app start")


def stop_app(pod: Pod, app: str) -> None:
    _call(pod, app, abi.ANN_APP_STOP, "app stop")


def _call(pod: Pod, app: str, annotation: str, what: str) -> None:
    check_mutable(pod, what)
    require_app(pod, jsonio.loads(pod.read_manifest()), app)
    call_entrypoint(pod, annotation, [f"--app={app}"], timeout=APP_TIMEOUT)


def remove_app(pod: Pod, app: str) -> None:
    """Stop (if needed) and remove an app; its overlay and app volumes are deleted."""
    check_mutable(pod, "app rm")
    with manifest_lock(pod) as manifest:
        require_app(pod, manifest, app)
        call_entrypoint(pod, abi.ANN_APP_RM, [f"--app={app}"], timeout=APP_TIMEOUT)
        (doc,) = [a for a in manifest["apps"] if a["name"] == app]
        own = [m["appVolume"]["name"] for m in doc.get("mounts", []) if m.get("appVolume")]
        manifest["apps"] = [a for a in manifest["apps"] if a["name"] != app]
        write_manifest(pod, manifest)
        _remove_app_dirs(pod, app, own)
