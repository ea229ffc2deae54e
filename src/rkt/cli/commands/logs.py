"""``rkt logs [--app=NAME] [--follow] [--tail=N] UUID``: print what a pod's apps wrote.

rkt never had this command (rkt#3082); logs here are the files a stage1 keeps per app in CRI format
(docs/stage1-abi.md §2: ``stage1/rootfs/rkt/logs/<app>.log``, ``RFC3339NANO STREAM P|F TEXT``).
Lines of the app's stdout go to stdout, its stderr to stderr; with several apps each line is
prefixed with ``<app>: ``. ``--follow`` keeps printing until the pod exits: inotify wakes it when a
log file grows, and a thread blocked on the pod lock wakes it when the pod is gone. No sleeps.
"""

from __future__ import annotations

import select
import sys
from dataclasses import dataclass, field

from rkt import abi
from rkt.cli.commands.enter import app_names, choose_app
from rkt.cli.commands.status import (
    IN_CREATE,
    IN_MODIFY,
    IN_MOVED_TO,
    ExitWatcher,
    Inotify,
    lookup,
    pods_root,
)
from rkt.cli.quickparse import add_bool
from rkt.errors import UsageError
from rkt.paths import Path
from rkt.pod.pod import Pod
from rkt.settings import GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


@dataclass
class Entry:
    stamp: str
    app: str
    stream: str
    text: str


@dataclass
class LogReader:
    """Reads one app's log file incrementally, joining partial (``P``) records into lines."""

    app: str
    path: Path
    offset: int = 0
    pending: str = ""
    partial: dict[str, str] = field(default_factory=dict)

    def read(self) -> list[Entry]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        text = self.pending + data.decode("utf-8", "replace")
        lines = text.split("\n")
        self.pending = lines.pop()  # an incomplete record: wait for the rest
        entries = []
        for line in lines:
            entry = self._parse(line)
            if entry is not None:
                entries.append(entry)
        return entries

    def _parse(self, line: str) -> Entry | None:
        parts = line.split(" ", 3)
        if len(parts) < 3:
            return None
        stamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else ""
        if tag == "P":
            self.partial[stream] = self.partial.get(stream, "") + text
            return None
        text = self.partial.pop(stream, "") + text
        return Entry(stamp, self.app, stream, text)


def sort_key(stamp: str) -> str:
    """RFC 3339 UTC stamps as sortable text (Go's RFC3339Nano trims trailing zeros)."""
    base, dot, frac = stamp.partition(".")
    digits = "".join(c for c in frac if c.isdigit()) if dot else ""
    return f"{base.rstrip('Z')}.{digits.ljust(9, '0')}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", help="pod UUID or unique prefix")
    parser.add_argument("--app", default=None, help="only this app's output")
    add_bool(parser, "--follow", False, "keep printing new output until the pod exits")
    parser.add_argument(
        "--tail", type=int, default=-1, metavar="N", help="only the last N lines (default: all)"
    )


def emit(entries: list[Entry], prefix: bool) -> None:
    for entry in entries:
        out = sys.stderr if entry.stream == "stderr" else sys.stdout
        out.write(f"{entry.app}: {entry.text}\n" if prefix else f"{entry.text}\n")
    sys.stdout.flush()
    sys.stderr.flush()


def follow(pod: Pod, readers: list[LogReader], prefix: bool) -> None:
    logs_dir = pod.file(abi.LOGS_DIR)
    with Inotify() as ino:
        ino.watch(logs_dir, IN_CREATE | IN_MODIFY | IN_MOVED_TO)
        watcher = ExitWatcher(pod)
        while True:
            emit([e for r in readers for e in r.read()], prefix)
            if watcher.exited.is_set():
                emit([e for r in readers for e in r.read()], prefix)  # the last words
                return
            select.select([ino.fileno(), watcher.fileno()], [], [])
            ino.drain()


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    pod = lookup(pods_root(opts, "logs"), args.uuid)
    names = app_names(pod) if args.app is None else [choose_app(pod, args.app)]
    if args.tail < -1:
        raise UsageError("--tail: must be a number of lines (0 or more)")
    readers = [LogReader(name, pod.file(abi.app_log(name))) for name in names]
    prefix = len(names) > 1
    entries = [e for r in readers for e in r.read()]
    entries.sort(key=lambda e: sort_key(e.stamp))
    if args.tail >= 0:
        entries = entries[len(entries) - args.tail :] if args.tail else []
    emit(entries, prefix)
    if args.follow:
        follow(pod, readers, prefix)
    return 0
