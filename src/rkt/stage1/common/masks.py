"""Kernel interfaces an app must not reach: rkt's masked paths, plus Docker's where rkt had none.

rkt ("protectKernelTunables", rkt:stage1/init/common/app.go) made some /proc and /sys paths
read-only and others inaccessible; ``--insecure-options=paths`` turns all of it off. We keep its
lists and add the /proc entries Docker masks that rkt left open (``/proc/keys``,
``/proc/timer_list``, ...; docs/security.md). An inaccessible file is covered by the app's
``/dev/null``, an inaccessible directory by an empty read-only tmpfs of mode 000; a read-only path
is bound onto itself and remounted read-only. Paths this kernel does not have are skipped.

Pure. Imports only the standard library.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Literal


READ_ONLY: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/kernel/hotplug",
    "/proc/sys/vm/panic_on_oom",
    "/proc/sysrq-trigger",
    "/sys/block",
    "/sys/bus",
    "/sys/class",
    "/sys/dev",
    "/sys/devices",
    "/sys/kernel",
)
INACCESSIBLE_DIRS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/fs",
    "/sys/hypervisor",
    "/sys/module",
    "/sys/power",
)
INACCESSIBLE_FILES: tuple[str, ...] = (
    "/proc/config.gz",
    "/proc/kallsyms",
    "/proc/kcore",
    "/proc/keys",
    "/proc/kmem",
    "/proc/latency_stats",
    "/proc/mem",
    "/proc/sched_debug",
    "/proc/timer_list",
    "/proc/timer_stats",
)

if TYPE_CHECKING:
    MaskKind = Literal["read-only", "empty-dir", "null-file"]


def plan_masks(insecure: frozenset[str]) -> list[tuple[str, MaskKind]]:
    """Every masked path and how to mask it; nothing with ``--insecure-options=paths``."""
    if "paths" in insecure:
        return []
    out: list[tuple[str, MaskKind]] = [(p, "read-only") for p in READ_ONLY]
    out += [(p, "empty-dir") for p in INACCESSIBLE_DIRS]
    out += [(p, "null-file") for p in INACCESSIBLE_FILES]
    return out
