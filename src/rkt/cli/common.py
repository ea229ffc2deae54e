"""Helpers shared by command modules: warnings on stderr, the store with privilege checks, the
download progress bar."""

from __future__ import annotations

import sys

from rkt.settings import GlobalOptions
from rkt.stage0.privileges import RKT_GROUP, require_group
from rkt.store.store import Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from rkt.fetch.progress import Progress


def warn(message: str) -> None:
    sys.stderr.write(f"rkt: warning: {message}\n")


def open_store(opts: GlobalOptions, action: str) -> Store:
    """The image store; reading and fetching need root or group rkt."""
    require_group(action, RKT_GROUP)
    return Store(opts.dir)


def progress_bar() -> Progress:
    """``rkt.cli.progress.make_progress``, imported when a download first draws a bar: an image
    already in the store does not pay its imports (~0.3 ms of every `rkt run`)."""
    from rkt.cli.progress import make_progress

    return make_progress()
