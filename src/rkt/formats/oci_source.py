"""Image sources on the local disk: OCI image layouts, OCI archives and ``docker save`` tarballs.

Every source, local or remote (``rkt.fetch.registry.RegistrySource``), gives the importer the
same two things: :meth:`resolve` (the image manifest for this machine, its config and where the
image came from) and :meth:`open_blob` (a layer's raw bytes, which the importer verifies while
it extracts them). Spellings, as skopeo's transports:

    oci:DIR[:TAG]              an OCI image layout directory (image-spec image-layout.md)
    oci-archive:FILE[:TAG]     the same, as a tar file
    docker-archive:FILE[:REF]  ``docker save`` output: manifest.json, config, layer tars

Archives are read in place: members are located once (offset and size) and each layer is read
straight from the file, so layers can be extracted in parallel without unpacking the archive.

May import ``rkt.errors`` and ``rkt.formats``.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from rkt import jsonio
from rkt.errors import ImageError, ManifestError, NotFoundError
from rkt.formats.oci import (
    Descriptor,
    ImageIndex,
    ImageManifestDoc,
    ImageOrigin,
    appc_name,
    check_digest,
    choose_platform,
    diff_ids,
    parse_config,
    parse_manifest,
    sha256_digest,
)
from rkt.paths import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, BinaryIO

LOCAL_TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:")
REF_ANNOTATION = "org.opencontainers.image.ref.name"
SMALL_BLOB = 4 * 1024 * 1024
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class ResolvedImage:
    manifest: ImageManifestDoc
    manifest_bytes: bytes
    manifest_digest: str
    config: dict[str, Any]
    config_bytes: bytes
    origin: ImageOrigin
    layer_paths: dict[str, str] = field(default_factory=dict)


class ImageSource(Protocol):
    label: str

    def resolve(self) -> ResolvedImage: ...

    def open_blob(self, desc: Descriptor) -> contextlib.AbstractContextManager[BinaryIO]: ...


def is_local_source(text: str) -> bool:
    return text.startswith(LOCAL_TRANSPORTS)


def split_ref(rest: str) -> tuple[str, str]:
    """``PATH[:TAG]`` -> (path, tag); a colon followed by a path stays part of the path."""
    path, sep, tag = rest.rpartition(":")
    if sep and path and tag and "/" not in tag:
        return path, tag
    return rest, ""


def _split_existing(rest: str) -> tuple[str, str]:
    """The longest existing path before a colon wins (docker-archive refs hold colons too)."""
    if os.path.exists(rest):
        return rest, ""
    for i in (i for i, c in enumerate(rest) if c == ":"):
        if os.path.exists(rest[:i]):
            return rest[:i], rest[i + 1 :]
    return split_ref(rest)


def open_local_source(text: str) -> ImageSource:
    transport, _, rest = text.partition(":")
    path, tag = _split_existing(rest)
    if not path:
        raise ImageError(f'image "{text}": no path after "{transport}:"')
    files: _Files
    if transport == "oci":
        if not Path(path, "index.json").is_file():
            raise NotFoundError(f'image "{text}": "{path}" is not an OCI image layout')
        files = _DirFiles(Path(path))
    else:
        files = _TarFiles(Path(path), text)
    if transport == "docker-archive":
        return DockerArchiveSource(text, files, Path(path), tag)
    return OciLayoutSource(text, files, Path(path), tag)


# -- files of a layout: a directory or a tar ----------------------------------------------------


class _Files(Protocol):
    def read(self, rel: str, limit: int) -> bytes: ...

    def open(self, rel: str) -> contextlib.AbstractContextManager[BinaryIO]: ...


class _DirFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, rel: str, limit: int) -> bytes:
        with self.open(rel) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise ManifestError(f'"{rel}": larger than {limit} bytes')
        return data

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO]:
        norm = posixpath.normpath(rel)
        if norm.startswith(("/", "..")):
            raise ImageError(f'"{rel}": outside the image layout')
        try:
            fh = open(self.root / norm, "rb")  # noqa: SIM115
        except OSError as exc:
            raise ImageError(f'"{self.root / norm}": {exc.strerror}') from exc
        with fh:
            yield fh


class _Bounded(io.RawIOBase):
    """``size`` bytes of a file from ``offset``: one archive member."""

    def __init__(self, fh: BinaryIO, offset: int, size: int) -> None:
        self._fh = fh
        self._left = size
        fh.seek(offset)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._fh.read(want) if want else b""
        self._left -= len(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class _TarFiles:
    """Members of a tar archive located once; symlinked members (docker save) followed."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(path, "r:") as tar:
                for info in tar:
                    self.members[posixpath.normpath(info.name)] = info
        except FileNotFoundError as exc:
            raise NotFoundError(f'image "{label}": no such file') from exc
        except (OSError, tarfile.TarError) as exc:
            raise ImageError(f'image "{label}": not a readable tar archive ({exc})') from exc

    def _member(self, rel: str) -> tarfile.TarInfo:
        name = posixpath.normpath(rel)
        for _ in range(8):
            info = self.members.get(name)
            if info is None:
                raise ImageError(f'archive "{self.path}": no member "{rel}"')
            if info.issym():
                name = posixpath.normpath(posixpath.join(posixpath.dirname(name), info.linkname))
                continue
            if info.islnk():
                name = posixpath.normpath(info.linkname)
                continue
            if not info.isfile():
                raise ImageError(f'archive "{self.path}": "{rel}" is not a file')
            return info
        raise ImageError(f'archive "{self.path}": "{rel}": too many links')

    def read(self, rel: str, limit: int) -> bytes:
        info = self._member(rel)
        if info.size > limit:
            raise ManifestError(f'"{rel}": larger than {limit} bytes')
        with self.open(rel) as fh:
            return fh.read()

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO]:
        info = self._member(rel)
        with open(self.path, "rb") as fh:
            yield _Bounded(fh, info.offset_data, info.size)  # type: ignore[misc]


# -- OCI image layouts ----------------------------------------------------------------------


def _blob_rel(digest: str) -> str:
    return "blobs/" + check_digest(digest, "blob").replace(":", "/")


def _read_verified(files: _Files, desc: Descriptor, what: str) -> bytes:
    try:
        data = files.read(_blob_rel(desc.digest), max(desc.size, 0) or SMALL_BLOB)
    except ManifestError as exc:  # longer than its descriptor says (or than any manifest is)
        raise ImageError(f"{what} {desc.digest}: content does not match its digest") from exc
    if sha256_digest(data) != desc.digest or (desc.size >= 0 and len(data) != desc.size):
        raise ImageError(f"{what} {desc.digest}: content does not match its digest")
    return data


def _ref_name(entry: dict[str, Any]) -> str:
    annotations = entry.get("annotations")
    ref = annotations.get(REF_ANNOTATION, "") if isinstance(annotations, dict) else ""
    return ref if isinstance(ref, str) else ""


class OciLayoutSource:
    def __init__(self, label: str, files: _Files, path: Path, tag: str) -> None:
        self.label = label
        self.files = files
        self.path = path
        self.tag = tag

    def _entry(self) -> Descriptor:
        try:
            index = jsonio.loads(self.files.read("index.json", SMALL_BLOB))
        except ValueError as exc:
            raise ManifestError(f'image "{self.label}": index.json is not JSON ({exc})') from exc
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ManifestError(f'image "{self.label}": index.json lists no manifests')
        if not all(isinstance(e, dict) for e in entries):
            raise ManifestError(f'image "{self.label}": index.json: a manifest is not an object')
        tags = [(_ref_name(e), e) for e in entries]
        if self.tag:
            chosen = [e for t, e in tags if t == self.tag]
            if not chosen:
                have = ", ".join(t for t, _ in tags if t) or "none"
                raise NotFoundError(f'image "{self.label}": no tag "{self.tag}" (tags: {have})')
        elif len(entries) == 1:
            chosen = entries
        else:
            raise ImageError(f'image "{self.label}": the layout holds several images; name a tag')
        parsed = parse_manifest(
            jsonio.dumps({"schemaVersion": 2, "manifests": chosen[:1]}).encode()
        )
        assert isinstance(parsed, ImageIndex)
        return parsed.manifests[0]

    def resolve(self) -> ResolvedImage:
        desc = self._entry()
        for _ in range(4):  # an index may point at an index
            raw = _read_verified(self.files, desc, "manifest")
            doc = parse_manifest(raw, desc.media_type)
            if isinstance(doc, ImageManifestDoc):
                break
            desc = choose_platform(doc)
        else:
            raise ManifestError(f'image "{self.label}": indexes nested too deep')
        if doc.config is None:
            raise ManifestError(f'image "{self.label}": manifest without a config')
        config_bytes = _read_verified(self.files, doc.config, "config")
        name = appc_name(os.path.basename(os.path.normpath(self.path)).split(".")[0] or "image")
        origin = ImageOrigin(
            name, self.tag or "latest", "", str(self.path), desc.digest, doc.config.digest
        )
        return ResolvedImage(
            doc, raw, desc.digest, parse_config(config_bytes), config_bytes, origin
        )

    def open_blob(self, desc: Descriptor) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.files.open(_blob_rel(desc.digest))


# -- docker save tarballs -------------------------------------------------------------------


class DockerArchiveSource:
    """``docker save``: layers are tars whose sha256 is the config's diff_id."""

    def __init__(self, label: str, files: _Files, path: Path, ref: str) -> None:
        self.label = label
        self.files = files
        self.path = path
        self.ref = ref
        self._paths: dict[str, str] = {}

    def resolve(self) -> ResolvedImage:
        raw = self.files.read("manifest.json", SMALL_BLOB)
        try:
            entries = jsonio.loads(raw)
        except ValueError as exc:
            raise ManifestError(f'image "{self.label}": manifest.json is not JSON') from exc
        if not isinstance(entries, list) or not entries:
            raise ManifestError(f'image "{self.label}": manifest.json lists no images')
        if not all(isinstance(e, dict) for e in entries):
            raise ManifestError(f'image "{self.label}": manifest.json: an image is not an object')
        entry = self._choose(entries)
        config_bytes = self.files.read(str(entry.get("Config", "")), SMALL_BLOB)
        config = parse_config(config_bytes)
        layer_files = entry.get("Layers") or []
        ids = diff_ids(config)
        if len(ids) != len(layer_files):
            raise ManifestError(
                f'image "{self.label}": {len(layer_files)} layers, {len(ids)} diff_ids'
            )
        layers = []
        for digest, rel in zip(ids, layer_files, strict=True):
            check_digest(digest, "diff_id")
            self._paths[digest] = str(rel)
            layers.append(Descriptor(TAR_LAYER, digest, -1))
        config_digest = sha256_digest(config_bytes)
        doc = ImageManifestDoc(
            "docker-archive", Descriptor("", config_digest, len(config_bytes)), tuple(layers)
        )
        tags = entry.get("RepoTags") or []
        repo, tag = split_ref(str(tags[0])) if tags else (self.path.stem, "latest")
        origin = ImageOrigin(appc_name(repo), tag or "latest", "", repo, "", config_digest)
        return ResolvedImage(doc, raw, config_digest, config, config_bytes, origin)

    def _choose(self, entries: list[Any]) -> dict[str, Any]:
        if not self.ref:
            if len(entries) > 1:
                raise ImageError(
                    f'image "{self.label}": the archive holds several images; name one'
                )
            return dict(entries[0])
        for entry in entries:
            repo_tags = entry.get("RepoTags")
            tags = [str(t) for t in repo_tags] if isinstance(repo_tags, list) else []
            if self.ref in tags or any(t.endswith("/" + self.ref) for t in tags):
                return dict(entry)
        raise NotFoundError(f'image "{self.label}": no image tagged "{self.ref}" in the archive')

    def open_blob(self, desc: Descriptor) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.files.open(self._paths[desc.digest])
