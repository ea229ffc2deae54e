"""Filesystem helpers shared by the cgroup v1 and v2 backends: counters, subtrees, processes,
killing what is left and removing directories."""

from __future__ import annotations

import errno
import os

from rkt.host.signals import signal
from rkt.paths import Path

_KILL_WAIT_MS = 5000

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable


def counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def oom_kill_count(events: Path | None) -> int:
    """The ``oom_kill N`` counter of a v1 ``memory.oom_control`` or v2 ``memory.events`` file
    (0 when there is none or it cannot be read)."""
    try:
        return 0 if events is None else counter(events.read_text(), "oom_kill")
    except OSError:
        return 0


def subtree(root: Path) -> list[Path]:
    """``root`` and every cgroup below it, parents first; [] when it is gone."""
    if not root.is_dir():
        return []
    out = [root]
    for top, dirnames, _ in os.walk(root):
        out.extend(Path(top) / name for name in dirnames)
    return out


def read_procs(cgroup_dir: Path) -> list[int]:
    try:
        return [int(line) for line in (cgroup_dir / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def kill_and_wait(pids: list[int]) -> None:
    """SIGKILL each pid through a pidfd (no pid-reuse race) and wait until they have exited."""
    import select  # only here: not on a pod's start

    poller = select.poll()
    fds = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        fds.append(fd)
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        poller.register(fd, select.POLLIN)
    try:
        pending = set(fds)
        while pending:
            events = poller.poll(_KILL_WAIT_MS)
            if not events:
                break  # unkillable (D state): rmdir will say EBUSY, which we tolerate
            for fd, _ in events:
                poller.unregister(fd)
                pending.discard(fd)
    finally:
        for fd in fds:
            os.close(fd)


def remove_dir(path: Path) -> None:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        # A task that was killed may linger until its parent reaps it; give it one more pass.
        kill_and_wait(read_procs(path))
        try:
            path.rmdir()
        except FileNotFoundError:
            pass


def processes(dirs: Iterable[Path]) -> list[int]:
    """Every process in the cgroups ``dirs`` and below them."""
    pids: set[int] = set()
    for d in dirs:
        for sub in subtree(d):
            pids.update(read_procs(sub))
    return sorted(pids)
