"""The global flags of rkt (rkt/rkt.go) and the argparse subclass every command uses."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rkt.cli.flags import add_bool, rewrite_bool_flags
from rkt.errors import UsageError
from rkt.settings import (
    DEFAULT_DIR,
    DEFAULT_LOCAL_CONFIG,
    DEFAULT_SYSTEM_CONFIG,
    GlobalOptions,
    InsecureOptions,
)


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns the exit code."""

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        argv, overrides = rewrite_bool_flags(self._actions, list(args or []))
        parsed = super().parse_args(argv, namespace)
        for dest, value in overrides.items():
            setattr(parsed, dest, value)
        return parsed

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _configured_data_dir(system: Path, local: Path) -> str | None:
    """The ``paths`` config kind's ``data``, read only when --dir is not given."""
    if not (system / "paths.d").is_dir() and not (local / "paths.d").is_dir():
        return None
    from rkt.config import load_config

    return load_config(system, local).paths.get("data")


def _env_path(name: str, default: Path) -> str:
    return os.environ.get(name, str(default))


def global_parser() -> argparse.ArgumentParser:
    """The global flags of rkt (rkt/rkt.go); accepted before or after the command words."""
    parser = Parser(add_help=False)
    group = parser.add_argument_group("global flags")
    group.add_argument(
        "--dir", default=None, help=f"rkt data directory (default {DEFAULT_DIR}, or paths.d config)"
    )
    group.add_argument(
        "--local-config",
        default=_env_path("RKT_LOCAL_CONFIG", DEFAULT_LOCAL_CONFIG),
        help="local configuration directory",
    )
    group.add_argument(
        "--system-config",
        default=_env_path("RKT_SYSTEM_CONFIG", DEFAULT_SYSTEM_CONFIG),
        help="system configuration directory",
    )
    group.add_argument("--user-config", default="", help="user configuration directory")
    group.add_argument(
        "--insecure-options",
        default="none",
        help="comma-separated list of security features to disable "
        "(none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all)",
    )
    add_bool(group, "--trust-keys-from-https", False, "trust gpg keys fetched from https")
    add_bool(group, "--debug", False, "print debug output")
    return parser


def options_from(args: argparse.Namespace) -> GlobalOptions:
    local = Path(args.local_config)
    system = Path(args.system_config)
    data_dir = args.dir
    if data_dir is None:
        data_dir = _configured_data_dir(system, local) or os.environ.get(
            "RKT_DIR", str(DEFAULT_DIR)
        )
    return GlobalOptions(
        dir=Path(data_dir),
        local_config=Path(args.local_config),
        system_config=Path(args.system_config),
        user_config=Path(args.user_config) if args.user_config else None,
        insecure=InsecureOptions.parse(args.insecure_options),
        trust_keys_from_https=bool(args.trust_keys_from_https),
        debug=bool(args.debug),
    )


def parse_globals(tokens: Sequence[str]) -> GlobalOptions:
    """GlobalOptions from a list of ``--flag=value`` global flags (for raw-grammar commands)."""
    return options_from(global_parser().parse_args(list(tokens)))
