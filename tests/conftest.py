"""Shared test plumbing: the installed rkt; prerequisites that fail in CI instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RKT = REPO / ".venv" / "bin" / "rkt"
IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """A missing prerequisite: a failure in CI (CI=true), a skip on a developer's machine."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def bare_python(code: str) -> str:
    """The stdout of ``code`` run by a fresh interpreter without ``site`` and with only ``src/`` on
    its path, as the ``rkt`` launcher runs: what the modules it imports import by themselves."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO / "src")},
    )
    return out.stdout


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"needs {name} (run make setup)")
    assert path is not None
    return path
