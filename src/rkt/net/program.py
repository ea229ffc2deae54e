"""The one helper through which rkt runs an external program (CNI plugins, iptables).

An argv list (never a shell), an explicit environment, bytes on stdin, a timeout; failures raise
``ProgramError`` carrying the exit status and the tail of stderr.

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rkt.errors import NetworkError

STDERR_TAIL = 400


@dataclass(frozen=True, slots=True)
class ProgramResult:
    returncode: int
    stdout: bytes
    stderr: bytes


class ProgramError(NetworkError):
    """A program could not be run, timed out, or exited non-zero (when asked to check)."""

    def __init__(self, message: str, result: ProgramResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def stderr_tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    text = data.decode(errors="replace").strip()
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]


def run_program(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    timeout: float = 60.0,
    check: bool = True,
) -> ProgramResult:
    """Run ``argv``; with ``check``, a non-zero exit raises ``ProgramError``."""
    name = argv[0].rsplit("/", 1)[-1]
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        tail = stderr_tail(exc.stderr or b"")
        raise ProgramError(
            f'"{name}": timed out after {timeout:g}s' + (f": {tail}" if tail else "")
        ) from exc
    except OSError as exc:
        raise ProgramError(f'"{name}": cannot run {argv[0]}: {exc.strerror}') from exc
    result = ProgramResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        tail = stderr_tail(proc.stderr) or "no output"
        raise ProgramError(f'"{name}": exited {proc.returncode}: {tail}', result)
    return result
