"""The one HTTP client of rkt's fetchers: TLS policy, redirects, retries, caching headers, errors.

Owns every request rkt makes for images, signatures, keys and discovery pages. httpx is imported
on first use (never at import time: ``rkt --help`` must stay fast, platform-notes §10), and one
``httpx.Client`` serves the whole ``HttpClient`` (building the SSL context is the costly part,
platform-notes §8). Every failure leaves as ``rkt.errors.FetchError`` naming the URL and the cause.

Policy (reference §2.3, §2.8):
- TLS is verified unless ``--insecure-options=tls``; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` pick the CA.
- plain ``http://`` (also as a redirect target) is refused unless ``--insecure-options=http``.
- redirects are followed by hand (at most 10) so every hop gets the scheme check and the auth
  headers of its own host (``auth_headers``, fed from rkt's ``auth.d``).
- ``resolve`` connects chosen ``host[:port]`` to another address, keeping the Host header and the
  TLS server name, like ``curl --resolve``; ``RKT_RESOLVE`` sets it (a testing/debugging aid).

Imports ``rkt.errors``, ``rkt.settings``, ``rkt.fetch.progress`` and, lazily, httpx.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from rkt import __version__
from rkt.errors import FetchError, UsageError
from rkt.fetch.progress import NullProgress, Progress
from rkt.settings import InsecureOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Literal

MiB = 1024 * 1024
MAX_REDIRECTS = 10
CHUNK_SIZE = 64 * 1024
RESOLVE_ENV = "RKT_RESOLVE"
USER_AGENT = f"rkt/{__version__}"

AuthHeaders = Callable[[str], Mapping[str, str]]
_T = TypeVar("_T")


class HttpStatusError(FetchError):
    """The server answered with a non-success status; ``status_code`` says which."""

    def __init__(self, message: str, *, url: str, status_code: int, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.url = url
        self.status_code = status_code


class _TransientError(FetchError):
    """A failure worth one clean retry: dropped connection, truncated body."""


TransientFetchError = _TransientError  # for protocol clients using ``HttpClient.stream``


@dataclass(frozen=True)
class DownloadResult:
    """What ``HttpClient.download`` got: the body went to ``dest`` unless ``not-modified``."""

    status: Literal["ok", "not-modified"]
    etag: str | None
    max_age: int
    final_url: str
    size: int


def parse_max_age(cache_control: str | None) -> int:
    """Seconds a response may be reused (rkt's cachemaxage): 0 if absent, no-cache or no-store."""
    max_age = 0
    for directive in (cache_control or "").split(","):
        key, _, value = directive.strip().partition("=")
        key = key.strip().lower()
        if key in ("no-cache", "no-store"):
            return 0
        if key == "max-age":
            try:
                max_age = max(0, int(value.strip().strip('"')))
            except ValueError:
                max_age = 0
    return max_age


def _split_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port or None)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port_text = text.partition(":")
    if not host or (port_text and not port_text.isdigit()) or ":" in port_text:
        raise ValueError(text)
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(text)
    return host.lower(), port


def parse_resolve(spec: str) -> dict[str, str]:
    """Parse ``RKT_RESOLVE`` ("example.com:443=127.0.0.1:8443,b.org=10.0.0.2") into a map."""
    result: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        source, equals, target = item.partition("=")
        try:
            if not equals:
                raise ValueError(item)
            _split_host_port(source.strip())
            _split_host_port(target.strip())
        except ValueError:
            raise UsageError(
                f'{RESOLVE_ENV}: "{item}" is not of the form host[:port]=address[:port]'
            ) from None
        result[source.strip()] = target.strip()
    return result


def resolve_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``RKT_RESOLVE`` overrides of the given (default: this process's) environment."""
    env = os.environ if environ is None else environ
    return parse_resolve(env.get(RESOLVE_ENV, ""))


class _ResolvingTransport:
    """An httpx transport that connects overridden hosts elsewhere, like ``curl --resolve``.

    The request keeps its URL (so Host header, redirects and error messages show the real name);
    only the connection target changes, and the TLS server name (SNI and certificate check)
    stays the original host via httpcore's ``sni_hostname`` extension. Each overridden host gets
    its own connection pool, because pools are keyed by the connection target alone.
    """

    def __init__(self, httpx: Any, ssl_context: ssl.SSLContext, resolve: Mapping[str, str]):
        self._httpx = httpx
        self._ssl_context = ssl_context
        self._overrides = {
            _split_host_port(src): _split_host_port(dst) for src, dst in resolve.items()
        }
        self._default = httpx.HTTPTransport(verify=ssl_context)
        self._pools: dict[tuple[str, int], Any] = {}

    def handle_request(self, request: Any) -> Any:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        target = self._overrides.get((url.host, port)) or self._overrides.get((url.host, None))
        if target is None:
            return self._default.handle_request(request)
        address, target_port = target
        pool = self._pools.get((url.host, port))
        if pool is None:
            pool = self._pools[(url.host, port)] = self._httpx.HTTPTransport(
                verify=self._ssl_context
            )
        rewritten = self._httpx.Request(
            request.method,
            url.copy_with(host=address, port=target_port or port),
            headers=request.headers,  # carries Host: <original name>
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": url.host},
        )
        return pool.handle_request(rewritten)

    def close(self) -> None:
        for transport in (self._default, *self._pools.values()):
            transport.close()

    def __enter__(self) -> _ResolvingTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe_transport_error(exc: BaseException, httpx: Any) -> tuple[str, bool]:
    """One lower-case phrase for a transport failure, and whether a retry could help."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed ({cause.verify_message})", False
        if isinstance(cause, ssl.SSLError):
            return f"tls handshake failed ({cause.reason or cause})", False
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused", True
        if isinstance(cause, socket.gaierror):
            return "cannot resolve host name", False
    if isinstance(exc, httpx.TimeoutException):
        return "timed out", False
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "unsupported URL scheme", False
    if isinstance(exc, httpx.RemoteProtocolError):
        text = _first_line(exc)
        if "complete message body" in text:  # h11: fewer bytes than Content-Length
            return f"truncated download ({text})", True
        return f"connection broken ({text})", True
    return _first_line(exc), isinstance(exc, httpx.NetworkError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class HttpClient:
    """HTTP(S) GETs for fetchers; create one per command, close it (or use ``with``).

    ``auth_headers`` maps a host (``host`` or ``host:port`` as in the URL) to extra headers for
    every request to it, redirects included. ``resolve`` maps ``host[:port]`` to
    ``address[:port]``; None reads ``RKT_RESOLVE``, ``{}`` turns overrides off.
    """

    def __init__(
        self,
        insecure: InsecureOptions | None = None,
        *,
        timeout: float = 60.0,
        auth_headers: AuthHeaders | None = None,
        resolve: Mapping[str, str] | None = None,
    ) -> None:
        self.insecure = insecure or InsecureOptions()
        self.timeout = timeout
        self._auth_headers = auth_headers
        # None: take RKT_RESOLVE from the environment, the way SSL_CERT_FILE is honoured.
        self._resolve = resolve_from_env() if resolve is None else dict(resolve)
        for key, value in self._resolve.items():
            try:
                _split_host_port(key)
                _split_host_port(value)
            except ValueError:
                raise UsageError(f'resolve override "{key}={value}" is invalid') from None
        self._httpx: Any = None
        self._client: Any = None

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def get_bytes(self, url: str, *, max_size: int = 16 * MiB) -> bytes:
        """The whole body of a small resource (signature, key, page); at most ``max_size``."""
        return self._retry_once(lambda: self._get_once(url, max_size))[0]

    def get_text(self, url: str, *, max_size: int = 16 * MiB) -> str:
        """Like ``get_bytes``, decoded with the response charset (default utf-8)."""
        body, charset = self._retry_once(lambda: self._get_once(url, max_size))
        try:
            return body.decode(charset or "utf-8", errors="replace")
        except LookupError:
            return body.decode("utf-8", errors="replace")

    def download(
        self,
        url: str,
        dest: BinaryIO,
        *,
        progress: Progress | None = None,
        etag: str | None = None,
    ) -> DownloadResult:
        """Stream ``url`` into the seekable ``dest`` (emptied first, also before the one retry).

        With ``etag``, sends If-None-Match; a 304 gives status ``not-modified`` and leaves
        ``dest`` empty. The body is written as sent (no content decoding), so its size matches
        Content-Length; a short body is retried once and then raises FetchError.
        """
        report = progress or NullProgress()

        def attempt() -> DownloadResult:
            dest.seek(0)
            dest.truncate(0)
            return self._download_once(url, dest, report, etag)

        try:
            return self._retry_once(attempt)
        finally:
            report.finish()

    def exists(self, url: str) -> bool:
        """HEAD ``url``: True on 2xx, False on 404/410, FetchError otherwise."""
        with self._translate(url):
            response, final_url = self._open(url, method="HEAD")
            response.close()
            if response.status_code in (404, 410):
                return False
            self._check_status(response, url, final_url)
            return True

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        origin_headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> Iterator[Any]:
        """An open streamed httpx response of any status, for protocol clients (the registry's).

        Redirects, the scheme policy and ``auth_headers`` apply as for ``download``;
        ``origin_headers`` (credentials) go only to hops on the origin of ``url``, never to a
        redirect target elsewhere. Failures to connect become FetchError naming ``url``.
        """
        with self._translate(url):
            response, _ = self._open(
                url, method=method, headers=headers, origin_headers=origin_headers
            )
            try:
                yield response
            finally:
                response.close()

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _retry_once(operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except _TransientError:
            return operation()

    def _http(self) -> Any:
        if self._client is None:
            import httpx  # lazy: 160 ms of CPU, only commands that fetch pay it

            self._httpx = httpx
            ssl_context = httpx.create_ssl_context(verify=not self.insecure.tls, trust_env=True)
            transport: Any = (
                _ResolvingTransport(httpx, ssl_context, self._resolve) if self._resolve else None
            )
            self._client = httpx.Client(
                verify=ssl_context,
                transport=transport,
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                trust_env=True,
            )
        return self._client

    def _open(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        origin_headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, str]:
        """Send and follow redirects by hand; returns the open streamed response and final URL."""
        client = self._http()
        current = url
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            self._check_scheme(url, current)
            request_headers = {**(headers or {}), **self._headers_for(current)}
            if origin_headers and _origin(current) == origin:
                request_headers.update(origin_headers)
            request = client.build_request(method, current, headers=request_headers)
            response = client.send(request, stream=True)
            if not response.has_redirect_location:
                return response, current
            response.close()
            current = str(response.url.join(response.headers["Location"]))
        raise FetchError(f'cannot fetch "{url}": more than {MAX_REDIRECTS} redirects')

    def _check_scheme(self, url: str, current: str) -> None:
        if urlsplit(current).scheme.lower() == "http" and not self.insecure.http:
            via = "" if current == url else f' (redirected to "{current}")'
            raise FetchError(
                f'cannot fetch "{url}"{via}: plain http is disabled; use --insecure-options=http'
            )

    def _headers_for(self, url: str) -> Mapping[str, str]:
        if self._auth_headers is None:
            return {}
        parts = urlsplit(url)
        host = parts.hostname or ""
        return self._auth_headers(f"{host}:{parts.port}" if parts.port else host)

    def _check_status(self, response: Any, url: str, final_url: str) -> None:
        code = int(response.status_code)
        if 200 <= code < 300:
            return
        via = "" if final_url == url else f' (redirected to "{final_url}")'
        hint = "the server wants credentials: configure them in auth.d" if code == 401 else None
        raise HttpStatusError(
            f'cannot fetch "{url}"{via}: HTTP {code} {response.reason_phrase}'.rstrip(),
            url=url,
            status_code=code,
            hint=hint,
        )

    @contextmanager
    def _translate(self, url: str) -> Iterator[None]:
        """Turn httpx exceptions into FetchError naming ``url`` (transient ones are retried)."""
        try:
            yield
        except FetchError:
            raise
        except Exception as exc:
            httpx = self._httpx
            if httpx is None or not isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
                raise
            if isinstance(exc, httpx.InvalidURL):
                raise FetchError(f'cannot fetch "{url}": invalid URL ({exc})') from exc
            cause, retryable = _describe_transport_error(exc, httpx)
            hint = None
            if cause.startswith("certificate verify failed"):
                hint = "set SSL_CERT_FILE to the right CA, or use --insecure-options=tls"
            error = _TransientError if retryable else FetchError
            raise error(f'cannot fetch "{url}": {cause}', hint=hint) from exc

    def _get_once(self, url: str, max_size: int) -> tuple[bytes, str | None]:
        with self._translate(url):
            response, final_url = self._open(url)
            try:
                self._check_status(response, url, final_url)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    size += len(chunk)
                    if size > max_size:
                        raise FetchError(f'cannot fetch "{url}": larger than {max_size} bytes')
                    chunks.append(chunk)
                return b"".join(chunks), response.charset_encoding
            finally:
                response.close()

    def _download_once(
        self, url: str, dest: BinaryIO, progress: Progress, etag: str | None
    ) -> DownloadResult:
        # identity: the bytes on disk are what the server sent, and Content-Length counts them.
        headers = {"Accept-Encoding": "identity"}
        if etag is not None:
            headers["If-None-Match"] = etag
        with self._translate(url):
            response, final_url = self._open(url, headers=headers)
            try:
                new_etag = response.headers.get("ETag")
                max_age = parse_max_age(response.headers.get("Cache-Control"))
                if response.status_code == 304 and etag is not None:
                    return DownloadResult("not-modified", new_etag or etag, max_age, final_url, 0)
                self._check_status(response, url, final_url)
                total = _content_length(response)
                progress.start(url, total)
                size = 0
                for chunk in response.iter_raw(CHUNK_SIZE):
                    dest.write(chunk)
                    size += len(chunk)
                    progress.advance(len(chunk))
                if total is not None and size != total:
                    raise _TransientError(
                        f'cannot fetch "{url}": truncated download ({size} of {total} bytes)'
                    )
                dest.flush()
                return DownloadResult("ok", new_etag, max_age, final_url, size)
            finally:
                response.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _content_length(response: Any) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
