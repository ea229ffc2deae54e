"""Pods on disk: the directory state machine, with no daemon (rkt's Documentation/devel/
pod-lifecycle.md).

A pod is a directory under ``<dir>/pods/<phase>/<uuid>``; the phase directory is the state and an
``flock`` on the pod directory means "a process is alive for it". Every transition is one
``rename(2)``, so any reader sees the pod in exactly one phase; a reader that loses a race with a
rename simply looks again.

| phase dir        | locked means              | unlocked means            |
|------------------|---------------------------|---------------------------|
| embryo           | being created             | (abandoned creation)      |
| prepare          | preparing                 | aborted prepare           |
| prepared         | (being run)               | prepared                  |
| run              | running                   | exited                    |
| exited-garbage   | exited, being deleted     | exited, marked for gc     |
| garbage          | being deleted             | aborted prepare, marked   |

Imports only ``rkt.errors`` and ``rkt.abi``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from rkt import abi, textcheck
from rkt.errors import AmbiguousError, NotFoundError, PodError
from rkt.paths import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EMBRYO, PREPARE, PREPARED, RUN, EXITED_GARBAGE, GARBAGE = (
    "embryo",
    "prepare",
    "prepared",
    "run",
    "exited-garbage",
    "garbage",
)
PHASES = (EMBRYO, PREPARE, PREPARED, RUN, EXITED_GARBAGE, GARBAGE)

# State strings as rkt prints them.
STATE_EMBRYO = "embryo"
STATE_PREPARING = "preparing"
STATE_ABORTED = "aborted prepare"
STATE_PREPARED = "prepared"
STATE_RUNNING = "running"
STATE_EXITED = "exited"
STATE_DELETING = "deleting"
STATE_EXITED_DELETING = "exited deleting"
STATE_EXITED_GARBAGE = "exited garbage"
STATE_GARBAGE = "garbage"

# A pattern, compiled (and cached by re) on first use: `rkt run` never checks a UUID.


class PodLock:
    """An flock on a pod directory; the descriptor follows the directory across renames."""

    def __init__(self, path: Path) -> None:
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise PodError(f'pod "{path.name}": cannot open: {exc.strerror}') from exc

    def try_exclusive(self) -> bool:
        return self._flock(fcntl.LOCK_EX | fcntl.LOCK_NB)

    def exclusive(self) -> None:
        self._flock(fcntl.LOCK_EX)

    def try_shared(self) -> bool:
        return self._flock(fcntl.LOCK_SH | fcntl.LOCK_NB)

    def shared(self) -> None:
        self._flock(fcntl.LOCK_SH)

    def _flock(self, flags: int) -> bool:
        try:
            fcntl.flock(self.fd, flags)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        return True

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def inheritable_fd(self) -> int:
        """The descriptor, made inheritable for the stage1 (RKT_LOCK_FD)."""
        os.set_inheritable(self.fd, True)
        return self.fd


def is_uuid(text: str) -> bool:
    return textcheck.is_uuid(text)


def new_uuid() -> str:
    """A random UUID (RFC 4122 version 4), spelled as ``uuid.uuid4()`` would; made here because
    importing ``uuid`` pulls in ``platform`` (~3 ms on every ``rkt run``)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Pod:
    """A pod directory as found at one moment.

    A plain class, not a dataclass: ``rkt run-prepared`` and ``rkt list`` need nothing else from
    ``dataclasses``, whose import (with ``inspect``) costs them ~7 ms.
    """

    __slots__ = ("_path", "_phase", "pods_root", "uuid")

    def __init__(self, pods_root: Path, uuid: str, phase: str) -> None:
        self.pods_root = pods_root
        self.uuid = uuid
        self._set_phase(phase)

    def __repr__(self) -> str:
        return f"Pod({str(self.pods_root)!r}, {self.uuid!r}, {self._phase!r})"

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._path = self.pods_root / phase / self.uuid  # made once: `rkt list` asks per file

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def path(self) -> Path:
        return self._path

    def file(self, rel: str) -> Path:
        return self.path / rel

    # state --------------------------------------------------------------------------------------

    def is_locked(self) -> bool:
        """True if some process holds the pod's lock (probed with a shared non-blocking flock)."""
        try:
            lock = PodLock(self.path)
        except FileNotFoundError:
            return False
        try:
            return not lock.try_shared()
        finally:
            lock.close()

    def state(self) -> str:
        if self.phase == EMBRYO:
            return STATE_EMBRYO
        if self.phase == PREPARED:
            return STATE_PREPARED
        locked = self.is_locked()  # only where it decides the state (the table above)
        if self.phase == PREPARE:
            return STATE_PREPARING if locked else STATE_ABORTED
        if self.phase == RUN:
            return STATE_RUNNING if locked else STATE_EXITED
        if self.phase == EXITED_GARBAGE:
            return STATE_EXITED_DELETING if locked else STATE_EXITED_GARBAGE
        return STATE_DELETING if locked else STATE_GARBAGE

    def is_running(self) -> bool:
        return self.phase == RUN and self.is_locked()

    def is_exited(self) -> bool:
        return (self.phase == RUN and not self.is_locked()) or self.phase == EXITED_GARBAGE

    def is_ready(self) -> bool:
        """The stage1 says every app has been started and the networks are up: its
        ``supervisor-status`` is the symlink to ``ready`` (docs/stage1-abi.md §2)."""
        try:
            return os.readlink(self.file(abi.SUPERVISOR_STATUS)) == "ready"
        except OSError:
            return False

    # times --------------------------------------------------------------------------------------

    def created_at(self) -> float | None:
        return _mtime(self.file(abi.POD_CREATED))

    def started_at(self) -> float | None:
        return _mtime(self.file(abi.PID_FILE))

    def gc_marked_at(self) -> float | None:
        if self.phase not in (EXITED_GARBAGE, GARBAGE):
            return None
        try:
            return self.path.stat().st_ctime
        except FileNotFoundError:
            return None

    def pid(self) -> int | None:
        """The pod init's host pid, from the stage1's ``pid`` file (docs/stage1-abi.md; not
        ``ppid``, the stage1 supervisor's, whose namespaces are not the pod's)."""
        try:
            text = self.file(abi.PID_FILE).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return int(text) if text.isascii() and text.isdigit() else None

    def read_manifest(self) -> bytes:
        try:
            return self.file(abi.POD_MANIFEST).read_bytes()
        except FileNotFoundError as exc:
            raise PodError(f'pod "{self.uuid}": no pod manifest (still being prepared?)') from exc

    # transitions -------------------------------------------------------------------------------

    def move_to(self, phase: str) -> None:
        """Rename the pod directory into another phase (the caller holds what the table needs)."""
        target = self.pods_root / phase / self.uuid
        try:
            os.rename(self.path, target)
        except FileNotFoundError as exc:
            raise PodError(f'pod "{self.uuid}": vanished while moving to {phase}') from exc
        self._set_phase(phase)


def ensure_pods_root(data_dir: Path) -> Path:
    root = data_dir / "pods"
    for phase in PHASES:
        (root / phase).mkdir(parents=True, exist_ok=True, mode=0o750)
    return root


def create_embryo(pods_root: Path) -> tuple[Pod, PodLock]:
    """A new pod in ``prepare``, exclusively locked by the caller."""
    pod_uuid = new_uuid()
    embryo = pods_root / EMBRYO / pod_uuid
    embryo.mkdir(mode=0o750)
    lock = PodLock(embryo)
    lock.exclusive()
    pod = Pod(pods_root, pod_uuid, EMBRYO)
    (embryo / abi.POD_CREATED).touch()
    pod.move_to(PREPARE)
    return pod, lock


def abandon_pod(pod: Pod, lock: PodLock, on_abort: Callable[[], None] | None = None) -> None:
    """A pod whose preparation failed becomes garbage (rkt's 'aborted prepare'), removed by the
    next gc; ``on_abort`` undoes what was started for it first, while it is still locked."""
    if on_abort is not None:
        on_abort()
    try:
        pod.move_to("garbage")
    except (PodError, OSError):
        pass
    lock.close()


def iter_pods(pods_root: Path) -> Iterator[Pod]:
    """Every pod, each seen once even while it is being renamed between phases."""
    seen: set[str] = set()
    for phase in PHASES:
        try:
            names = os.listdir(pods_root / phase)
        except FileNotFoundError:
            continue
        for name in sorted(names):
            if name in seen or not is_uuid(name):
                continue
            seen.add(name)
            yield Pod(pods_root, name, phase)


def find_pod(pods_root: Path, uuid_or_prefix: str) -> Pod:
    """A pod by full UUID or unique prefix; looks twice to ride out a concurrent rename."""
    text = uuid_or_prefix.strip().lower()
    if not textcheck.is_lower_hex(text.replace("-", "")):
        raise NotFoundError(f'pod "{uuid_or_prefix}": not a pod UUID')
    for _ in range(3):
        matches = {pod.uuid: pod for pod in iter_pods(pods_root) if pod.uuid.startswith(text)}
        if len(matches) > 1:
            raise AmbiguousError(f'pod "{uuid_or_prefix}": UUID prefix matches {len(matches)} pods')
        if matches:
            pod = next(iter(matches.values()))
            if pod.path.exists():
                return pod
            continue
        break
    raise NotFoundError(f'pod "{uuid_or_prefix}": no such pod')


def read_uuid_file(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise PodError(f'uuid file "{path}": {exc.strerror}') from exc
    except UnicodeDecodeError:
        text = ""  # (not text: no UUID)
    if not is_uuid(text):
        raise PodError(f'uuid file "{path}": does not contain a pod UUID')
    return text


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace ``path`` by one rename: readers see the old file or the new one, whole.

    ``durable=False`` skips the fsync: a power cut may then leave the file empty. For the pod
    files stage0 writes on the way to a run (the pod manifest, the stage1 config) nothing is lost
    by that: nothing else in a pod directory is synced either (appsinfo, the stage1 tree, the
    phase renames), so a pod does not survive a power cut intact with or without the fsync.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None


def wait_for_exit(pod: Pod, timeout: float | None) -> bool:
    """Block until the pod's lock is free (it exited); False on timeout."""
    try:
        lock = PodLock(pod.path)
    except FileNotFoundError:
        return True
    try:
        if timeout is None:
            lock.shared()
            return True
        deadline = time.monotonic() + timeout
        while True:
            if lock.try_shared():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _wait_lock_with_timeout(lock, min(remaining, 0.5))
    finally:
        lock.close()


def _wait_lock_with_timeout(lock: PodLock, seconds: float) -> None:
    """A blocking flock bounded by an alarm, so waiting is event-driven, not a polling sleep."""
    import signal

    def _expire(_sig: int, _frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        lock.shared()
    except (TimeoutError, InterruptedError):
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
