"""Global settings shared by every command: data and config dirs, insecure options, debug.

Parsed once at the CLI edge into immutable records (``NamedTuple``: every command creates these
classes at start-up, several times faster than ``@dataclass`` would); inner layers receive
``GlobalOptions``. Imports only ``rkt.errors``.
"""

from __future__ import annotations

from rkt.errors import UsageError
from rkt.paths import Path
from rkt.records import NamedTuple

DEFAULT_DIR = Path("/var/lib/rkt")
DEFAULT_LOCAL_CONFIG = Path("/etc/rkt")
DEFAULT_SYSTEM_CONFIG = Path("/usr/lib/rkt")

# rkt's --insecure-options values (rkt/flag/secflags.go) and what each composite expands to.
_SINGLE = ("image", "tls", "ondisk", "http", "pubkey", "capabilities", "paths", "seccomp")
_COMPOSITE = {
    "none": (),
    "all-fetch": ("image", "tls", "http", "pubkey"),
    "all-run": ("capabilities", "paths", "seccomp"),
    "all": _SINGLE,
}
INSECURE_VALUES = (*_SINGLE[:3], "http", "pubkey", "capabilities", "paths", "seccomp", *_COMPOSITE)


class InsecureOptions(NamedTuple):
    """Which security checks the user turned off; everything is on by default."""

    image: bool = False
    tls: bool = False
    ondisk: bool = False
    http: bool = False
    pubkey: bool = False
    capabilities: bool = False
    paths: bool = False
    seccomp: bool = False

    @classmethod
    def parse(cls, value: str) -> InsecureOptions:
        """Parse rkt's comma-separated list; unknown values are a usage error."""
        chosen: set[str] = set()
        for raw in value.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if item in _COMPOSITE:
                chosen.update(_COMPOSITE[item])
            elif item in _SINGLE:
                chosen.add(item)
            else:
                allowed = ", ".join(sorted({*_SINGLE, *_COMPOSITE}))
                raise UsageError(f'--insecure-options: unknown value "{item}" (allowed: {allowed})')
        return cls(**{name: True for name in chosen})

    def names(self) -> list[str]:
        return [name for name in _SINGLE if getattr(self, name)]


class GlobalOptions(NamedTuple):
    """The global flags every rkt command accepts (rkt/rkt.go)."""

    dir: Path = DEFAULT_DIR
    local_config: Path = DEFAULT_LOCAL_CONFIG
    system_config: Path = DEFAULT_SYSTEM_CONFIG
    user_config: Path | None = None
    insecure: InsecureOptions = InsecureOptions()
    trust_keys_from_https: bool = False
    debug: bool = False
