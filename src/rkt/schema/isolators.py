"""appc isolators (spec 0.8.11, types.md "Isolator Type" and ace.md "Isolators").

Owns: the generic ``Isolator`` (name + arbitrary JSON value) as it sits in a manifest, typed views
of the isolators rkt enforces (``parse_isolator``), the per-app consistency rules (a known isolator
at most once, retain-set and remove-set mutually exclusive), Kubernetes quantity parsing for the
resource isolators, and the Linux capability names with rkt's default bounding set.

Unknown isolators are kept verbatim: ace.md lets an executor ignore isolators it does not know.

Pure: no I/O. Imports only ``rkt.errors`` and its sibling ``rkt.schema`` modules.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from rkt.errors import ManifestError
from rkt.schema._fields import Loc, as_object, check_int, items, objects, opt_str, show
from rkt.schema.capnames import CAPABILITIES, DEFAULT_CAPABILITIES
from rkt.schema.names import validate_ac_identifier

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, Literal

RESOURCE_CPU = "resource/cpu"
RESOURCE_MEMORY = "resource/memory"
CAPABILITIES_RETAIN = "os/linux/capabilities-retain-set"
CAPABILITIES_REMOVE = "os/linux/capabilities-remove-set"
SECCOMP_RETAIN = "os/linux/seccomp-retain-set"
SECCOMP_REMOVE = "os/linux/seccomp-remove-set"
NO_NEW_PRIVILEGES = "os/linux/no-new-privileges"
CPU_SHARES = "os/linux/cpu-shares"
OOM_SCORE_ADJ = "os/linux/oom-score-adj"


_SYSCALL = re.compile(r"[a-z_][a-z0-9_]*|@[a-z0-9.-]+/[a-z0-9._-]+")
_ERRNO = re.compile(r"E[A-Z0-9]+")
# Kubernetes quantity: <signedNumber><suffix>, suffix binary SI, decimal SI or exponent.
_QUANTITY = re.compile(
    r"(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkKMGTPE])?)"
)
_SUFFIXES: Mapping[str, Decimal] = MappingProxyType(
    {
        "n": Decimal("1e-9"),
        "u": Decimal("1e-6"),
        "m": Decimal("1e-3"),
        "k": Decimal(1000),
        "K": Decimal(1000),  # ace.md lists "K" among the metric suffixes
        "M": Decimal(1000) ** 2,
        "G": Decimal(1000) ** 3,
        "T": Decimal(1000) ** 4,
        "P": Decimal(1000) ** 5,
        "E": Decimal(1000) ** 6,
        "Ki": Decimal(1024),
        "Mi": Decimal(1024) ** 2,
        "Gi": Decimal(1024) ** 3,
        "Ti": Decimal(1024) ** 4,
        "Pi": Decimal(1024) ** 5,
        "Ei": Decimal(1024) ** 6,
    }
)
_MAX_EXPONENT = 30  # "1e999999999" would make Decimal arithmetic pathological
# The largest CPU limit a CFS quota can express: the kernel takes at most 2^44-1 µs of quota (in
# a 100 ms period, as rkt sets it); a limit above it could not be enforced at all.
MAX_CPU_LIMIT = ((1 << 44) - 1) // 100_000


def parse_quantity(text: str) -> Decimal:
    """Parse a Kubernetes quantity ("250m", "1.5Gi", "2e3", "128974848") into its exact value.

    Raises ``ManifestError`` (lower-case, naming the text) on bad syntax.
    """
    match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ManifestError(f"{show(text)} is not a valid quantity")
    number = Decimal(match["num"])
    if match["exp"]:
        exponent = int(match["exp"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise ManifestError(f"{show(text)} is not a valid quantity: exponent out of range")
        return number.scaleb(exponent)
    return number * _SUFFIXES[match["suffix"]] if match["suffix"] else number


@dataclass(frozen=True, slots=True)
class Isolator:
    """An isolator as written in a manifest; ``value`` is arbitrary JSON (do not mutate it)."""

    name: str
    value: Any = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": copy.deepcopy(self.value)}


@dataclass(frozen=True, slots=True)
class CPUResource:
    """``resource/cpu`` in cores; a missing request defaults to the limit (ace.md)."""

    request: Decimal | None
    limit: Decimal | None

    @property
    def limit_millicores(self) -> int | None:
        return None if self.limit is None else math.ceil(self.limit * 1000)


@dataclass(frozen=True, slots=True)
class MemoryResource:
    """``resource/memory`` in bytes (rounded up); a missing request defaults to the limit."""

    request: int | None
    limit: int | None


@dataclass(frozen=True, slots=True)
class CapabilitySet:
    """``os/linux/capabilities-{retain,remove}-set``."""

    mode: Literal["retain", "remove"]
    capabilities: tuple[str, ...]

    def bounding_set(self) -> frozenset[str]:
        """The bounding set: exactly the retain set, or the default minus the remove set."""
        if self.mode == "retain":
            return frozenset(self.capabilities)
        return DEFAULT_CAPABILITIES - frozenset(self.capabilities)


@dataclass(frozen=True, slots=True)
class SeccompSet:
    """``os/linux/seccomp-{retain,remove}-set``; ``errno`` None means kill with SIGSYS."""

    mode: Literal["retain", "remove"]
    syscalls: tuple[str, ...]
    errno: str | None


@dataclass(frozen=True, slots=True)
class NoNewPrivileges:
    enabled: bool


@dataclass(frozen=True, slots=True)
class CPUShares:
    shares: int


@dataclass(frozen=True, slots=True)
class OOMScoreAdj:
    score: int


KnownIsolator = (
    CPUResource
    | MemoryResource
    | CapabilitySet
    | SeccompSet
    | NoNewPrivileges
    | CPUShares
    | OOMScoreAdj
)


def parse_isolator(isolator: Isolator) -> KnownIsolator | None:
    """The typed view of an isolator rkt knows, or None for one it may ignore.

    Raises ``ManifestError`` naming the isolator and the field when the value is invalid.
    """
    return _parse_known(isolator.name, isolator.value, Loc(f"isolator {show(isolator.name)}"))


def parse_isolators(obj: Mapping[str, Any], key: str, loc: Loc) -> tuple[Isolator, ...]:
    """Parse and validate an ``isolators`` list of a manifest (app or pod scope)."""
    out: list[Isolator] = []
    seen: set[str] = set()
    for where, item in objects(obj, key, loc):
        name = opt_str(item, "name", where)
        if name is None:
            raise where.key("name").error("is required")
        validate_ac_identifier(name, str(where.key("name")))
        if "value" not in item:
            raise where.key("value").error("is required")
        if _parse_known(name, item["value"], where.key("value")) is not None:
            if name in seen:
                raise where.key("name").error(f"isolator {show(name)} may be given only once")
            seen.add(name)
        out.append(Isolator(name, copy.deepcopy(item["value"])))
    for retain, remove in (
        (CAPABILITIES_RETAIN, CAPABILITIES_REMOVE),
        (SECCOMP_RETAIN, SECCOMP_REMOVE),
    ):
        if retain in seen and remove in seen:
            raise loc.key(key).error(f'"{retain}" and "{remove}" cannot be used together')
    return tuple(out)


def _parse_known(name: str, value: Any, loc: Loc) -> KnownIsolator | None:
    if name == RESOURCE_CPU:
        request, limit = _resource(value, loc)
        if limit is not None and limit > MAX_CPU_LIMIT:
            raise loc.key("limit").error(
                f"{show(as_object(value, loc)['limit'])} is more than the kernel can enforce "
                f"(at most {MAX_CPU_LIMIT} CPUs)"
            )
        return CPUResource(request if request is not None else limit, limit)
    if name == RESOURCE_MEMORY:
        request, limit = _resource(value, loc)
        req_bytes = None if request is None else math.ceil(request)
        lim_bytes = None if limit is None else math.ceil(limit)
        return MemoryResource(req_bytes if req_bytes is not None else lim_bytes, lim_bytes)
    if name in (CAPABILITIES_RETAIN, CAPABILITIES_REMOVE):
        caps = _set(value, loc)
        for i, cap in enumerate(caps):
            if cap not in CAPABILITIES:
                raise loc.key("set").index(i).error(f"{show(cap)} is not a Linux capability")
        return CapabilitySet("retain" if name == CAPABILITIES_RETAIN else "remove", caps)
    if name in (SECCOMP_RETAIN, SECCOMP_REMOVE):
        syscalls = _set(value, loc)
        for i, syscall in enumerate(syscalls):
            if not _SYSCALL.fullmatch(syscall):
                raise loc.key("set").index(i).error(f"{show(syscall)} is not a syscall name")
        errno = opt_str(as_object(value, loc), "errno", loc) or None
        if errno is not None and not _ERRNO.fullmatch(errno):
            raise loc.key("errno").error(f"{show(errno)} is not an errno name (like EPERM)")
        return SeccompSet("retain" if name == SECCOMP_RETAIN else "remove", syscalls, errno)
    if name == NO_NEW_PRIVILEGES:
        if not isinstance(value, bool):
            raise loc.error(f"must be true or false, not {show(value)}")
        return NoNewPrivileges(value)
    if name == CPU_SHARES:
        return CPUShares(check_int(value, loc, 2, 262144))
    if name == OOM_SCORE_ADJ:
        return OOMScoreAdj(check_int(value, loc, -1000, 1000))
    return None


def _resource(value: Any, loc: Loc) -> tuple[Decimal | None, Decimal | None]:
    obj = as_object(value, loc)
    request, limit = (_quantity(obj.get(k), loc.key(k)) for k in ("request", "limit"))
    if request is None and limit is None:
        raise loc.error('must have a "request" or a "limit"')
    if request is not None and limit is not None and request > limit:
        raise loc.key("request").error("must not be greater than the limit")
    return request, limit


def _quantity(value: Any, loc: Loc) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise loc.error(f"must be a quantity string, not {show(value)}")
    try:
        quantity = parse_quantity(value)
    except ManifestError as exc:
        raise loc.error(f"{show(value)} is not a valid quantity") from exc
    if quantity < 0:
        raise loc.error(f"{show(value)} must not be negative")
    return quantity


def _set(value: Any, loc: Loc) -> tuple[str, ...]:
    entries = items(as_object(value, loc), "set", loc)
    if not entries:
        raise loc.key("set").error("must not be empty")
    for where, entry in entries:
        if not isinstance(entry, str):
            raise where.error(f"must be a string, not {show(entry)}")
    return tuple(entry for _, entry in entries)
