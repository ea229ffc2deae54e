"""Docker Registry HTTP API v2 client: ``docker://`` references, manifests and streamed blobs.

Owns what rkt asks a registry (distribution "HTTP API V2"; platform-notes §8):

- ``GET /v2/<name>/manifests/<tag|digest>`` with ``Accept`` for the OCI manifest and index, the
  Docker schema 2 manifest and list, and schema 1 (a registry never converts); an index or list is
  followed to this machine's platform (``rkt.formats.oci.choose_platform``); a manifest asked for
  by digest must hash to it;
- ``GET /v2/<name>/blobs/<digest>`` streamed: a connection cut mid-blob is resumed with
  ``Range: bytes=<offset>-`` (at most ``MAX_RESUMES`` times), so the caller's one pass of
  hash-and-extract goes on; a registry that does not resume makes the pull fail cleanly;
- authentication by ``rkt.fetch.registry_auth`` (anonymous, bearer token, basic).

TLS is verified unless ``--insecure-options=tls``; plain http is tried only with
``--insecure-options=http``, when https fails to connect (docker's own fallback).

Imports ``rkt.errors``, ``rkt.formats.oci``, ``rkt.formats.oci_source``, ``rkt.fetch``; httpx
lazily (via ``rkt.fetch.http``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from rkt import jsonio
from rkt.errors import FetchError, ImageError, ManifestError, NotFoundError, UsageError
from rkt.fetch.http import HttpStatusError, TransientFetchError
from rkt.fetch.registry_auth import RegistryAuth
from rkt.formats.oci import (
    ACCEPT,
    DOCKER_SCHEMA1,
    MAX_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifestDoc,
    ImageOrigin,
    appc_name,
    choose_platform,
    parse_config,
    parse_manifest,
    sha256_digest,
)
from rkt.formats.oci_source import ResolvedImage

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from rkt.config import Credentials
    from rkt.fetch.http import HttpClient

DEFAULT_REGISTRY = "registry-1.docker.io"
MAX_RESUMES = 3
CHUNK = 1 << 20
_REPO = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class DockerReference:
    registry: str
    repository: str
    tag: str = "latest"
    digest: str = ""

    @property
    def reference(self) -> str:
        return self.digest or self.tag

    def __str__(self) -> str:
        tail = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"docker://{self.registry}/{self.repository}{tail}"


def parse_docker_reference(raw: str) -> DockerReference:
    """``docker://[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST]``, with Docker Hub's defaults."""
    text = raw[len("docker://") :] if raw.startswith("docker://") else raw
    name, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise UsageError(f'image "{raw}": "{digest}" is not a sha256 digest')
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise UsageError(f'image "{raw}": "{tag}" is not a valid tag')
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry in ("docker.io", "index.docker.io"):
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPO.fullmatch(repository):
        raise UsageError(f'image "{raw}": "{repository}" is not a valid repository name')
    return DockerReference(registry, repository, tag or ("" if digest else "latest"), digest)


class RegistrySource:
    """One image in one registry, as an ``rkt.formats.oci_source.ImageSource``."""

    def __init__(
        self,
        ref: DockerReference,
        http: HttpClient,
        credentials: Mapping[str, Credentials],
        *,
        insecure_http: bool = False,
        platform: tuple[str, str, str] | None = None,
    ) -> None:
        self.ref = ref
        self.label = str(ref)
        self.http = http
        self.auth = RegistryAuth(ref.registry, credentials)
        self.scope = f"repository:{ref.repository}:pull"
        self.insecure_http = insecure_http
        self.platform = platform
        self._base: str | None = None

    # -- requests ----------------------------------------------------------------------------

    def base(self) -> str:
        if self._base is None:
            base = f"https://{self.ref.registry}"
            if self.insecure_http:
                try:
                    with self._get(f"{base}/v2/", base_known=False):
                        pass
                except HttpStatusError:
                    pass
                except FetchError:
                    base = f"http://{self.ref.registry}"
            self._base = base
        return self._base

    @contextlib.contextmanager
    def _get(
        self, url: str, headers: Mapping[str, str] | None = None, *, base_known: bool = True
    ) -> Iterator[Any]:
        """GET with the registry's auth: a 401 is answered once, then the request repeated."""
        for attempt in (1, 2):
            auth = {"Authorization": self.auth.header} if self.auth.header else {}
            with self.http.stream(url, headers=headers, origin_headers=auth) as response:
                if response.status_code == 401 and attempt == 1:
                    challenge = response.headers.get("WWW-Authenticate", "")
                    self.auth.authorize(self.http, challenge, self.scope, url)
                    continue
                if response.status_code == 401:
                    raise HttpStatusError(
                        f'cannot fetch "{url}": HTTP 401 (credentials refused)',
                        url=url,
                        status_code=401,
                        hint="check the dockerAuth config for this registry",
                    )
                if not base_known and response.status_code >= 400:
                    raise HttpStatusError("ping", url=url, status_code=response.status_code)
                yield response
                return

    def _read_small(self, url: str, headers: Mapping[str, str], what: str) -> tuple[bytes, str]:
        with self._get(url, headers) as response:
            if response.status_code == 404:
                raise NotFoundError(f'image "{self.label}": {what} not found in the registry')
            if response.status_code != 200:
                raise FetchError(f'image "{self.label}": {what}: HTTP {response.status_code}')
            body = b""
            for chunk in response.iter_raw(CHUNK):
                body += chunk
                if len(body) > MAX_MANIFEST:
                    raise ManifestError(f'image "{self.label}": {what} too large')
            return body, str(response.headers.get("Content-Type", ""))

    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        url = f"{self.base()}/v2/{self.ref.repository}/manifests/{reference}"
        accept = ", ".join((*ACCEPT, DOCKER_SCHEMA1))
        body, content_type = self._read_small(url, {"Accept": accept}, f"manifest {reference}")
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise ImageError(
                f'image "{self.label}": manifest {reference} does not match its digest'
            )
        return body, content_type, digest

    def read_blob(self, desc: Descriptor, what: str) -> bytes:
        url = f"{self.base()}/v2/{self.ref.repository}/blobs/{desc.digest}"
        body, _ = self._read_small(url, {"Accept-Encoding": "identity"}, f"{what} {desc.digest}")
        if sha256_digest(body) != desc.digest or (desc.size >= 0 and len(body) != desc.size):
            raise ImageError(
                f'image "{self.label}": {what} {desc.digest} does not match its digest'
            )
        return body

    # -- ImageSource ---------------------------------------------------------------------------

    def resolve(self) -> ResolvedImage:
        body, content_type, digest = self.get_manifest(self.ref.reference)
        doc = parse_manifest(body, content_type)
        for _ in range(4):
            if isinstance(doc, ImageManifestDoc):
                break
            assert isinstance(doc, ImageIndex)
            chosen = choose_platform(doc, self.platform)
            body, content_type, digest = self.get_manifest(chosen.digest)
            doc = parse_manifest(body, content_type or chosen.media_type)
        else:
            raise ManifestError(f'image "{self.label}": indexes nested too deep')
        if doc.config is not None:
            config_bytes = self.read_blob(doc.config, "config")
            config_digest = doc.config.digest
        else:  # schema 1: the top history entry holds the config
            top = doc.schema1_config or {}
            config_bytes = jsonio.dumps(
                {k: top[k] for k in ("architecture", "os", "config") if k in top}
            ).encode()
            config_digest = ""
        origin = ImageOrigin(
            appc_name(f"{self.ref.registry}/{self.ref.repository}"),
            self.ref.tag or "latest",
            self.ref.registry,
            self.ref.repository,
            digest,
            config_digest,
        )
        return ResolvedImage(doc, body, digest, parse_config(config_bytes), config_bytes, origin)

    @contextlib.contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        url = f"{self.base()}/v2/{self.ref.repository}/blobs/{desc.digest}"
        stream = BlobStream(self, url)
        try:
            yield stream  # type: ignore[misc]
        finally:
            stream.close()


class BlobStream:
    """A blob's bytes as a file; a cut connection is resumed where it broke (Range)."""

    def __init__(self, source: RegistrySource, url: str) -> None:
        import httpx

        self._transport_errors = (httpx.TransportError, TransientFetchError)
        self.source = source
        self.url = url
        self.received = 0  # bytes got from the registry: where a resume starts
        self.resumes = 0
        self._stack = contextlib.ExitStack()
        self._buf = b""
        self._iter: Iterator[bytes] = iter(())
        self._open()

    def _open(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        headers = {"Accept-Encoding": "identity"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
        response = self._stack.enter_context(self.source._get(self.url, headers))
        code = response.status_code
        if self.received and code != 206:
            raise FetchError(
                f'cannot fetch "{self.url}": download cut at byte {self.received} and the '
                f"registry does not resume (HTTP {code})"
            )
        if code == 404:
            raise NotFoundError(f'image "{self.source.label}": blob not found ({self.url})')
        if not self.received and code != 200:
            raise FetchError(f'cannot fetch "{self.url}": HTTP {code}')
        self._iter = response.iter_raw(CHUNK)

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        while True:
            try:
                chunk = next(self._iter, b"")
                self.received += len(chunk)
                return chunk
            except self._transport_errors as exc:
                if self.resumes >= MAX_RESUMES:
                    raise FetchError(
                        f'cannot fetch "{self.url}": download cut {self.resumes + 1} times '
                        f"(last at byte {self.received})"
                    ) from exc
                self.resumes += 1
                self._open()

    def read(self, size: int | None = -1) -> bytes:
        if not self._buf:
            self._buf = self._next()
        if size is None or size < 0 or size >= len(self._buf):
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def close(self) -> None:
        self._stack.close()
