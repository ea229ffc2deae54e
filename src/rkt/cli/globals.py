"""The global flags of rkt (rkt/rkt.go): their defaults and how their values become
``GlobalOptions``.

Pure: argparse commands get the flags from ``rkt.cli.parser``; the commands with rkt's run
grammar hand over their ``--flag=value`` tokens to ``parse_globals`` (no argparse on their path).
"""

from __future__ import annotations

import os

from rkt.cli.flags import parse_bool
from rkt.errors import UsageError
from rkt.paths import Path
from rkt.settings import (
    DEFAULT_DIR,
    DEFAULT_LOCAL_CONFIG,
    DEFAULT_SYSTEM_CONFIG,
    GlobalOptions,
    InsecureOptions,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

# flag -> kind, as in rkt.cli.run_args: "value", or "bool" (``--debug``, ``--debug=false``)
GLOBAL_FLAGS: dict[str, str] = {
    "--dir": "value",
    "--local-config": "value",
    "--system-config": "value",
    "--user-config": "value",
    "--insecure-options": "value",
    "--trust-keys-from-https": "bool",
    "--debug": "bool",
}


def _configured_data_dir(system: Path, local: Path) -> str | None:
    """The ``paths`` config kind's ``data``, read only when --dir is not given."""
    if not (system / "paths.d").is_dir() and not (local / "paths.d").is_dir():
        return None
    from rkt.config import load_config

    return load_config(system, local).paths.get("data")


def _env_path(name: str, default: Path) -> str:
    return os.environ.get(name, str(default))


def global_defaults() -> dict[str, str]:
    """The config dirs when not given: ``$RKT_LOCAL_CONFIG`` / ``$RKT_SYSTEM_CONFIG`` or rkt's."""
    return {
        "local_config": _env_path("RKT_LOCAL_CONFIG", DEFAULT_LOCAL_CONFIG),
        "system_config": _env_path("RKT_SYSTEM_CONFIG", DEFAULT_SYSTEM_CONFIG),
    }


def global_options(
    *,
    data_dir: str | None,
    local_config: str,
    system_config: str,
    user_config: str,
    insecure_options: str,
    trust_keys_from_https: bool,
    debug: bool,
) -> GlobalOptions:
    """``GlobalOptions`` from the flags' values; without ``--dir``: paths.d, ``$RKT_DIR``, rkt's."""
    local = Path(local_config)
    system = Path(system_config)
    if data_dir is None:
        data_dir = _configured_data_dir(system, local) or os.environ.get(
            "RKT_DIR", str(DEFAULT_DIR)
        )
    return GlobalOptions(
        # absolute: the stage1 is exec'd from the pod directory, and a pod's paths are recorded
        dir=Path(os.path.abspath(data_dir)) if data_dir else Path(data_dir),
        local_config=local,
        system_config=system,
        user_config=Path(user_config) if user_config else None,
        insecure=InsecureOptions.parse(insecure_options),
        trust_keys_from_https=trust_keys_from_https,
        debug=debug,
    )


def parse_globals(tokens: Sequence[str]) -> GlobalOptions:
    """GlobalOptions from a list of ``--flag=value`` global flags (for raw-grammar commands)."""
    defaults = global_defaults()
    values: dict[str, str] = {}
    for token in tokens:
        name, eq, value = token.partition("=")
        if name not in GLOBAL_FLAGS or not eq:
            raise UsageError(f'global flag "{token}": expected --flag=value')
        values[name] = value

    def flag_bool(name: str) -> bool:
        return name in values and parse_bool(values[name], name)

    return global_options(
        data_dir=values.get("--dir"),
        local_config=values.get("--local-config", defaults["local_config"]),
        system_config=values.get("--system-config", defaults["system_config"]),
        user_config=values.get("--user-config", ""),
        insecure_options=values.get("--insecure-options", "none"),
        trust_keys_from_https=flag_bool("--trust-keys-from-https"),
        debug=flag_bool("--debug"),
    )
