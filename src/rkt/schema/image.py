"""The appc ImageManifest and its App (appc spec 0.8.11, aci.md "Image Manifest Schema").

Owns: the immutable records of an image manifest, the App object (also used by pod manifests,
which import ``parse_app``), labels with their os/arch rules, and the JSON codec
(``ImageManifest.from_json`` validates every field; ``to_dict`` / ``to_json`` give spec JSON).

The records are ``NamedTuple``s (``rkt.records``), not dataclasses: just as immutable, typed
and comparable, and far cheaper to create (Python 3.11 compiles each generated dataclass method on
its own), which matters because ``rkt run`` imports this module on every start. Isolators stay
in their own module, imported only when a manifest has some.

Records built directly in code are not validated; ``ImageManifest.from_json(m.to_dict())``
does that. Paths are checked to be absolute only: resolving them inside a rootfs safely is the
job of whoever renders or mounts.

Pure: no I/O. Imports only ``rkt.errors`` and its sibling ``rkt.schema`` modules.
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc without `collections` (~1 ms)

from rkt import textcheck
from rkt.errors import ManifestError
from rkt.records import NamedTuple
from rkt.schema._fields import (
    Loc,
    as_object,
    check_abs_path,
    check_int,
    check_unique,
    dump_json,
    is_int,
    items,
    load_object,
    name_value_dicts,
    name_values,
    objects,
    opt_bool,
    opt_int,
    opt_str,
    req_int,
    req_str,
    show,
    str_list,
    str_map,
)
from rkt.schema.names import (
    is_full_image_id,
    validate_ac_identifier,
    validate_ac_name,
    validate_ac_version,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from types import MappingProxyType
    from typing import Any

    from rkt.schema.isolators import Isolator
else:
    MappingProxyType = type(type.__dict__)  # as `types` defines it, without importing it (~0.2 ms)

SPEC_VERSION = "0.8.11"
IMAGE_MANIFEST_KIND = "ImageManifest"

VALID_OS_ARCH: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "linux": frozenset(
            [
                "amd64",
                "i386",
                "aarch64",
                "aarch64_be",
                "armv6l",
                "armv7l",
                "armv7b",
                "ppc64",
                "ppc64le",
                "s390x",
            ]
        ),
        "freebsd": frozenset({"amd64", "i386", "arm"}),
        "darwin": frozenset({"x86_64", "i386"}),
    }
)
"""The os/arch label combinations accepted (aci.md, appc ``types.ValidOSArch``)."""

EVENT_HANDLER_NAMES = ("pre-start", "post-stop")
PORT_PROTOCOLS = ("tcp", "udp")
_MAX_ID = (1 << 32) - 1
# aci.md "environment": POSIX names, plus "." and "-" for practical reasons. A pattern, compiled
# (and cached by re) by the first manifest with an environment.
# environment variable names: [A-Za-z_][A-Za-z0-9_.-]* (rkt.textcheck.is_env_name)

StringMap = tuple[tuple[str, str], ...]
"""An ordered string-to-string map (``userAnnotations``, ``userLabels``), kept hashable."""


class Label(NamedTuple):
    name: str
    value: str


class Annotation(NamedTuple):
    name: str
    value: str


class EnvVar(NamedTuple):
    name: str
    value: str


class EventHandler(NamedTuple):
    name: str
    exec: tuple[str, ...]


class MountPoint(NamedTuple):
    name: str
    path: str
    read_only: bool = False


class Port(NamedTuple):
    name: str
    protocol: str
    port: int
    count: int = 1  # type: ignore[assignment]  # the spec's name; shadows tuple.count
    socket_activated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "protocol": self.protocol, "port": self.port}
        if self.count != 1:
            out["count"] = self.count
        if self.socket_activated:
            out["socketActivated"] = True
        return out


class App(NamedTuple):
    """How to run an image as an application (aci.md "app"); pods may substitute their own."""

    user: str
    group: str
    exec: tuple[str, ...] = ()
    supplementary_gids: tuple[int, ...] = ()
    event_handlers: tuple[EventHandler, ...] = ()
    working_directory: str | None = None
    environment: tuple[EnvVar, ...] = ()
    isolators: tuple[Isolator, ...] = ()
    mount_points: tuple[MountPoint, ...] = ()
    ports: tuple[Port, ...] = ()
    user_annotations: StringMap = ()
    user_labels: StringMap = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.exec:
            out["exec"] = list(self.exec)
        out["user"] = self.user
        out["group"] = self.group
        if self.supplementary_gids:
            out["supplementaryGIDs"] = list(self.supplementary_gids)
        if self.event_handlers:
            out["eventHandlers"] = [
                {"name": h.name, "exec": list(h.exec)} for h in self.event_handlers
            ]
        if self.working_directory is not None:
            out["workingDirectory"] = self.working_directory
        if self.environment:
            out["environment"] = name_value_dicts((e.name, e.value) for e in self.environment)
        if self.isolators:
            out["isolators"] = [i.to_dict() for i in self.isolators]
        if self.mount_points:
            out["mountPoints"] = [_mount_point_dict(m) for m in self.mount_points]
        if self.ports:
            out["ports"] = [p.to_dict() for p in self.ports]
        if self.user_annotations:
            out["userAnnotations"] = dict(self.user_annotations)
        if self.user_labels:
            out["userLabels"] = dict(self.user_labels)
        return out


class Dependency(NamedTuple):
    image_name: str
    image_id: str | None = None
    labels: tuple[Label, ...] = ()
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"imageName": self.image_name}
        if self.image_id is not None:
            out["imageID"] = self.image_id
        if self.labels:
            out["labels"] = name_value_dicts((lb.name, lb.value) for lb in self.labels)
        if self.size is not None:
            out["size"] = self.size
        return out


class ImageManifest(NamedTuple):
    """An ACI's ``manifest`` file."""

    name: str
    ac_kind: str = IMAGE_MANIFEST_KIND
    ac_version: str = SPEC_VERSION
    labels: tuple[Label, ...] = ()
    app: App | None = None
    dependencies: tuple[Dependency, ...] = ()
    path_whitelist: tuple[str, ...] = ()
    annotations: tuple[Annotation, ...] = ()

    def label(self, name: str) -> str | None:
        return next((lb.value for lb in self.labels if lb.name == name), None)

    def annotation(self, name: str) -> str | None:
        return next((a.value for a in self.annotations if a.name == name), None)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> ImageManifest:
        """Parse and validate manifest JSON; raises ``ManifestError`` naming the bad field."""
        loc = Loc("image manifest")
        obj = load_object(data, loc)
        ac_version = parse_header(obj, loc, IMAGE_MANIFEST_KIND)
        name = validate_ac_identifier(req_str(obj, "name", loc), str(loc.key("name")))
        app = obj.get("app")
        paths = str_list(obj, "pathWhitelist", loc)
        for i, path in enumerate(paths):
            check_abs_path(path, loc.key("pathWhitelist").index(i))
        return cls(
            ac_kind=IMAGE_MANIFEST_KIND,
            ac_version=ac_version,
            name=name,
            labels=parse_labels(obj, "labels", loc),
            app=None if app is None else parse_app(app, loc.key("app")),
            dependencies=tuple(
                _parse_dependency(o, w) for w, o in objects(obj, "dependencies", loc)
            ),
            path_whitelist=paths,
            annotations=parse_annotations(obj, "annotations", loc),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "acKind": self.ac_kind,
            "acVersion": self.ac_version,
            "name": self.name,
        }
        if self.labels:
            out["labels"] = name_value_dicts((lb.name, lb.value) for lb in self.labels)
        if self.app is not None:
            out["app"] = self.app.to_dict()
        if self.dependencies:
            out["dependencies"] = [d.to_dict() for d in self.dependencies]
        if self.path_whitelist:
            out["pathWhitelist"] = list(self.path_whitelist)
        if self.annotations:
            out["annotations"] = name_value_dicts((a.name, a.value) for a in self.annotations)
        return out

    def to_json(self, pretty: bool = False) -> bytes:
        return dump_json(self.to_dict(), pretty)


def parse_header(obj: Mapping[str, Any], loc: Loc, kind: str) -> str:
    """Check ``acKind`` is ``kind`` and return the ``acVersion`` (types.md)."""
    ac_kind = req_str(obj, "acKind", loc)
    if ac_kind != kind:
        raise loc.key("acKind").error(f'must be "{kind}", not {show(ac_kind)}')
    return validate_ac_version(req_str(obj, "acVersion", loc), str(loc.key("acVersion")))


def parse_labels(obj: Mapping[str, Any], key: str, loc: Loc) -> tuple[Label, ...]:
    """A label list: AC Identifier names, unique, never "name", and a known os/arch pair."""
    pairs = name_values(obj, key, loc, validate_ac_identifier, "label")
    for i, (name, _) in enumerate(pairs):
        if name == "name":
            raise loc.key(key).index(i).key("name").error('"name" is not allowed as a label')
    labels = dict(pairs)
    os_name, arch = labels.get("os"), labels.get("arch")
    if os_name is not None:
        if os_name not in VALID_OS_ARCH:
            known = ", ".join(sorted(VALID_OS_ARCH))
            raise loc.key(key).error(f"os {show(os_name)} is not supported (known: {known})")
        if arch is not None and arch not in VALID_OS_ARCH[os_name]:
            known = ", ".join(sorted(VALID_OS_ARCH[os_name]))
            raise loc.key(key).error(
                f"arch {show(arch)} is not valid for os {show(os_name)} (known: {known})"
            )
    return tuple(Label(n, v) for n, v in pairs)


def parse_annotations(obj: Mapping[str, Any], key: str, loc: Loc) -> tuple[Annotation, ...]:
    pairs = name_values(obj, key, loc, validate_ac_identifier, "annotation")
    return tuple(Annotation(n, v) for n, v in pairs)


def parse_app(value: Any, loc: Loc) -> App:
    """Parse and validate an App object (image manifest ``app`` or a pod app's override)."""
    obj = as_object(value, loc)
    gids_key = "supplementaryGIDs" if "supplementaryGIDs" in obj else "supplementaryGids"
    working_directory = opt_str(obj, "workingDirectory", loc)
    if working_directory is not None:
        check_abs_path(working_directory, loc.key("workingDirectory"))
    ports = tuple(parse_port(o, w) for w, o in objects(obj, "ports", loc))
    mount_points = tuple(_parse_mount_point(o, w) for w, o in objects(obj, "mountPoints", loc))
    handlers = tuple(_parse_event_handler(o, w) for w, o in objects(obj, "eventHandlers", loc))
    _check_unique_names(loc, "ports", [p.name for p in ports], "port")
    _check_unique_names(loc, "mountPoints", [m.name for m in mount_points], "mount point")
    _check_unique_names(loc, "eventHandlers", [h.name for h in handlers], "event handler")
    env = name_values(obj, "environment", loc, _validate_env_name, "environment variable")
    return App(
        exec=_parse_exec(obj, loc, required=False),
        user=req_str(obj, "user", loc),
        group=req_str(obj, "group", loc),
        supplementary_gids=tuple(check_int(g, w, 0, _MAX_ID) for w, g in items(obj, gids_key, loc)),
        event_handlers=handlers,
        working_directory=working_directory,
        environment=tuple(EnvVar(n, v) for n, v in env),
        isolators=parse_isolators_field(obj, loc),
        mount_points=mount_points,
        ports=ports,
        user_annotations=str_map(obj, "userAnnotations", loc),
        user_labels=str_map(obj, "userLabels", loc),
    )


def parse_isolators_field(obj: Mapping[str, Any], loc: Loc) -> tuple[Isolator, ...]:
    """The ``isolators`` list of an app or a pod; most manifests have none, and they do not import
    ``rkt.schema.isolators`` (quantities, capability names: ~6 ms on the ``rkt run`` path)."""
    value = obj.get("isolators")
    if value is None or value == []:
        return ()
    from rkt.schema.isolators import parse_isolators

    return parse_isolators(obj, "isolators", loc)


def parse_port(obj: Mapping[str, Any], loc: Loc) -> Port:
    """A port object (image ``app.ports[]`` and pod ``ports[].podPort``)."""
    name = validate_ac_name(req_str(obj, "name", loc), str(loc.key("name")))
    protocol = req_str(obj, "protocol", loc)
    if protocol not in PORT_PROTOCOLS:
        raise loc.key("protocol").error(f'{show(protocol)} is not "tcp" or "udp"')
    port = req_int(obj, "port", loc, 1, 65535)
    count = opt_int(obj, "count", loc, 1, 65535)
    if count is not None and port + count - 1 > 65535:
        raise loc.key("count").error(f"port range {port}+{count} goes beyond 65535")
    socket_activated = bool(opt_bool(obj, "socketActivated", loc))
    return Port(name, protocol, port, 1 if count is None else count, socket_activated)


def _parse_exec(obj: Mapping[str, Any], loc: Loc, *, required: bool) -> tuple[str, ...]:
    # aci.md: exec[0] may be a bare name looked up in PATH, so only emptiness is refused.
    argv = str_list(obj, "exec", loc)
    if required and not argv:
        raise loc.key("exec").error("must not be empty")
    if argv and not argv[0]:
        raise loc.key("exec").index(0).error("must not be empty")
    return argv


def _parse_event_handler(obj: Mapping[str, Any], loc: Loc) -> EventHandler:
    name = req_str(obj, "name", loc)
    if name not in EVENT_HANDLER_NAMES:
        raise loc.key("name").error(f'{show(name)} is not "pre-start" or "post-stop"')
    return EventHandler(name, _parse_exec(obj, loc, required=True))


def _parse_mount_point(obj: Mapping[str, Any], loc: Loc) -> MountPoint:
    name = validate_ac_name(req_str(obj, "name", loc), str(loc.key("name")))
    path = check_abs_path(req_str(obj, "path", loc), loc.key("path"))
    return MountPoint(name, path, bool(opt_bool(obj, "readOnly", loc)))


def _mount_point_dict(mount_point: MountPoint) -> dict[str, Any]:
    out: dict[str, Any] = {"name": mount_point.name, "path": mount_point.path}
    if mount_point.read_only:
        out["readOnly"] = True
    return out


def _parse_dependency(obj: Mapping[str, Any], loc: Loc) -> Dependency:
    image_name = validate_ac_identifier(req_str(obj, "imageName", loc), str(loc.key("imageName")))
    image_id = opt_str(obj, "imageID", loc)
    if image_id is not None and not is_full_image_id(image_id):
        raise loc.key("imageID").error(
            f"{show(image_id)} is not a full image ID (sha512- and 128 hex digits)"
        )
    size = obj.get("size")
    if size is not None and (not is_int(size) or size < 0):
        raise loc.key("size").error(f"must be a non-negative integer, not {show(size)}")
    return Dependency(
        image_name=image_name, image_id=image_id, labels=parse_labels(obj, "labels", loc), size=size
    )


def _check_unique_names(loc: Loc, key: str, names: list[str], what: str) -> None:
    check_unique(((loc.key(key).index(i).key("name"), n) for i, n in enumerate(names)), what)


def _validate_env_name(value: str, what: str) -> str:
    if not textcheck.is_env_name(value):
        raise ManifestError(
            f"{what}: {show(value)} is not a valid environment variable name"
            " (letters, digits, _ . -)"
        )
    return value
