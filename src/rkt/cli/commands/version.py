"""``rkt version``: the rkt and appc versions and the features this build has."""

from __future__ import annotations

import sys

from rkt import APPC_VERSION, __version__, jsonio
from rkt.settings import GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    info = {
        "rkt": __version__,
        "appc": APPC_VERSION,
        "python": sys.version.split()[0],  # platform.python_version(), without platform and re
        "features": ["-TPM", "-SDJOURNAL", "+OCI", "+ZSTD"],
    }
    if args.format == "json":
        print(jsonio.dumps(info, indent=2))
        return 0
    print(f"rkt Version: {info['rkt']}")
    print(f"appc Version: {info['appc']}")
    print(f"Python Version: {info['python']}")
    print(f"Features: {' '.join(info['features'])}")
    return 0
