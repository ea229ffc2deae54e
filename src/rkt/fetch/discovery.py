"""appc meta discovery: from an image name and labels to ACI/signature URLs and key URLs.

Follows appc discovery.md (reference §2.2): GET ``https://{name}?ac-discovery=1`` (then plain
http only when the user allowed it), read ``<meta name="ac-discovery" content="PREFIX TEMPLATE">``
and ``ac-discovery-pubkeys`` tags, keep those whose prefix matches the name on whole path
components, and render ``{name} {version} {os} {arch} {ext}`` (plus any other label). A template
whose placeholders cannot all be filled is skipped. On a 4xx/5xx or a page without a usable tag
the parent path is tried (``a.com/x/y`` → ``a.com/x`` → ``a.com``); a transport failure (refused,
TLS) stops the walk, since every parent lives on the same host.

Validating the fetched manifest against the request is the fetcher's job, not this module's.
Imports ``rkt.errors``, ``rkt.fetch.http`` (for the client type and its errors) and the stdlib.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TypeVar
from urllib.parse import urlsplit

from rkt.errors import FetchError, NotFoundError, UsageError
from rkt.fetch.http import HttpClient, HttpStatusError
from rkt.fetch.reference import is_ac_identifier

DISCOVERY_TAG = "ac-discovery"
PUBKEYS_TAG = "ac-discovery-pubkeys"
MAX_PAGE_SIZE = 1024 * 1024
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Endpoint:
    """Where an image and its detached signature live."""

    aci_url: str
    asc_url: str


@dataclass(frozen=True)
class DiscoveryTag:
    """One ``<meta>`` tag: kind is ``ac-discovery`` or ``ac-discovery-pubkeys``."""

    kind: str
    prefix: str
    value: str


class _MetaParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[DiscoveryTag] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        values = {key.lower(): value or "" for key, value in attrs}
        kind = values.get("name", "").strip().lower()
        fields = values.get("content", "").split()
        # The spec's content is exactly "prefix-match url"; anything else is not a tag of ours.
        if kind in (DISCOVERY_TAG, PUBKEYS_TAG) and len(fields) == 2:
            self.tags.append(DiscoveryTag(kind, fields[0].rstrip("/"), fields[1]))


def parse_discovery_tags(html: str) -> list[DiscoveryTag]:
    """Every ac-discovery and ac-discovery-pubkeys meta tag of a page, in document order."""
    parser = _MetaParser()
    parser.feed(html)
    parser.close()
    return parser.tags


def prefix_matches(prefix: str, name: str) -> bool:
    """Whole path components: ``a.com/x`` matches ``a.com/x`` and ``a.com/x/y``, not a.com/xy"""
    return name == prefix or name.startswith(prefix + "/")


def render_template(template: str, variables: Mapping[str, str]) -> str | None:
    """Fill ``{var}`` placeholders in one pass; None if any placeholder has no value."""
    if any(var not in variables for var in _PLACEHOLDER.findall(template)):
        return None
    return _PLACEHOLDER.sub(lambda match: variables[match.group(1)], template)


def discover_image(
    name: str,
    labels: Mapping[str, str],
    client: HttpClient,
    *,
    insecure_http: bool = False,
) -> list[Endpoint]:
    """ACI/signature URL pairs for ``name`` with ``labels`` (pass them with defaults applied)."""
    _check_name(name, "image")
    variables = {**labels, "name": name}

    def select(tags: list[DiscoveryTag]) -> tuple[list[Endpoint], str]:
        return _select_endpoints(tags, name, variables)

    return _walk(name, client, insecure_http, select, what=f'image "{name}"')


def discover_pubkeys(prefix: str, client: HttpClient, *, insecure_http: bool = False) -> list[str]:
    """Key URLs offered for ``prefix`` (tags for it or for a parent of it)."""
    _check_name(prefix, "prefix")

    def select(tags: list[DiscoveryTag]) -> tuple[list[str], str]:
        urls = [t.value for t in tags if t.kind == PUBKEYS_TAG and prefix_matches(t.prefix, prefix)]
        return list(dict.fromkeys(urls)), f"no {PUBKEYS_TAG} tag for this prefix"

    return _walk(prefix, client, insecure_http, select, what=f'prefix "{prefix}"')


def _check_name(name: str, kind: str) -> None:
    if not is_ac_identifier(name):
        raise UsageError(f'{kind} "{name}": not a valid appc name for discovery')


def _select_endpoints(
    tags: list[DiscoveryTag], name: str, variables: Mapping[str, str]
) -> tuple[list[Endpoint], str]:
    templates = [
        t.value for t in tags if t.kind == DISCOVERY_TAG and prefix_matches(t.prefix, name)
    ]
    if not templates:
        return [], f"no {DISCOVERY_TAG} tag for this name"
    endpoints: list[Endpoint] = []
    missing: set[str] = set()
    for template in templates:
        if "{ext}" not in template:  # spec: templates must contain {ext}
            continue
        aci_url = render_template(template, {**variables, "ext": "aci"})
        asc_url = render_template(template, {**variables, "ext": "aci.asc"})
        if aci_url is None or asc_url is None:
            missing.update(
                v for v in _PLACEHOLDER.findall(template) if v != "ext" and v not in variables
            )
            continue
        if urlsplit(aci_url).scheme.lower() in ("https", "http"):
            endpoints.append(Endpoint(aci_url, asc_url))
    # Prefer https templates; plain http ones stay (the client refuses them with a clear error).
    endpoints.sort(key=lambda e: urlsplit(e.aci_url).scheme.lower() != "https")
    if endpoints:
        return list(dict.fromkeys(endpoints)), ""
    if missing:
        labels = ", ".join(sorted(missing))
        return [], f"{DISCOVERY_TAG} templates need values for: {labels}"
    return [], f"no usable {DISCOVERY_TAG} template (needs {{ext}} and an http(s) URL)"


def _parent_paths(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:end]) for end in range(len(parts), 0, -1)]


def _walk(
    name: str,
    client: HttpClient,
    insecure_http: bool,
    select: Callable[[list[DiscoveryTag]], tuple[list[_T], str]],
    *,
    what: str,
) -> list[_T]:
    attempts: list[str] = []
    for path in _parent_paths(name):
        urls = [f"https://{path}?ac-discovery=1"]
        if insecure_http:
            urls.append(f"http://{path}?ac-discovery=1")
        transport_error: FetchError | None = None
        answered = False
        for url in urls:
            try:
                html = client.get_text(url, max_size=MAX_PAGE_SIZE)
            except HttpStatusError as exc:
                attempts.append(f"{url}: HTTP {exc.status_code}")
                answered = True
                continue
            except FetchError as exc:
                attempts.append(f"{url}: {_reason(exc, url)}")
                transport_error = transport_error or exc
                continue
            found, why_not = select(parse_discovery_tags(html))
            if found:
                return found
            attempts.append(f"{url}: {why_not}")
            answered = True
            break
        if not answered and transport_error is not None:
            # No URL for this path got an HTTP answer: the parents live on the same host.
            raise FetchError(
                f"{what}: discovery failed: {'; '.join(attempts)}", hint=transport_error.hint
            ) from transport_error
    raise NotFoundError(f"{what}: discovery found nothing (tried {'; '.join(attempts)})")


def _reason(exc: FetchError, url: str) -> str:
    prefix = f'cannot fetch "{url}": '
    message = exc.message
    return message[len(prefix) :] if message.startswith(prefix) else message
