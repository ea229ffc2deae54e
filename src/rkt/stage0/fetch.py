"""Fetching images into the store: find, download, verify, import, render.

The flow for every source (rkt's Documentation/image-fetching-behavior.md):

1. resolve the argument (``rkt.fetch.reference``) and apply the pull policy against the store;
2. bring the image file into ``cas/tmp`` (a local file is read in place);
3. verify its detached signature against the keys trusted for the image's name, unless
   ``--insecure-options=image`` (a warning says so);
4. import it in one pass (hash, validate the layout and manifest, extract the rootfs) and commit the
   blob, then the tree, then the index row;
5. for an image with appc dependencies, fetch them first and render the tree from the chain.

Never prints: warnings go to the ``warn`` callback, progress to a ``Progress``.
"""

from __future__ import annotations

import os
import time

from rkt.errors import (
    ArchiveError,
    FetchError,
    ImageError,
    ManifestError,
    NotFoundError,
    SignatureError,
    UsageError,
    naming,
)
from rkt.fetch.progress import NullProgress, Progress
from rkt.fetch.reference import (
    ImageIdRef,
    NameRef,
    PathRef,
    UrlRef,
    parse_image_reference,
)
from rkt.paths import Path
from rkt.records import NamedTuple
from rkt.settings import GlobalOptions
from rkt.stage0.privileges import RKT_ADMIN_GROUP, require_group
from rkt.store.records import RemoteRecord
from rkt.store.store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from rkt.config import Config
    from rkt.fetch.http import HttpClient
    from rkt.schema.image import ImageManifest

PULL_POLICIES = ("new", "update", "never")


class FetchRequest(NamedTuple):
    image: str
    signature: Path | None = None
    pull_policy: str = "update"


# A superset of what rkt.stage0.oci_import.is_oci_reference accepts (its transports' prefixes).
_OCI_PREFIXES = ("docker://", "oci:", "oci-archive:", "docker-archive:")


class Fetcher:
    """Fetches images for one rkt command; holds one HTTP client and one keystore."""

    def __init__(
        self,
        opts: GlobalOptions,
        store: Store,
        *,
        progress: Callable[[], Progress] = NullProgress,
        warn: Callable[[str], None] = lambda _msg: None,
        ask: Callable[[str], bool] | None = None,
    ) -> None:
        self.opts = opts
        self.store = store
        self.make_progress = progress
        self.warn = warn
        self.ask = ask
        self._client: HttpClient | None = None
        self._warned_insecure = False
        # what the fetches were (rkt.stage0.runmemo): how many, and the names found in the store
        self.fetched = 0
        self.store_hits: list[str] = []

    # entry point ------------------------------------------------------------------------------

    def fetch(self, request: FetchRequest) -> str:
        """Bring one image into the store; return its image ID."""
        self.fetched += 1
        if request.pull_policy not in PULL_POLICIES:
            raise UsageError(
                f'--pull-policy: "{request.pull_policy}" is not one of new, update, never'
            )
        # Only a reference that can be one imports the OCI machinery (~15 ms): not a store image.
        if request.image.startswith(_OCI_PREFIXES):
            _work_ahead()
            from rkt.stage0.oci_import import fetch_oci_image, is_oci_reference

            if is_oci_reference(request.image):  # docker://, oci:, oci-archive:, docker-archive:
                return fetch_oci_image(self, request.image, request.pull_policy)
        ref = parse_image_reference(request.image)
        if isinstance(ref, ImageIdRef):
            return self.store.resolve_id(ref.prefix).id
        if isinstance(ref, PathRef):
            if request.pull_policy == "never":
                raise NotFoundError(
                    f'image "{request.image}": --pull-policy=never forbids importing files'
                )
            return self._fetch_file(ref.path, request.signature, source=str(ref.path))
        if isinstance(ref, UrlRef):
            return self._fetch_url(ref.url, request)
        if isinstance(ref, NameRef):
            return self._fetch_name(ref, request)
        raise UsageError(f'image "{request.image}": unrecognised image reference')

    # sources ----------------------------------------------------------------------------------

    def _fetch_file(
        self, path: Path, signature: Path | None, *, source: str, expect: NameRef | None = None
    ) -> str:
        if not path.is_file():
            if path.is_dir():
                raise ImageError(f'image "{path}": a directory, not an image file')
            if path.exists():
                raise ImageError(f'image "{path}": not a regular file')
            raise NotFoundError(f'image "{path}": no such file')
        _work_ahead()
        sig_bytes = None
        if not self.opts.insecure.image:
            sig_bytes = _read_signature(signature or Path(f"{path}.asc"))
        return self._import(
            path,
            sig_bytes,
            source=source,
            expect=expect,
            missing_sig=str(signature or f"{path}.asc"),
        )

    def _fetch_url(self, url: str, request: FetchRequest) -> str:
        cached = self.store.get_remote(url)
        if cached is not None and self.store.get(cached.image_id) is not None:
            fresh = cached.max_age > 0 and time.time() < cached.download_time + cached.max_age
            if request.pull_policy in ("new", "never") or fresh:
                return cached.image_id
        elif request.pull_policy == "never":
            raise NotFoundError(f'image "{url}": not in the store and --pull-policy=never')
        sig_url = None if request.signature else f"{url}.asc"
        return self._download_and_import(url, sig_url, request.signature, cached=cached)

    def _fetch_name(self, ref: NameRef, request: FetchRequest) -> str:
        labels = dict(ref.labels)
        if request.pull_policy in ("new", "never"):
            found = self.store.find_by_name(ref.name, labels)
            if found:
                self.store_hits.append(ref.name)
                return found[0].id
            if request.pull_policy == "never":
                raise NotFoundError(
                    f'image "{request.image}": not in the store and --pull-policy=never'
                )
        from rkt.fetch.discovery import discover_image

        defaults = dict(ref.with_defaults().labels)
        endpoints = discover_image(
            ref.name, defaults, self.client, insecure_http=self.opts.insecure.http
        )
        if not endpoints:
            raise NotFoundError(f'image "{request.image}": discovery found no endpoints')
        self._maybe_trust_discovered_keys(ref.name)
        errors: list[str] = []
        for endpoint in endpoints:
            try:
                sig_url = None if request.signature else endpoint.asc_url
                return self._download_and_import(
                    endpoint.aci_url,
                    sig_url,
                    request.signature,
                    expect=ref,
                    cached=self.store.get_remote(endpoint.aci_url),
                )
            except FetchError as exc:
                errors.append(str(exc))
        raise FetchError(f'image "{request.image}": every endpoint failed: ' + "; ".join(errors))

    def _maybe_trust_discovered_keys(self, name: str) -> None:
        """With --trust-keys-from-https, trust keys that discovery names for a new prefix."""
        if self.opts.insecure.image:
            return
        from rkt.trust.keystore import Keystore

        keystore = Keystore(self.opts.local_config, self.opts.system_config)
        if keystore.certs_for_name(name) or not self.opts.trust_keys_from_https:
            return
        # Adding keys changes trust: the same privilege as `rkt trust`, checked before any request.
        require_group("--trust-keys-from-https", RKT_ADMIN_GROUP)
        from rkt.fetch.discovery import discover_pubkeys

        for url in discover_pubkeys(name, self.client):
            if not url.startswith("https://") and not self.opts.insecure.pubkey:
                continue
            key = self.client.get_bytes(url)
            added = keystore.add_prefix_key(name, key)
            self.warn(f'trusting key {added.fingerprint} for prefix "{name}" from {url}')

    def _download_and_import(
        self,
        url: str,
        sig_url: str | None,
        signature: Path | None,
        *,
        expect: NameRef | None = None,
        cached: RemoteRecord | None,
    ) -> str:
        _work_ahead()
        with self.store.tempdir("fetch") as tmp:
            blob = tmp.path / "image.aci"
            with open(blob, "wb") as out:
                result = self.client.download(
                    url,
                    out,
                    progress=self.make_progress(),
                    etag=cached.etag
                    if cached is not None and self.store.get(cached.image_id)
                    else None,
                )
            if result.status == "not-modified" and cached is not None:
                self.store.put_remote(
                    RemoteRecord(
                        url,
                        cached.sig_url,
                        cached.etag,
                        cached.image_id,
                        result.max_age,
                        time.time(),
                    )
                )
                return cached.image_id
            sig_bytes = None
            if not self.opts.insecure.image:
                if signature is not None:
                    sig_bytes = _read_signature(signature)
                elif sig_url is not None:
                    try:
                        sig_bytes = self.client.get_bytes(sig_url)
                    except FetchError:
                        sig_bytes = None
            image_id = self._import(
                blob, sig_bytes, source=url, expect=expect, missing_sig=sig_url or str(signature)
            )
            self.store.put_remote(
                RemoteRecord(url, sig_url, result.etag, image_id, result.max_age, time.time())
            )
            return image_id

    # verification and import ------------------------------------------------------------------

    def _import(
        self,
        path: Path,
        sig_bytes: bytes | None,
        *,
        source: str,
        expect: NameRef | None,
        missing_sig: str,
    ) -> str:
        # Until its manifest is read the image has no trusted name: what is found wrong in the
        # file names it by where it came from.
        with naming(f'image "{source}"', ArchiveError, ManifestError):
            manifest = _peek_manifest(path)
            if expect is not None:
                _check_discovered(manifest, expect)
            if self.opts.insecure.image:
                if not self._warned_insecure:
                    self.warn("signature verification has been disabled (--insecure-options=image)")
                    self._warned_insecure = True
            else:
                if sig_bytes is None:
                    raise SignatureError(
                        f'image "{manifest.name}": no signature found at {missing_sig}',
                        hint="use --signature, or --insecure-options=image to skip verification",
                    )
                from rkt.trust.keystore import Keystore
                from rkt.trust.verify import verify_detached

                keystore = Keystore(self.opts.local_config, self.opts.system_config)
                verify_detached(path, sig_bytes, name=manifest.name, keystore=keystore)
            from rkt.stage0.importer import import_image_file  # not needed for a stored image

            return import_image_file(
                self.store,
                path,
                source=source,
                render=os.geteuid() == 0,
                progress=self.make_progress(),
                resolve_dependency=self.resolve_dependency,
            )

    def resolve_dependency(self, name: str, labels: dict[str, str], image_id: str | None) -> str:
        """Find (or fetch by discovery) one appc dependency; its ID must match when given."""
        if image_id is not None and self.store.get(image_id) is not None:
            return image_id
        found = self.store.find_by_name(name, labels)
        if not found:
            text = name + "".join(f",{k}={v}" for k, v in sorted(labels.items()))
            fetched = self.fetch(FetchRequest(text, pull_policy="new"))
            found = [rec for rec in [self.store.get(fetched)] if rec is not None]
        if image_id is not None and all(rec.id != image_id for rec in found):
            raise ImageError(f'dependency "{name}": no image with the required ID {image_id[:19]}…')
        return image_id or found[0].id

    def warn_insecure_once(self) -> None:
        if not self._warned_insecure:
            self.warn("signature verification has been disabled (--insecure-options=image)")
            self._warned_insecure = True

    def config(self) -> Config:
        """rkt's merged configuration (``dockerAuth`` credentials for registries)."""
        from rkt.config import load_config

        return load_config(self.opts.system_config, self.opts.local_config, self.opts.user_config)

    @property
    def client(self) -> HttpClient:
        if self._client is None:
            from rkt.fetch.http import HttpClient

            self._client = HttpClient(self.opts.insecure)
        return self._client


def _work_ahead() -> None:
    """A download or an import follows, which may run long: the cyclic garbage collector, off
    while a command starts (rkt.cli.main), is turned back on."""
    import gc

    gc.enable()


def _read_signature(path: Path) -> bytes | None:
    """A local detached signature file; None if there is none (the caller refuses then)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SignatureError(f'signature "{path}": {exc.strerror or exc}') from exc


def _peek_manifest(path: Path) -> ImageManifest:
    """Read and validate the manifest before trusting anything else in the file."""
    from rkt.formats.aci import read_aci_manifest
    from rkt.schema.image import ImageManifest

    with _open(path) as raw:
        data = read_aci_manifest(raw)
    return ImageManifest.from_json(data)


def _check_discovered(manifest: ImageManifest, expect: NameRef) -> None:
    """appc discovery.md: the fetched image must be what was asked for."""
    if manifest.name != expect.name:
        raise ImageError(f'image "{expect.name}": the fetched image is called "{manifest.name}"')
    for key, value in expect.labels:
        have = manifest.label(key)
        if have is not None and have != value:
            raise ImageError(
                f'image "{expect.name}": label {key}={have} does not match the requested {value}'
            )


class _open:
    """The image file, read; an ``OSError`` opening or reading it is an ``ImageError``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> BinaryIO:
        try:
            self.file = open(self.path, "rb")
        except OSError as exc:
            raise ImageError(f'image "{self.path}": {exc.strerror}') from exc
        return self.file

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self.file.close()
        if isinstance(exc, OSError):
            raise ImageError(f'image "{self.path}": {exc.strerror}') from exc
