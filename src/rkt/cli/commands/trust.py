"""``rkt trust``: add keys to the trust store, or list it (rkt/trust.go, rkt/pubkey/pubkey.go).

    rkt trust --prefix=PREFIX [PUBKEY...]   trust keys for images named PREFIX and below; without
                                            PUBKEY, find them by meta discovery of PREFIX
    rkt trust --root PUBKEY...              trust keys for every image
    rkt trust --list [--format=json]        print the trusted keys

PUBKEY is a path, a ``file://`` URL or an ``https://`` URL (``http://`` only when insecure http is
allowed). Each key's fingerprint and user IDs are shown and must be confirmed on a terminal unless
``--skip-fingerprint-review``, or the key came over https and ``--trust-keys-from-https`` is set.
A key with neither ``--prefix`` nor ``--root`` is refused: it would be trusted for every image.
"""

from __future__ import annotations

import sys
from urllib.parse import unquote, urlsplit

from rkt.cli.output import FORMATS, print_json, print_table
from rkt.errors import TrustError, UsageError
from rkt.paths import Path
from rkt.settings import GlobalOptions
from rkt.stage0 import privileges
from rkt.trust.keys import KeyInfo, format_fingerprint, parse_public_key
from rkt.trust.keystore import Keystore, TrustedKey, validate_prefix

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pubkeys", nargs="*", metavar="PUBKEY", help="key file path or URL")
    parser.add_argument("--prefix", default="", help="image name prefix the keys are trusted for")
    parser.add_argument("--root", action="store_true", help="trust the keys for every image")
    parser.add_argument(
        "--skip-fingerprint-review",
        action="store_true",
        help="trust the keys without showing their fingerprints for confirmation",
    )
    parser.add_argument(
        "--insecure-allow-http",
        action="store_true",
        help="allow fetching keys (and discovery) over plain http",
    )
    parser.add_argument("--list", action="store_true", help="list the trusted keys")
    parser.add_argument(
        "--format", choices=FORMATS, default="", help="--list output: json or json-pretty"
    )


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    keystore = Keystore(opts.local_config, opts.system_config)
    if args.list:
        if args.pubkeys:
            raise UsageError("rkt trust: --list takes no PUBKEY arguments")
        return list_trusted(keystore, args)
    prefix: str = args.prefix
    if prefix and args.root:
        raise UsageError("rkt trust: --root and --prefix are mutually exclusive")
    if not prefix and not args.root:
        if not args.pubkeys:
            raise UsageError(
                "rkt trust: give --prefix=PREFIX [PUBKEY...], --root PUBKEY... or --list"
            )
        raise TrustError(
            "refusing to trust keys without --prefix: that is implicit unbounded trust over "
            "every image; pass --prefix=PREFIX, or --root if that is what you mean"
        )
    if args.root and not args.pubkeys:
        raise UsageError("rkt trust: --root needs at least one PUBKEY (no discovery for root keys)")
    if prefix:
        validate_prefix(prefix)
    privileges.require_group("trust", privileges.RKT_ADMIN_GROUP)

    fetcher = _KeyFetcher(opts, allow_http=args.insecure_allow_http)
    try:
        _add_keys(keystore, fetcher, prefix, args, opts)
    finally:
        fetcher.close()
    return 0


def _add_keys(
    keystore: Keystore,
    fetcher: _KeyFetcher,
    prefix: str,
    args: argparse.Namespace,
    opts: GlobalOptions,
) -> None:
    locations: list[str] = list(args.pubkeys) or fetcher.discover(prefix)
    for location in locations:
        data, over_https = fetcher.get(location)
        info = parse_public_key(data, source=f'key "{location}"')
        if not _accept(info, location, prefix, args, opts, over_https=over_https):
            sys.stderr.write(f'Not trusting key "{location}"\n')
            continue
        if prefix:
            added = keystore.add_prefix_key(prefix, data)
            sys.stderr.write(f'Added key for prefix "{prefix}" at "{added.path}"\n')
        else:
            added = keystore.add_root_key(data)
            sys.stderr.write(f'Added root key at "{added.path}"\n')


def list_trusted(keystore: Keystore, args: argparse.Namespace) -> int:
    keys = keystore.list_keys()
    if args.root:
        keys = [k for k in keys if k.kind == "root"]
    elif args.prefix:
        keys = [k for k in keys if k.prefix == args.prefix]
    if args.format:
        print_json([_key_json(k) for k in keys], pretty=args.format == "json-pretty")
        return 0
    rows = [
        [k.kind, k.prefix or "-", k.fingerprint, k.origin, ", ".join(k.user_ids) or "-"]
        for k in keys
    ]
    print_table(["KIND", "PREFIX", "FINGERPRINT", "ORIGIN", "USER IDS"], rows)
    return 0


def _key_json(key: TrustedKey) -> dict[str, Any]:
    return {
        "kind": key.kind,
        "prefix": key.prefix,
        "fingerprint": key.fingerprint,
        "user_ids": list(key.user_ids),
        "origin": key.origin,
        "path": str(key.path),
    }


class _KeyFetcher:
    """Reads keys from paths and file:// URLs; fetches https (and allowed http) URLs."""

    def __init__(self, opts: GlobalOptions, *, allow_http: bool) -> None:
        self.opts = opts
        self.allow_http = allow_http or opts.insecure.http or opts.insecure.pubkey
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from rkt.fetch.http import HttpClient, resolve_from_env  # heavy: only for URLs

            insecure = self.opts.insecure
            if self.allow_http:
                insecure = insecure._replace(http=True)
            self._client = HttpClient(insecure, resolve=resolve_from_env())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def discover(self, prefix: str) -> list[str]:
        """Meta discovery of ``ac-discovery-pubkeys`` for ``prefix`` (appc spec/discovery.md)."""
        from rkt.fetch.discovery import discover_pubkeys

        urls = list(discover_pubkeys(prefix, self.client(), insecure_http=self.allow_http))
        if not urls:
            raise TrustError(f'prefix "{prefix}": discovery found no ac-discovery-pubkeys')
        return urls

    def get(self, location: str) -> tuple[bytes, bool]:
        """The key bytes at ``location``, and whether they came over https."""
        parts = urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme not in ("file", "http", "https") and Path(location).exists():
            scheme = ""  # a path that merely contains a colon
        if scheme in ("", "file"):
            path = Path(location) if not scheme else _file_url_path(location)
            try:
                return path.read_bytes(), False
            except OSError as exc:
                raise TrustError(f'key "{location}": cannot read: {exc.strerror or exc}') from exc
        if scheme == "http" and not self.allow_http:
            raise TrustError(
                f'key "{location}": refusing to fetch a key over plain http '
                "(pass --insecure-allow-http to allow it)"
            )
        if scheme not in ("http", "https"):
            raise UsageError(f'rkt trust: unsupported key location "{location}"')
        return bytes(self.client().get_bytes(location)), scheme == "https"


def _file_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f'rkt trust: "{url}": file URLs must name a local path')
    return Path(unquote(parts.path))


def _accept(
    info: KeyInfo,
    location: str,
    prefix: str,
    args: argparse.Namespace,
    opts: GlobalOptions,
    *,
    over_https: bool,
) -> bool:
    """rkt's review step: skip, auto-accept over https, or show the key and ask on a terminal."""
    target = f'for prefix "{prefix}"' if prefix else "as a root key"
    # --trust-keys-from-https accepts keys fetched over https; --insecure-options=pubkey extends
    # that to keys fetched over plain http (rkt Documentation/commands.md).
    scheme = urlsplit(location).scheme.lower()
    forced = opts.trust_keys_from_https and (
        over_https or (scheme == "http" and opts.insecure.pubkey)
    )
    if args.skip_fingerprint_review or forced:
        sys.stderr.write(f'Trusting "{location}" {target} without fingerprint review\n')
        return True
    if not sys.stdin.isatty():
        raise TrustError(
            f'key "{location}": fingerprint review needs a terminal; '
            "pass --skip-fingerprint-review to trust it without review"
        )
    if prefix:
        sys.stderr.write(f'Prefix: "{prefix}"\n')
    sys.stderr.write(f'Key: "{location}"\n')
    sys.stderr.write(f"GPG key fingerprint is: {format_fingerprint(info.fingerprint)}\n")
    for uid in info.user_ids:
        sys.stderr.write(f"\t{uid}\n")
    if not _ask_yes_no("Are you sure you want to trust this key (yes/no)? "):
        return False
    sys.stderr.write(f'Trusting "{location}" {target} after fingerprint review\n')
    return True


def _ask_yes_no(question: str) -> bool:
    while True:
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:  # EOF: no consent
            sys.stderr.write("\n")
            return False
        word = answer.strip().lower()
        if word == "yes":  # rkt wants the whole word, as does gpg for trust decisions
            return True
        if word == "no":
            return False
        sys.stderr.write("Please enter 'yes' or 'no'\n")
