"""The CLI frame stays light: no network, crypto or sqlite imports for --help and listing help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("httpx", "pysequoia", "grpc", "pyroute2", "asyncio", "zstandard")


def _imported_modules(*args: str) -> set[str]:
    python = REPO / ".venv" / "bin" / "python"
    proc = subprocess.run(
        [
            str(python),
            "-X",
            "importtime",
            "-c",
            "import sys; from rkt.cli.main import main; main(sys.argv[1:])",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--help",), ("image", "list", "--help"), ("version",)])
def test_cli_start_imports_no_network_or_crypto_library(args: tuple[str, ...]) -> None:
    loaded = _imported_modules(*args)
    assert not loaded & set(HEAVY), f"rkt {' '.join(args)} imported {loaded & set(HEAVY)}"


def test_image_list_imports_no_network_or_crypto_library(tmp_path: object) -> None:
    loaded = _imported_modules(f"--dir={tmp_path}", "image", "list")
    assert not loaded & set(HEAVY)


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rkt.cli.main", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert 'unknown command "frobnicate"' in proc.stderr


def test_bad_insecure_option_is_a_usage_error_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rkt.cli.main", "--insecure-options=bogus", "version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
