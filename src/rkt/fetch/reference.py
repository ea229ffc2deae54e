"""Image references: what the user typed after `rkt fetch|run|prepare`, classified and validated.

Owns the mapping from an argument string to one of five reference kinds, following rkt's
heuristics (rkt/image/common.go, Documentation/image-fetching-behavior.md; reference §2.3):

    sha512-<hex>                       ImageIdRef   store only (a prefix is fine)
    /path, ./x.aci, file:///x.aci      PathRef      a local file
    https://host/x.aci                 UrlRef       cached by URL
    example.com/app[:1.0][,k=v...]     NameRef      store, then appc meta discovery
    docker://[REG[:PORT]/]IMG[:TAG]    DockerRef    registry fetch (parsed later)

Pure: imports only ``rkt.errors`` and the standard library; never touches the network. The kinds
are ``NamedTuple``s (``rkt run`` creates these classes at every start; dataclasses cost 4-8x
more), told apart with ``isinstance``, never by comparing a reference of one kind with another.
"""

from __future__ import annotations

import os

from rkt import textcheck
from rkt.errors import UsageError
from rkt.paths import Path
from rkt.records import NamedTuple

ACI_EXTENSION = ".aci"

# appc types.md "AC Identifier Type" (image names and label keys).
# Patterns, compiled (and cached by re) only for an argument that can match: most are names.
_SCHEME = r"([A-Za-z][A-Za-z0-9+.-]*)://"
_SHA512_HEX_LEN = 128

# platform.machine() -> appc arch label (appc OS-SPEC.md, linux column).
_ARCH_BY_MACHINE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "aarch64_be": "aarch64_be",
    "armv6l": "armv6l",
    "armv7l": "armv7l",
    "armv7b": "armv7b",
    "ppc64": "ppc64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def is_ac_identifier(text: str) -> bool:
    """Whether ``text`` is a valid appc AC Identifier (image names, label keys)."""
    return textcheck.is_ac_identifier(text)


def host_os() -> str:
    """The appc ``os`` label of this machine (rkt only runs on linux)."""
    import platform  # only discovery needs it (~2 ms of imports)

    return platform.system().lower() or "linux"


def host_arch() -> str:
    """The appc ``arch`` label of this machine."""
    import platform

    machine = platform.machine().lower()
    return _ARCH_BY_MACHINE.get(machine, machine)


class ImageIdRef(NamedTuple):
    """An image ID or a prefix of one, lower-case: ``sha512-<hex>``."""

    prefix: str


class PathRef(NamedTuple):
    """An image file on the local filesystem."""

    path: Path


class UrlRef(NamedTuple):
    """An http or https URL of an ACI."""

    url: str


class DockerRef(NamedTuple):
    """A ``docker://`` reference, kept verbatim; the docker fetcher parses it."""

    raw: str


class NameRef(NamedTuple):
    """An appc image name with the labels the user gave (no defaults mixed in)."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str | None:
        """The version label the user asked for, or None (which means "latest")."""
        return self.label_map().get("version")

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def with_defaults(self) -> NameRef:
        """The labels discovery templates need: user labels, then os/arch/version defaults.

        A missing version becomes ``latest`` (rkt marks such a fetch as latest); os and arch
        default to this machine. Labels the user gave are never overridden.
        """
        merged = self.label_map()
        for key, value in (("version", "latest"), ("os", host_os()), ("arch", host_arch())):
            merged.setdefault(key, value)
        return NameRef(self.name, tuple(sorted(merged.items())))

    def __str__(self) -> str:
        """rkt's own spelling: ``name[:version][,key=value...]``."""
        labels = self.label_map()
        version = labels.pop("version", None)
        head = self.name if version is None else f"{self.name}:{version}"
        return head + "".join(f",{key}={value}" for key, value in labels.items())


ImageRef = ImageIdRef | PathRef | UrlRef | NameRef | DockerRef


def parse_image_reference(text: str, *, cwd: Path | None = None) -> ImageRef:
    """Classify and validate one image argument; ``cwd`` only matters for bare file names."""
    arg = text.strip()
    if not arg:
        raise UsageError("image: empty image reference")
    if "://" in arg:
        import re  # here: only URLs need it

        scheme = re.match(_SCHEME, arg)
        if scheme:
            return _parse_url(arg, scheme.group(1).lower())
    digits = arg[len("sha512-") :] if arg.startswith("sha512-") else ""
    if digits and textcheck.is_lower_hex(digits.lower()):
        return _parse_image_id(arg, digits)
    if os.path.isabs(arg):
        return PathRef(Path(arg))
    return _guess_path_or_name(arg, Path.cwd() if cwd is None else cwd)


def _parse_url(arg: str, scheme: str) -> ImageRef:
    if scheme == "docker":
        if not arg[len("docker://") :]:
            raise UsageError(f'image "{arg}": docker reference without an image name')
        return DockerRef(arg)
    from urllib.parse import unquote, urlsplit  # here: ~1 ms, and only URLs need it

    if scheme == "file":
        parts = urlsplit(arg)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f'image "{arg}": file URLs must not name a host')
        if not parts.path:
            raise UsageError(f'image "{arg}": file URL without a path')
        return PathRef(Path(unquote(parts.path)))
    if scheme in ("http", "https"):
        parts = urlsplit(arg)
        if not parts.hostname:
            raise UsageError(f'image "{arg}": URL without a host')
        return UrlRef(arg)
    raise UsageError(
        f'image "{arg}": unsupported URL scheme "{scheme}" (use http, https, file or docker)'
    )


def _parse_image_id(arg: str, hex_digits: str) -> ImageIdRef:
    if len(hex_digits) > _SHA512_HEX_LEN:
        raise UsageError(f'image "{arg}": image ID longer than a sha512 digest')
    return ImageIdRef(f"sha512-{hex_digits.lower()}")


def _guess_path_or_name(arg: str, cwd: Path) -> ImageRef:
    # rkt's order: an existing regular file wins; a colon means name:version; "./" or an
    # .aci extension means a path; anything else is an image name. A relative path that
    # looks like a name (coreos.com/etcd) needs a leading "./" to be read as a file.
    if (cwd / arg).is_file():
        return PathRef(Path(arg))
    if ":" not in arg and ("./" in arg or arg.endswith(ACI_EXTENSION)):
        return PathRef(Path(arg))
    return parse_image_name(arg)


def parse_image_name(arg: str) -> NameRef:
    """Parse ``name[:version][,label=value...]`` (appc discovery App string) into a NameRef."""
    head, *label_parts = arg.split(",")
    name, colon, version = head.partition(":")
    labels: dict[str, str] = {}
    if colon:
        if not version:
            raise UsageError(f'image "{arg}": empty version after ":"')
        labels["version"] = version
    for part in label_parts:
        key, equals, value = part.partition("=")
        if not equals or not key or not value:
            raise UsageError(f'image "{arg}": label "{part}" is not of the form key=value')
        if not is_ac_identifier(key):
            raise UsageError(f'image "{arg}": invalid label name "{key}"')
        if key == "name":
            raise UsageError(f'image "{arg}": "name" cannot be used as a label')
        if key in labels:
            raise UsageError(f'image "{arg}": label "{key}" given twice')
        labels[key] = value
    if not is_ac_identifier(name):
        raise UsageError(
            f'image "{arg}": "{name}" is not a valid image name '
            "(lower-case letters, digits and -._~/ between them)"
        )
    return NameRef(name, tuple(sorted(labels.items())))
