"""An app's capabilities: the bounding set and, for non-root apps, the ambient set.

rkt's capabilities guide: without an isolator the bounding set is the 14 default capabilities;
``capabilities-retain-set`` is exact, ``-remove-set`` subtracts from the default (removing a
capability outside it is a no-op); ``--insecure-options=capabilities`` keeps the caller's set.
For root that bounding set is what the app keeps across exec. A non-root app keeps nothing after
exec unless the caps are ambient: when a retain-set isolator names capabilities for a non-root
app, exactly those (within the bounding set) are raised into the ambient set, as systemd's
``AmbientCapabilities=`` did for rkt.

Pure. Imports only the standard library and ``rkt.schema``.
"""

from __future__ import annotations

from rkt.records import NamedTuple
from rkt.schema.capnames import CAPABILITIES, DEFAULT_CAPABILITIES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable

    from rkt.schema.isolators import CapabilitySet


class CapabilityPlan(NamedTuple):
    bounding: tuple[int, ...] | None  # None: leave the caller's bounding set alone
    ambient: tuple[int, ...] = ()


def numbers(names: Iterable[str]) -> tuple[int, ...]:
    return tuple(sorted({CAPABILITIES[n] for n in names if n in CAPABILITIES}))


def resolve_capabilities(
    sets: Iterable[CapabilitySet], uid: int, insecure: frozenset[str]
) -> CapabilityPlan:
    if "capabilities" in insecure:
        return CapabilityPlan(None)
    chosen = list(sets)
    names = chosen[-1].bounding_set() if chosen else DEFAULT_CAPABILITIES
    ambient: tuple[int, ...] = ()
    if uid != 0 and chosen and chosen[-1].mode == "retain":
        ambient = numbers(names)
    return CapabilityPlan(numbers(names), ambient)


def capability_mask(caps: Iterable[int]) -> int:
    mask = 0
    for cap in caps:
        mask |= 1 << cap
    return mask
