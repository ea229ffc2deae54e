"""Registry authentication: the ``WWW-Authenticate`` challenge, bearer tokens and basic credentials.

The Docker Registry token flow (distribution docs "Token Authentication Specification";
platform-notes §8):

1. a request answers 401 with ``WWW-Authenticate: Bearer realm="…",service="…",scope="…"`` or
   ``Basic realm="…"``;
2. for Bearer, GET ``realm?service=…&scope=…`` with the user's basic credentials (rkt's
   ``dockerAuth`` config kind) or anonymously; the JSON reply holds ``token`` or
   ``access_token`` and ``expires_in`` (60 s when absent);
3. retry with ``Authorization: Bearer <token>``; tokens are cached per (realm, service, scope)
   until they expire. For Basic, retry with the configured credentials.

Imports ``rkt.errors``, ``rkt.config`` and ``rkt.fetch.http`` (for the token request).
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from rkt import jsonio
from rkt.errors import FetchError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.config import Credentials
    from rkt.fetch.http import HttpClient

DEFAULT_TOKEN_TTL = 60
_PARAM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic", lower-case
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` value (registries send one)."""
    text = header.strip()
    scheme, _, rest = text.partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            break
        value = match.group(2) if match.group(2) is not None else match.group(3) or ""
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = match.end()
    return Challenge(scheme.lower(), params)


def basic_header(cred: Credentials) -> str:
    raw = f"{cred.user}:{cred.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class RegistryAuth:
    """Answers challenges for one registry; holds its tokens."""

    def __init__(self, registry: str, credentials: Mapping[str, Credentials]) -> None:
        self.registry = registry
        self.credentials = _credentials_for(registry, credentials)
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.header: str | None = None

    def authorize(self, http: HttpClient, header: str, scope: str, url: str) -> str:
        """The Authorization header answering the challenge ``header`` for ``url``."""
        challenge = parse_challenge(header)
        if challenge is None:
            raise FetchError(f'cannot fetch "{url}": HTTP 401 without a usable challenge')
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise FetchError(
                    f'cannot fetch "{url}": the registry {self.registry} wants credentials',
                    hint="configure them in a dockerAuth config file (auth.d)",
                )
            self.header = basic_header(self.credentials)
            return self.header
        if challenge.scheme != "bearer":
            raise FetchError(f'cannot fetch "{url}": unsupported auth scheme "{challenge.scheme}"')
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        scope = challenge.params.get("scope", scope)
        key = (realm, service, scope)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            self.header = "Bearer " + cached[0]
            return self.header
        token, ttl = self._fetch_token(http, realm, service, scope, url)
        self._tokens[key] = (token, time.monotonic() + max(ttl - 5, 1))
        self.header = "Bearer " + token
        return self.header

    def _fetch_token(
        self, http: HttpClient, realm: str, service: str, scope: str, url: str
    ) -> tuple[str, int]:
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise FetchError(f'cannot fetch "{url}": bad token realm "{realm}"')
        query = urlencode([(k, v) for k, v in (("service", service), ("scope", scope)) if v])
        token_url = realm + ("&" if "?" in realm else "?") + query if query else realm
        headers = {}
        if self.credentials is not None:
            headers["Authorization"] = basic_header(self.credentials)
        with http.stream(token_url, origin_headers=headers) as response:
            body = response.read()
            if response.status_code in (401, 403):
                raise FetchError(
                    f'cannot fetch "{url}": the token service refused '
                    + ("the configured credentials" if self.credentials else "anonymous access"),
                    hint="configure credentials in a dockerAuth config file (auth.d)",
                )
            if response.status_code != 200:
                raise FetchError(
                    f'cannot fetch "{url}": token service answered HTTP {response.status_code}'
                )
        try:
            doc = jsonio.loads(body)
            token = doc.get("token") or doc.get("access_token")
            ttl = int(doc.get("expires_in") or DEFAULT_TOKEN_TTL)
        except (ValueError, AttributeError, TypeError) as exc:
            raise FetchError(f'cannot fetch "{url}": token service reply is not JSON') from exc
        if not isinstance(token, str) or not token:
            raise FetchError(f'cannot fetch "{url}": token service gave no token')
        return token, ttl


def _credentials_for(registry: str, creds: Mapping[str, Credentials]) -> Credentials | None:
    """dockerAuth ``registries`` entries name a host or host:port (docker.io aliases too)."""
    host = registry.split(":")[0]
    aliases = [registry, host]
    if registry in ("registry-1.docker.io", "index.docker.io"):
        aliases += ["docker.io", "index.docker.io", "registry-1.docker.io"]
    for name in aliases:
        found = creds.get(name)
        if found is not None and found.kind == "basic":
            return found
    return None
