"""Helpers shared by command modules: warnings on stderr, the store with privilege checks."""

from __future__ import annotations

import sys

from rkt.settings import GlobalOptions
from rkt.stage0.privileges import RKT_GROUP, require_group
from rkt.store.store import Store


def warn(message: str) -> None:
    sys.stderr.write(f"rkt: warning: {message}\n")


def open_store(opts: GlobalOptions, action: str) -> Store:
    """The image store; reading and fetching need root or group rkt."""
    require_group(action, RKT_GROUP)
    return Store(opts.dir)
