"""Lean read-only views of the pod manifest and an app's image manifest, for the stage1.

stage0 validated both with ``rkt.schema`` (the pod manifest at prepare, image manifests at
import), so the stage1 reads the JSON directly into these small classes instead of importing the
schema's validating parsers (~20-30 ms of imports on the pod start path). The views carry the
fields the stage1 uses, with the same names, defaults and normalisation as ``rkt.schema``
(``tests/unit/test_stage1_manifest.py`` checks they resolve to the same ``AppSpec``). Isolators
are the exception: an app that has any gets them parsed by ``rkt.schema.isolators`` itself, so
their typed views and errors are exactly the schema's.

A document the lean reader cannot make sense of (it was not written by stage0) is handed to the
schema parser, whose ``ManifestError`` names the bad field.

Imports only the standard library and ``rkt.errors`` (``rkt.schema`` lazily, see above).
"""

from __future__ import annotations

from rkt import jsonio

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from rkt.schema.isolators import Isolator

DEFAULT_VOLUME_MODE = "0755"  # rkt.schema.pod: an "empty" volume's default mode


class EnvVar:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value


class MountPoint:
    __slots__ = ("name", "path", "read_only")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.name: str = obj["name"]
        self.path: str = obj["path"]
        self.read_only = bool(obj.get("readOnly"))


class Port:
    __slots__ = ("count", "name", "port", "protocol", "socket_activated")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.name: str = obj["name"]
        self.protocol: str = obj["protocol"]
        self.port: int = obj["port"]
        count = obj.get("count")
        self.count: int = 1 if count is None else count
        self.socket_activated = bool(obj.get("socketActivated"))


class App:
    __slots__ = (
        "environment",
        "exec",
        "group",
        "isolators",
        "mount_points",
        "ports",
        "supplementary_gids",
        "user",
        "working_directory",
    )

    def __init__(self, obj: dict[str, Any]) -> None:
        self.exec: tuple[str, ...] = tuple(obj.get("exec") or ())
        self.user: str = obj["user"]
        self.group: str = obj["group"]
        gids_key = "supplementaryGIDs" if "supplementaryGIDs" in obj else "supplementaryGids"
        self.supplementary_gids: tuple[int, ...] = tuple(obj.get(gids_key) or ())
        self.working_directory: str | None = obj.get("workingDirectory")
        self.environment = tuple(
            EnvVar(e["name"], e["value"]) for e in obj.get("environment") or ()
        )
        self.isolators: tuple[Isolator, ...] = _isolators(obj) if obj.get("isolators") else ()
        self.mount_points = tuple(MountPoint(m) for m in obj.get("mountPoints") or ())
        self.ports = tuple(Port(p) for p in obj.get("ports") or ())


class Volume:
    __slots__ = ("gid", "kind", "mode", "name", "read_only", "recursive", "source", "uid")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.name: str = obj["name"]
        self.kind: str = obj["kind"]
        self.source: str | None = obj.get("source")
        self.read_only = bool(obj.get("readOnly"))
        self.recursive: bool | None = obj.get("recursive")
        self.mode: str | None = obj.get("mode")
        self.uid: int | None = obj.get("uid")
        self.gid: int | None = obj.get("gid")
        if self.kind == "empty":
            self.mode = DEFAULT_VOLUME_MODE if self.mode is None else self.mode
            self.uid = 0 if self.uid is None else self.uid
            self.gid = 0 if self.gid is None else self.gid

    @property
    def mode_bits(self) -> int:
        return int(self.mode or DEFAULT_VOLUME_MODE, 8)


class Mount:
    __slots__ = ("app_volume", "path", "volume")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.volume: str = obj["volume"]
        self.path: str = obj["path"]
        app_volume = obj.get("appVolume")
        self.app_volume = None if app_volume is None else Volume(app_volume)


class PodApp:
    __slots__ = ("app", "mounts", "name", "read_only_rootfs")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.name: str = obj["name"]
        if not isinstance(obj["image"], dict):
            raise TypeError("image")
        app = obj.get("app")
        self.app = None if app is None else App(app)
        self.read_only_rootfs = bool(obj.get("readOnlyRootFS"))
        self.mounts = tuple(Mount(m) for m in obj.get("mounts") or ())


class ExposedPort:
    __slots__ = ("host_ip", "host_port", "name")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.name: str = obj["name"]
        self.host_port: int = obj["hostPort"]
        self.host_ip: str | None = obj.get("hostIP")


class PodManifest:
    __slots__ = ("annotations", "apps", "ports", "volumes")

    def __init__(self, obj: dict[str, Any]) -> None:
        if obj.get("acKind") != "PodManifest":
            raise ValueError("acKind")
        self.apps = tuple(PodApp(a) for a in obj.get("apps") or ())
        self.volumes = tuple(Volume(v) for v in obj.get("volumes") or ())
        self.annotations: tuple[tuple[str, str], ...] = _pairs(obj.get("annotations"))
        self.ports = tuple(ExposedPort(p) for p in obj.get("ports") or ())

    def app(self, name: str) -> PodApp | None:
        return next((a for a in self.apps if a.name == name), None)

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)

    def annotation(self, name: str) -> str | None:
        return next((value for key, value in self.annotations if key == name), None)


class ImageManifest:
    __slots__ = ("annotations", "app", "name")

    def __init__(self, obj: dict[str, Any]) -> None:
        if obj.get("acKind") != "ImageManifest":
            raise ValueError("acKind")
        self.name: str = obj["name"]
        app = obj.get("app")
        self.app = None if app is None else App(app)
        self.annotations: tuple[tuple[str, str], ...] = _pairs(obj.get("annotations"))

    def annotation(self, name: str) -> str | None:
        return next((value for key, value in self.annotations if key == name), None)


def _pairs(items: list[dict[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple((a["name"], a["value"]) for a in items or ())


def _isolators(obj: dict[str, Any]) -> tuple[Isolator, ...]:
    from rkt.schema._fields import Loc
    from rkt.schema.isolators import parse_isolators

    return parse_isolators(obj, "isolators", Loc("app"))


def load_pod_manifest(data: bytes) -> PodManifest:
    """The pod manifest's view; ``ManifestError`` (from the schema) when it is not one."""
    try:
        return PodManifest(jsonio.loads(data))
    except (KeyError, TypeError, ValueError, AttributeError):
        from rkt.schema.pod import PodManifest as Checked

        Checked.from_json(data)  # raises, naming the bad field
        raise


def load_image_manifest(data: bytes) -> ImageManifest:
    """An app's image manifest view; ``ManifestError`` (from the schema) when it is not one."""
    try:
        return ImageManifest(jsonio.loads(data))
    except (KeyError, TypeError, ValueError, AttributeError):
        from rkt.schema.image import ImageManifest as Checked

        Checked.from_json(data)
        raise
