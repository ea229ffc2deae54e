"""The per-app isolator flags of ``run``/``prepare`` turned into appc isolators (rkt's syntax).

``--cpu=250m`` → ``resource/cpu`` limit, ``--memory=128Mi`` → ``resource/memory`` limit
(Kubernetes quantities), ``--cpu-shares=N`` → ``os/linux/cpu-shares``, ``--oom-score-adj=N`` →
``os/linux/oom-score-adj``, ``--caps-retain``/``--caps-remove=CAP_X,...`` → the capability
sets (mutually exclusive, as rkt; ``CAP_`` may be left out), ``--seccomp=mode=retain|remove
[,errno=ENAME],SYSCALL,@GROUP...`` → the seccomp sets. Each becomes a manifest isolator that
replaces the image's of the same name (stage0 merges them). Every value is checked here with
the schema's own parser, so a bad flag is a usage error, not a failed pod.

Imports only ``rkt.errors`` and ``rkt.schema``.
"""

from __future__ import annotations

from rkt.errors import ManifestError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

# The flags handled here; an app without any never imports rkt.schema.isolators (~6 ms).
ISOLATOR_FLAGS = (
    "--cpu",
    "--memory",
    "--cpu-shares",
    "--oom-score-adj",
    "--caps-retain",
    "--caps-remove",
    "--seccomp",
)


def _last(flags: dict[str, list[str]], name: str) -> str | None:
    values = flags.get(name)
    return values[-1] if values else None


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise UsageError(f'{flag}: "{text}" is not a number') from exc


def _caps(text: str) -> list[str]:
    out = []
    for raw in text.split(","):
        name = raw.strip().upper()
        if name:
            out.append(name if name.startswith("CAP_") else f"CAP_{name}")
    return out


def parse_seccomp_flag(text: str) -> dict[str, Any]:
    """``mode=retain|remove[,errno=ENAME],SYSCALL,...`` → an isolator dict."""
    from rkt.schema.isolators import SECCOMP_REMOVE, SECCOMP_RETAIN

    mode = None
    errno = None
    syscalls: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.startswith("mode="):
            mode = part[len("mode=") :]
        elif part.startswith("errno="):
            errno = part[len("errno=") :]
        elif part:
            syscalls.append(part)
    if mode not in ("retain", "remove"):
        raise UsageError(f'--seccomp "{text}": needs mode=retain or mode=remove')
    if not syscalls:
        raise UsageError(f'--seccomp "{text}": names no syscall or @group')
    value: dict[str, Any] = {"set": syscalls}
    if errno:
        value["errno"] = errno
    return {"name": SECCOMP_RETAIN if mode == "retain" else SECCOMP_REMOVE, "value": value}


def isolator_flags(flags: dict[str, list[str]]) -> tuple[dict[str, Any], ...]:
    """The isolators the app's flags ask for, each validated; () when none is given."""
    if not any(flags.get(flag) for flag in ISOLATOR_FLAGS):
        return ()
    from rkt.schema.isolators import (
        CAPABILITIES_REMOVE,
        CAPABILITIES_RETAIN,
        CPU_SHARES,
        OOM_SCORE_ADJ,
        RESOURCE_CPU,
        RESOURCE_MEMORY,
        Isolator,
        parse_isolator,
    )

    out: list[tuple[str, dict[str, Any]]] = []
    if (cpu := _last(flags, "--cpu")) is not None:
        out.append(("--cpu", {"name": RESOURCE_CPU, "value": {"limit": cpu}}))
    if (memory := _last(flags, "--memory")) is not None:
        out.append(("--memory", {"name": RESOURCE_MEMORY, "value": {"limit": memory}}))
    if (shares := _last(flags, "--cpu-shares")) is not None:
        out.append(("--cpu-shares", {"name": CPU_SHARES, "value": _int(shares, "--cpu-shares")}))
    if (oom := _last(flags, "--oom-score-adj")) is not None:
        out.append(
            ("--oom-score-adj", {"name": OOM_SCORE_ADJ, "value": _int(oom, "--oom-score-adj")})
        )
    retain, remove = _last(flags, "--caps-retain"), _last(flags, "--caps-remove")
    if retain is not None and remove is not None:
        raise UsageError("--caps-retain and --caps-remove cannot be used together")
    if retain is not None:
        out.append(
            ("--caps-retain", {"name": CAPABILITIES_RETAIN, "value": {"set": _caps(retain)}})
        )
    if remove is not None:
        out.append(
            ("--caps-remove", {"name": CAPABILITIES_REMOVE, "value": {"set": _caps(remove)}})
        )
    if (seccomp := _last(flags, "--seccomp")) is not None:
        out.append(("--seccomp", parse_seccomp_flag(seccomp)))
    for flag, iso in out:
        try:
            parse_isolator(Isolator(iso["name"], iso["value"]))
        except ManifestError as exc:
            raise UsageError(f"{flag}: {exc.message}") from exc
    return tuple(iso for _, iso in out)
