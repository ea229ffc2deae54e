"""The appc PodManifest (appc spec 0.8.11, pods.md "Pod Manifest Schema").

Owns: the immutable records (``NamedTuple``s, as in ``rkt.schema.image``) of a pod manifest (apps
with their image reference, optional App override and mounts; volumes; exposed ports) and its JSON
codec. The App object, labels, annotations and ports are parsed by ``rkt.schema.image``, never
duplicated here.

A parsed pod manifest is internally consistent: app and volume names are unique and every mount
names a declared volume (or carries its own ``appVolume``). Whether it is *reified* (image IDs
present in the store, every mount point satisfied) is for stage0 to check.

Pure: no I/O. Imports only ``rkt.errors`` and its sibling ``rkt.schema`` modules.
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc without `collections` (~1 ms)

from rkt import textcheck
from rkt.records import NamedTuple
from rkt.schema._fields import (
    Loc,
    as_object,
    check_abs_path,
    check_unique,
    dump_json,
    load_object,
    name_value_dicts,
    objects,
    opt_bool,
    opt_int,
    opt_str,
    req_int,
    req_str,
    show,
    str_map,
)
from rkt.schema.image import (
    SPEC_VERSION,
    Annotation,
    App,
    Label,
    Port,
    StringMap,
    parse_annotations,
    parse_app,
    parse_header,
    parse_isolators_field,
    parse_labels,
    parse_port,
)
from rkt.schema.names import (
    is_full_image_id,
    validate_ac_identifier,
    validate_ac_name,
    validate_file_name,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, Literal

    from rkt.schema.isolators import Isolator

POD_MANIFEST_KIND = "PodManifest"
VOLUME_KINDS = ("host", "empty")
DEFAULT_VOLUME_MODE = "0755"
_MAX_ID = (1 << 32) - 1


class RuntimeImage(NamedTuple):
    """The image an app runs: its ID (required) and, informationally, its name and labels."""

    id: str
    name: str | None = None
    labels: tuple[Label, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        out["id"] = self.id
        if self.labels:
            out["labels"] = name_value_dicts((lb.name, lb.value) for lb in self.labels)
        return out


class Volume(NamedTuple):
    """A pod volume; for kind "empty", parsing fills mode "0755", uid 0 and gid 0 (pods.md)."""

    name: str
    kind: Literal["host", "empty"]
    source: str | None = None
    read_only: bool = False
    recursive: bool | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def mode_bits(self) -> int:
        return int(self.mode or DEFAULT_VOLUME_MODE, 8)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        optional = (
            ("source", self.source),
            ("readOnly", self.read_only or None),
            ("recursive", self.recursive),
            ("mode", self.mode),
            ("uid", self.uid),
            ("gid", self.gid),
        )
        out.update((key, value) for key, value in optional if value is not None)
        return out


class Mount(NamedTuple):
    """Maps a volume (by name, or the inline ``app_volume``) to a path in an app."""

    volume: str
    path: str
    app_volume: Volume | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"volume": self.volume, "path": self.path}
        if self.app_volume is not None:
            out["appVolume"] = self.app_volume.to_dict()
        return out


class PodApp(NamedTuple):
    """One app of a pod (pods.md ``apps[]``); ``app`` None means "as in the image manifest"."""

    name: str
    image: RuntimeImage
    app: App | None = None
    read_only_rootfs: bool = False
    mounts: tuple[Mount, ...] = ()
    annotations: tuple[Annotation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "image": self.image.to_dict()}
        if self.app is not None:
            out["app"] = self.app.to_dict()
        if self.read_only_rootfs:
            out["readOnlyRootFS"] = True
        if self.mounts:
            out["mounts"] = [m.to_dict() for m in self.mounts]
        if self.annotations:
            out["annotations"] = name_value_dicts((a.name, a.value) for a in self.annotations)
        return out


class ExposedPort(NamedTuple):
    """A port to forward from the host (pods.md ``ports[]``)."""

    name: str
    host_port: int
    host_ip: str | None = None
    pod_port: Port | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "hostPort": self.host_port}
        if self.host_ip is not None:
            out["hostIP"] = self.host_ip
        if self.pod_port is not None:
            out["podPort"] = self.pod_port.to_dict()
        return out


class PodManifest(NamedTuple):
    """The ``pod`` manifest stage0 writes and stage1 reads."""

    ac_kind: str = POD_MANIFEST_KIND
    ac_version: str = SPEC_VERSION
    apps: tuple[PodApp, ...] = ()
    volumes: tuple[Volume, ...] = ()
    isolators: tuple[Isolator, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    ports: tuple[ExposedPort, ...] = ()
    user_annotations: StringMap = ()
    user_labels: StringMap = ()

    def app(self, name: str) -> PodApp | None:
        return next((a for a in self.apps if a.name == name), None)

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)

    def annotation(self, name: str) -> str | None:
        return next((a.value for a in self.annotations if a.name == name), None)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> PodManifest:
        """Parse and validate pod manifest JSON; raises ``ManifestError`` naming the bad field."""
        loc = Loc("pod manifest")
        obj = load_object(data, loc)
        ac_version = parse_header(obj, loc, POD_MANIFEST_KIND)
        volumes = tuple(_parse_volume(o, w) for w, o in objects(obj, "volumes", loc))
        check_unique(_named(loc, "volumes", [v.name for v in volumes]), "volume")
        declared = {v.name for v in volumes}
        apps = tuple(_parse_pod_app(o, w, declared) for w, o in objects(obj, "apps", loc))
        check_unique(_named(loc, "apps", [a.name for a in apps]), "app")
        return cls(
            ac_kind=POD_MANIFEST_KIND,
            ac_version=ac_version,
            apps=apps,
            volumes=volumes,
            isolators=parse_isolators_field(obj, loc),
            annotations=parse_annotations(obj, "annotations", loc),
            ports=tuple(_parse_exposed_port(o, w) for w, o in objects(obj, "ports", loc)),
            user_annotations=str_map(obj, "userAnnotations", loc),
            user_labels=str_map(obj, "userLabels", loc),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "acVersion": self.ac_version,
            "acKind": self.ac_kind,
            "apps": [a.to_dict() for a in self.apps],
        }
        if self.volumes:
            out["volumes"] = [v.to_dict() for v in self.volumes]
        if self.isolators:
            out["isolators"] = [i.to_dict() for i in self.isolators]
        if self.annotations:
            out["annotations"] = name_value_dicts((a.name, a.value) for a in self.annotations)
        if self.ports:
            out["ports"] = [p.to_dict() for p in self.ports]
        if self.user_annotations:
            out["userAnnotations"] = dict(self.user_annotations)
        if self.user_labels:
            out["userLabels"] = dict(self.user_labels)
        return out

    def to_json(self, pretty: bool = False) -> bytes:
        return dump_json(self.to_dict(), pretty)


def _named(loc: Loc, key: str, names: list[str]) -> list[tuple[Loc, str]]:
    return [(loc.key(key).index(i).key("name"), name) for i, name in enumerate(names)]


def _parse_pod_app(obj: Mapping[str, Any], loc: Loc, volumes: set[str]) -> PodApp:
    name = validate_file_name(req_str(obj, "name", loc), str(loc.key("name")))
    if obj.get("image") is None:
        raise loc.key("image").error("is required")
    app = obj.get("app")
    mounts = tuple(_parse_mount(o, w, volumes) for w, o in objects(obj, "mounts", loc))
    return PodApp(
        name=name,
        image=_parse_runtime_image(as_object(obj["image"], loc.key("image")), loc.key("image")),
        app=None if app is None else parse_app(app, loc.key("app")),
        read_only_rootfs=bool(opt_bool(obj, "readOnlyRootFS", loc)),
        mounts=mounts,
        annotations=parse_annotations(obj, "annotations", loc),
    )


def _parse_runtime_image(obj: Mapping[str, Any], loc: Loc) -> RuntimeImage:
    image_id = req_str(obj, "id", loc)
    if not is_full_image_id(image_id):
        raise loc.key("id").error(
            f"{show(image_id)} is not a full image ID (sha512- and 128 hex digits)"
        )
    name = opt_str(obj, "name", loc)
    if name is not None:
        validate_ac_identifier(name, str(loc.key("name")))
    return RuntimeImage(id=image_id, name=name, labels=parse_labels(obj, "labels", loc))


def _parse_mount(obj: Mapping[str, Any], loc: Loc, volumes: set[str]) -> Mount:
    volume = validate_ac_name(req_str(obj, "volume", loc), str(loc.key("volume")))
    path = check_abs_path(req_str(obj, "path", loc), loc.key("path"))
    app_volume = obj.get("appVolume")
    if app_volume is None and volume not in volumes:
        raise loc.key("volume").error(f"no volume named {show(volume)} in the pod")
    return Mount(
        volume=volume,
        path=path,
        app_volume=None
        if app_volume is None
        else _parse_volume(as_object(app_volume, loc.key("appVolume")), loc.key("appVolume")),
    )


def _parse_volume(obj: Mapping[str, Any], loc: Loc) -> Volume:
    name = validate_file_name(req_str(obj, "name", loc), str(loc.key("name")))
    kind: Literal["host", "empty"]
    raw_kind = req_str(obj, "kind", loc)
    source = opt_str(obj, "source", loc)
    mode = opt_str(obj, "mode", loc)
    uid = opt_int(obj, "uid", loc, 0, _MAX_ID)
    gid = opt_int(obj, "gid", loc, 0, _MAX_ID)
    if raw_kind == "host":
        kind = "host"
        if not source:
            raise loc.key("source").error('is required for a volume of kind "host"')
        check_abs_path(source, loc.key("source"))
    elif raw_kind == "empty":
        kind = "empty"
        mode = DEFAULT_VOLUME_MODE if mode is None else mode
        uid = 0 if uid is None else uid
        gid = 0 if gid is None else gid
    else:
        raise loc.key("kind").error(f'{show(raw_kind)} is not "host" or "empty"')
    if mode is not None and not textcheck.is_octal_mode(mode):
        raise loc.key("mode").error(f'{show(mode)} is not an octal mode (like "0755")')
    return Volume(
        name=name,
        kind=kind,
        source=source,
        read_only=bool(opt_bool(obj, "readOnly", loc)),
        recursive=opt_bool(obj, "recursive", loc),
        mode=mode,
        uid=uid,
        gid=gid,
    )


def _parse_exposed_port(obj: Mapping[str, Any], loc: Loc) -> ExposedPort:
    name = validate_ac_name(req_str(obj, "name", loc), str(loc.key("name")))
    host_port = req_int(obj, "hostPort", loc, 1, 65535)
    host_ip = opt_str(obj, "hostIP", loc)
    if host_ip is not None:
        import ipaddress  # here: ~0.5 ms, and only a port with a host IP needs it

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError as exc:
            raise loc.key("hostIP").error(f"{show(host_ip)} is not an IPv4 address") from exc
    pod_port = obj.get("podPort")
    return ExposedPort(
        name=name,
        host_port=host_port,
        host_ip=host_ip,
        pod_port=None
        if pod_port is None
        else parse_port(as_object(pod_port, loc.key("podPort")), loc.key("podPort")),
    )
