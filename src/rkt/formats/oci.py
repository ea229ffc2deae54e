"""Docker and OCI image metadata: manifests, indexes, configs, and the appc manifest from them.

Owns the parsing of every manifest kind rkt pulls (OCI image-spec v1 manifest and index, Docker
image manifest v2 schema 2 and manifest list, legacy schema 1), the choice of this machine's
platform in an index, and the mapping of an image config to an appc ImageManifest (what docker2aci
did, rkt Documentation/running-docker-images.md; reference §2.4):

- Entrypoint + Cmd -> ``app.exec``; both kept verbatim in ``appc.io/docker/entrypoint|cmd``
  annotations, so stage0 can apply Docker's rule "arguments replace Cmd, not Entrypoint";
- Env, WorkingDir, User (``user[:group]``) -> environment, workingDirectory, user/group;
- ExposedPorts ``80/tcp`` -> port ``80-tcp``; Volumes ``/data`` -> mount point ``volume-data``;
- Labels -> annotations ``appc.io/docker/label/<key>`` (keys that are not AC identifiers dropped).

Pure: imports only ``rkt.errors`` and the standard library. No network, no disk.
"""

from __future__ import annotations

import hashlib
import platform
import re
from dataclasses import dataclass

from rkt import jsonio
from rkt.errors import ManifestError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
# What a registry may answer with; the registry does not convert, so ask for all of them.
ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, DOCKER_SCHEMA1_SIGNED)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
LAYER_COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
ANN_PREFIX = "appc.io/docker/"
MAX_MANIFEST = 4 * 1024 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_AC_IDENTIFIER = re.compile(r"[a-z0-9]+([-._~/][a-z0-9]+)*")
_NOT_AC_NAME = re.compile(r"[^a-z0-9]+")

# platform.machine() -> (OCI architecture, variant)
_PLATFORMS = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", ""),
    "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what to fetch, how big it is, and what it must hash to."""

    media_type: str
    digest: str
    size: int  # -1 when unknown (schema 1)
    os: str = ""
    architecture: str = ""
    variant: str = ""

    @property
    def compression(self) -> str:
        return LAYER_COMPRESSION.get(self.media_type, "auto")

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index or a Docker manifest list."""

    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageManifestDoc:
    """An image manifest: the config blob (absent for schema 1) and its layers, lowest first."""

    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    schema1_config: dict[str, Any] | None = None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str, what: str) -> str:
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise ManifestError(f'{what}: "{digest}" is not a sha256 digest')
    return digest


def host_platform() -> tuple[str, str, str]:
    """This machine as an OCI platform: (os, architecture, variant)."""
    machine = platform.machine().lower()
    arch, variant = _PLATFORMS.get(machine, (machine, ""))
    return "linux", arch, variant


def _json(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST:
        raise ManifestError(f"{what}: larger than {MAX_MANIFEST} bytes")
    try:
        doc = jsonio.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{what}: not a JSON object")
    return doc


def _descriptor(obj: Any, what: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: not an object")
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what}: size {size!r} is not a non-negative integer")
    media_type = obj.get("mediaType", "")
    if not isinstance(media_type, str):
        raise ManifestError(f"{what}: mediaType is not a string")
    plat = obj.get("platform") or {}
    if not isinstance(plat, dict):
        raise ManifestError(f"{what}: platform is not an object")
    return Descriptor(
        media_type,
        check_digest(obj.get("digest", ""), what),
        size,
        str(plat.get("os", "")),
        str(plat.get("architecture", "")),
        str(plat.get("variant", "")),
    )


def parse_manifest(data: bytes, content_type: str = "") -> ImageIndex | ImageManifestDoc:
    """Any manifest kind, told apart by its ``mediaType`` (else the HTTP content type)."""
    doc = _json(data, "image manifest")
    media_type = doc.get("mediaType") or content_type.split(";")[0].strip()
    if doc.get("schemaVersion") == 1:
        return _parse_schema1(doc)
    if doc.get("schemaVersion") != 2:
        raise ManifestError(
            f"image manifest: unsupported schemaVersion {doc.get('schemaVersion')!r}"
        )
    if media_type in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestError("image index: manifests is not a list")
        return ImageIndex(
            tuple(_descriptor(m, f"image index: manifests[{i}]") for i, m in enumerate(items))
        )
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("image manifest: layers is not a list")
    parsed = tuple(_descriptor(m, f"image manifest: layers[{i}]") for i, m in enumerate(layers))
    for i, layer in enumerate(parsed):
        if layer.media_type and layer.media_type not in LAYER_COMPRESSION:
            raise ManifestError(f'image manifest: layers[{i}]: unsupported "{layer.media_type}"')
    config = _descriptor(doc.get("config"), "image manifest: config")
    return ImageManifestDoc(media_type or OCI_MANIFEST, config, parsed)


def _parse_schema1(doc: dict[str, Any]) -> ImageManifestDoc:
    """Docker schema 1: fsLayers and history listed top-most first; config in v1Compatibility."""
    fs_layers, history = doc.get("fsLayers"), doc.get("history")
    if not isinstance(fs_layers, list) or not isinstance(history, list) or not fs_layers:
        raise ManifestError("schema 1 manifest: needs fsLayers and history lists")
    if len(history) != len(fs_layers):
        raise ManifestError("schema 1 manifest: fsLayers and history differ in length")
    layers = []
    for i, item in enumerate(reversed(fs_layers)):
        digest = check_digest((item or {}).get("blobSum", ""), f"schema 1 fsLayers[{i}]")
        layers.append(Descriptor(DOCKER_SCHEMA1, digest, -1))
    try:
        top = jsonio.loads(history[0]["v1Compatibility"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError("schema 1 manifest: history[0].v1Compatibility is not JSON") from exc
    return ImageManifestDoc(
        DOCKER_SCHEMA1, None, tuple(layers), top if isinstance(top, dict) else {}
    )


def choose_platform(index: ImageIndex, want: tuple[str, str, str] | None = None) -> Descriptor:
    """The index entry for this machine (``want`` overrides it, for tests)."""
    os_name, arch, variant = want or host_platform()
    candidates = [
        m
        for m in index.manifests
        if m.os == os_name and m.architecture == arch and m.media_type not in INDEX_TYPES
    ]
    exact = [m for m in candidates if (m.variant or variant) == variant or not m.variant]
    if exact:
        return exact[0]
    found = ", ".join(
        f"{m.os}/{m.architecture}" + (f"/{m.variant}" if m.variant else "") for m in index.manifests
    )
    raise ManifestError(
        f"image index: no image for {os_name}/{arch}"
        + (f"/{variant}" if variant else "")
        + f" (it has: {found or 'nothing'})"
    )


def parse_config(data: bytes) -> dict[str, Any]:
    """An image config blob (only what rkt reads is checked: a wrong type is an error, never a
    value quietly left out)."""
    doc = _json(data, "image config")
    for section in ("config", "container_config"):
        conf = doc.get(section) or {}
        if not isinstance(conf, dict):
            raise ManifestError(f"image config: {section} is not an object")
        _check_config_fields(conf, section)
    for key in ("os", "architecture", "variant"):
        if not isinstance(doc.get(key) or "", str):
            raise ManifestError(f"image config: {key} is not a string")
    rootfs = doc.get("rootfs") or {}
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
        raise ManifestError("image config: rootfs.diff_ids is not a list")
    return doc


def _check_config_fields(conf: dict[str, Any], section: str) -> None:
    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    for key in ("User", "WorkingDir"):
        if not isinstance(conf.get(key) or "", str):
            raise ManifestError(f"image config: {section}.{key} is not a string")
    env = conf.get("Env") or []
    if not strings(env) or any("\0" in item for item in env):
        raise ManifestError(f"image config: {section}.Env is not a list of strings")
    for key in ("Volumes", "ExposedPorts"):
        if not isinstance(conf.get(key) or {}, dict):
            raise ManifestError(f"image config: {section}.{key} is not an object")
    labels = conf.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ManifestError(f"image config: {section}.Labels is not an object of strings")


def diff_ids(config: dict[str, Any]) -> list[str]:
    return [str(d) for d in (config.get("rootfs") or {}).get("diff_ids", [])]


@dataclass(frozen=True)
class ImageOrigin:
    """Where an image came from, for its name, labels and annotations."""

    name: str  # the appc name (an AC identifier)
    tag: str = "latest"
    registry: str = ""
    repository: str = ""
    manifest_digest: str = ""
    config_digest: str = ""


def appc_name(text: str) -> str:
    """An AC identifier from a registry/repository name: lower case, ':' and odd runs -> '-'."""
    parts = [
        p if p in "-._~/" else _NOT_AC_NAME.sub("-", p.lower()).strip("-")
        for p in re.split(r"([-._~/])", text)
    ]
    out = re.sub(r"[-._~/]{2,}", lambda m: m.group(0)[-1], "".join(parts)).strip("-._~/")
    if not _AC_IDENTIFIER.fullmatch(out):
        raise ManifestError(f'cannot derive an image name from "{text}"')
    return out


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError("image config: Entrypoint/Cmd must be lists of strings")
    return list(value)


def derive_app(conf: dict[str, Any]) -> dict[str, Any]:
    """The appc ``app`` of an image config's ``config`` section."""
    exec_ = _list(conf.get("Entrypoint")) + _list(conf.get("Cmd"))
    user, _, group = str(conf.get("User") or "").partition(":")
    # Without a group, Docker uses the user's primary group: the importer looks it up in the
    # image's /etc/passwd (``resolve_user``); "0" stands in until then.
    app: dict[str, Any] = {"exec": exec_, "user": user or "0", "group": group or "0"}
    env = []
    for item in conf.get("Env") or []:
        key, eq, value = str(item).partition("=")
        if eq and key:
            env.append({"name": key, "value": value})
    if env:
        app["environment"] = env
    workdir = conf.get("WorkingDir")
    if isinstance(workdir, str) and workdir.startswith("/"):
        app["workingDirectory"] = workdir
    ports = []
    for spec in sorted(conf.get("ExposedPorts") or {}):
        number, _, proto = str(spec).partition("/")
        proto = proto or "tcp"
        if number.isdigit() and proto in ("tcp", "udp") and 0 < int(number) < 65536:
            ports.append({"name": f"{int(number)}-{proto}", "protocol": proto, "port": int(number)})
    if ports:
        app["ports"] = ports
    points, seen = [], set()
    for path in sorted(conf.get("Volumes") or {}):
        if not str(path).startswith("/"):
            continue
        if ".." in str(path).split("/"):
            raise ManifestError(f'image config: volume "{path}" has a ".." component')
        name = "volume-" + (_NOT_AC_NAME.sub("-", str(path).lower()).strip("-") or "root")
        if name not in seen:
            seen.add(name)
            points.append({"name": name, "path": str(path)})
    if points:
        app["mountPoints"] = points
    return app


def derive_image_manifest(config: dict[str, Any], origin: ImageOrigin) -> bytes:
    """The appc ImageManifest rkt stores for a Docker/OCI image (canonical JSON, deterministic)."""
    conf = config.get("config") or config.get("container_config") or {}
    arch = str(config.get("architecture") or host_platform()[1])
    labels = [{"name": "version", "value": origin.tag or "latest"}]
    appc_arch = {"arm64": "aarch64", "386": "i386"}.get(arch, arch)
    if str(config.get("os", "linux")) == "linux" and appc_arch in ("amd64", "aarch64", "i386"):
        labels += [{"name": "os", "value": "linux"}, {"name": "arch", "value": appc_arch}]
    annotations = {
        "appc.io/docker/registryurl": origin.registry,
        "appc.io/docker/repository": origin.repository,
        "appc.io/docker/tag": origin.tag,
        "appc.io/docker/manifestdigest": origin.manifest_digest,
        "appc.io/docker/imageid": origin.config_digest,
        "appc.io/docker/entrypoint": jsonio.dumps(_list(conf.get("Entrypoint"))),
        "appc.io/docker/cmd": jsonio.dumps(_list(conf.get("Cmd"))),
    }
    for key, value in sorted((conf.get("Labels") or {}).items()):
        name = f"{ANN_PREFIX}label/{key}"
        if _AC_IDENTIFIER.fullmatch(name) and isinstance(value, str):
            annotations[name] = value
    doc = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": origin.name,
        "labels": labels,
        "app": derive_app(conf),
        "annotations": [{"name": k, "value": v} for k, v in annotations.items() if v],
    }
    return jsonio.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def docker_entrypoint(annotations: dict[str, str]) -> list[str] | None:
    """The Entrypoint kept in a derived manifest, or None for images that are not Docker's."""
    raw = annotations.get(f"{ANN_PREFIX}entrypoint")
    if raw is None:
        return None
    try:
        value = jsonio.loads(raw)
    except ValueError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None
