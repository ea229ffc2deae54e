"""An app's resource limits, from its isolators (reference §4.1, ace.md "Isolators").

``resource/memory`` and ``resource/cpu`` enforce their ``limit`` (rkt ignored ``request`` too),
``os/linux/cpu-shares`` the relative weight, ``os/linux/oom-score-adj`` the OOM score. Beyond rkt:
every app gets a pids limit, ``DEFAULT_PIDS_LIMIT`` unless the rkt extension isolator
``os/linux/pids-limit`` (``{"limit": N}``, 1..4194304, or ``{"limit": "max"}``) says otherwise,
so a fork bomb in one app stops inside that app. Resource limits are not "insecure options":
``--insecure-options`` does not turn them off.

Pure. Imports only the standard library, ``rkt.errors`` and ``rkt.schema``.
"""

from __future__ import annotations

from rkt.errors import PodError
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from rkt.schema.isolators import Isolator

PIDS_LIMIT = "os/linux/pids-limit"
DEFAULT_PIDS_LIMIT = 4096
_MAX_PIDS = 4194304


class AppLimits(NamedTuple):
    memory_bytes: int | None = None
    cpu_millicores: int | None = None
    cpu_shares: int | None = None
    pids: int | None = DEFAULT_PIDS_LIMIT  # None: unlimited ("max")
    oom_score_adj: int | None = None

    def to_json_obj(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> AppLimits:
        return cls(**{k: obj.get(k) for k in cls._fields})


def parse_pids_limit(value: Any) -> int | None:
    limit = value.get("limit") if isinstance(value, dict) else None
    if limit == "max":
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_PIDS:
        raise PodError(
            f'isolator "{PIDS_LIMIT}": "limit" must be a number from 1 to {_MAX_PIDS} or "max"'
        )
    return limit


def resolve_limits(typed: Iterable[object], raw: Iterable[Isolator]) -> AppLimits:
    """Limits from the app's typed isolators and (for the rkt extension) the raw ones."""
    memory = cpu = shares = oom = None
    typed = list(typed)
    if typed:  # the isolator classes only when there are isolators (a lean stage1 run path)
        from rkt.schema.isolators import CPUResource, CPUShares, MemoryResource, OOMScoreAdj
    for iso in typed:
        if isinstance(iso, MemoryResource) and iso.limit is not None:
            memory = iso.limit
        elif isinstance(iso, CPUResource) and iso.limit_millicores is not None:
            cpu = iso.limit_millicores
        elif isinstance(iso, CPUShares):
            shares = iso.shares
        elif isinstance(iso, OOMScoreAdj):
            oom = iso.score
    pids: int | None = DEFAULT_PIDS_LIMIT
    for iso_raw in raw:
        if iso_raw.name == PIDS_LIMIT:
            pids = parse_pids_limit(iso_raw.value)
    if cpu is not None and cpu <= 0:
        raise PodError('isolator "resource/cpu": the limit must be more than 0')
    if memory is not None and memory < 4096:
        raise PodError('isolator "resource/memory": the limit must be at least 4Ki')
    return AppLimits(memory, cpu, shares, pids, oom)
