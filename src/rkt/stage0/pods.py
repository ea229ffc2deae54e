"""Pod inspection and clean-up: status, list, stop, gc, rm. Never prints or exits.

Pod status is read cheaply from the pod directory (lock probe, ``pid``, the status files a stage1
keeps), so ``rkt list`` costs the same whether the pods run or not, and no stage1 is called.
``rkt list`` asks for a summary (``app_status=False``): per pod a lock probe, two ``stat``s, the
pod manifest and ``net-info.json``, nothing per app. Paths inside a pod are plain strings here:
``pathlib`` objects cost more than the system calls on this path.

The records are plain classes filled in as the pod is read (``dataclasses`` and ``inspect`` would
add ~7 ms to ``rkt list``), and the stop/gc machinery (``rkt.stage0.run``, ``mounts``,
``rkt.store.locks``) is imported by the functions that use it, not by ``list`` or ``status``.
"""

from __future__ import annotations

import os
import time

from rkt import abi, jsonio
from rkt.errors import PodError
from rkt.paths import Path
from rkt.pod.pod import (
    EMBRYO,
    EXITED_GARBAGE,
    GARBAGE,
    PREPARE,
    PREPARED,
    RUN,
    Pod,
    PodLock,
    iter_pods,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


class AppInfo:
    """One app of a pod as its status files describe it (``state`` "unknown" until read)."""

    __slots__ = (
        "created_at",
        "exit_code",
        "finished_at",
        "image_id",
        "image_name",
        "image_version",
        "name",
        "oom_killed",
        "pid",
        "started_at",
        "state",
    )

    def __init__(
        self,
        name: str,
        image_name: str,
        image_id: str,
        state: str = "unknown",
        exit_code: int | None = None,
        *,
        image_version: str | None = None,
    ) -> None:
        self.name = name
        self.image_name = image_name
        self.image_id = image_id
        self.image_version = image_version  # the image's "version" label, as the manifest has it
        self.state = state
        self.exit_code = exit_code
        self.pid: int | None = None
        self.created_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.oom_killed = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "image_name": self.image_name,
            "image_id": self.image_id,
            "exit_code": self.exit_code,
            "created_at": _ns(self.created_at),
            "started_at": _ns(self.started_at),
            "finished_at": _ns(self.finished_at),
            "oom_killed": self.oom_killed,
        }


class PodInfo:
    """A pod as read at one moment: state, times, apps and networks."""

    __slots__ = (
        "apps",
        "created_at",
        "gc_marked_at",
        "networks",
        "phase",
        "pid",
        "started_at",
        "state",
        "uuid",
    )

    def __init__(
        self,
        uuid: str,
        state: str,
        phase: str,
        pid: int | None,
        created_at: float | None,
        started_at: float | None,
        gc_marked_at: float | None,
    ) -> None:
        self.uuid = uuid
        self.state = state
        self.phase = phase
        self.pid = pid
        self.created_at = created_at
        self.started_at = started_at
        self.gc_marked_at = gc_marked_at
        self.apps: list[AppInfo] = []
        self.networks: list[dict[str, Any]] = []

    @property
    def exited_at(self) -> float | None:
        times = [a.finished_at for a in self.apps if a.finished_at]
        return max(times) if times and self.state not in ("running",) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.uuid,
            "state": self.state,
            "networks": self.networks,
            "app_names": [a.name for a in self.apps],
            "apps": [a.to_json() for a in self.apps],
            "pid": self.pid if self.pid is not None else -1,
            "created_at": _ns(self.created_at),
            "started_at": _ns(self.started_at),
            "gc_marked_at": _ns(self.gc_marked_at),
            "exited_at": _ns(self.exited_at),
        }


def _ns(ts: float | None) -> int | None:
    return None if ts is None else int(ts * 1e9)


def pod_info(pod: Pod, *, app_status: bool = True) -> PodInfo:
    """What ``rkt status`` shows; with ``app_status=False`` what ``rkt list`` shows: apps with
    their names and images only (no status files read), and no pid or gc mark time."""
    state = pod.state()
    base = str(pod.path)
    detailed = app_status and pod.phase in (RUN, EXITED_GARBAGE)
    info = PodInfo(
        pod.uuid,
        state,
        pod.phase,
        pod.pid() if detailed else None,
        _mtime(f"{base}/{abi.POD_CREATED}"),
        _mtime(f"{base}/{abi.PID_FILE}"),
        pod.gc_marked_at() if app_status else None,
    )
    data = _read_file(f"{base}/{abi.POD_MANIFEST}")
    try:
        manifest = jsonio.loads(data) if data is not None else None
    except ValueError:
        manifest = None
    if manifest is None:
        return info  # still being prepared, or being deleted
    for app in manifest.get("apps", []):
        image = app["image"]
        app_info = AppInfo(
            app["name"], image.get("name", ""), image["id"], image_version=_version(image)
        )
        if app_status:
            _read_app_status(pod, base, state, app_info)
        info.apps.append(app_info)
    nets = _read_json(f"{base}/net-info.json")
    info.networks = list(nets) if isinstance(nets, list) else []
    return info


def _version(image: dict[str, Any]) -> str | None:
    for label in image.get("labels") or []:
        if label.get("name") == "version":
            return str(label.get("value", ""))
    return None


def _read_app_status(pod: Pod, base: str, pod_state: str, app_info: AppInfo) -> None:
    name = app_info.name
    status = _read_json(f"{base}/{abi.app_status_json(name)}")
    if status:
        app_info.state = str(status.get("state", "unknown"))
        app_info.pid = status.get("pid")
        app_info.created_at = _sec(status.get("created"))
        app_info.started_at = _sec(status.get("started"))
        app_info.finished_at = _sec(status.get("finished"))
        code = status.get("exit_code")
        app_info.exit_code = int(code) if isinstance(code, int) else None
        app_info.oom_killed = status.get("oom_killed") is True
    if app_info.exit_code is None:
        try:
            with open(f"{base}/{abi.app_status(name)}", "rb") as fh:
                text = fh.read().decode(errors="replace").strip()
        except (FileNotFoundError, NotADirectoryError):
            pass
        else:
            app_info.exit_code = int(text) if text.lstrip("-").isdigit() else None
            app_info.state = "exited"
    if app_info.state == "running" and pod_state != "running":
        app_info.state = "exited"  # the pod is gone; the stage1 had no time to say so
    if app_info.state == "unknown":
        app_info.state = "prepared" if pod.phase == PREPARED else "created"


def _sec(ns: object) -> float | None:
    return float(ns) / 1e9 if isinstance(ns, int | float) and ns else None


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_json(path: str) -> Any:
    data = _read_file(path)
    try:
        return None if data is None else jsonio.loads(data)
    except ValueError:
        return None


def _read_file(path: str) -> bytes | None:
    """The file's bytes, None if it cannot be read. Per pod, so with ``os`` calls: ``open()``
    costs ~7 us a file, and ~12 us a missing one (net-info.json of a pod without networks),
    against ~3 and ~2 (``rkt list`` reads two files of every pod)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def list_pods(pods_root: Path, *, app_status: bool = True) -> list[PodInfo]:
    return [pod_info(pod, app_status=app_status) for pod in iter_pods(pods_root)]


def pod_exit_code(info: PodInfo) -> int | None:
    """The pod's status as ``rkt run`` returned it: the first failing app's, else 0."""
    codes = [a.exit_code for a in info.apps if a.exit_code is not None]
    if not codes:
        return None
    failing = [c for c in codes if c != 0]
    return failing[0] if failing else 0


# stop / gc / rm ---------------------------------------------------------------------------------


def stop_pod(pod: Pod, *, force: bool) -> None:
    from rkt.stage0.run import call_entrypoint

    if not pod.is_running():
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}, not running')
    call_entrypoint(pod, abi.ANN_STOP, ["--force"] if force else [])


class GcReport:
    """What ``gc_pods`` did: pods marked, pods removed, and pods it failed to remove (why)."""

    __slots__ = ("failed", "marked", "removed")

    def __init__(self) -> None:
        self.marked: list[str] = []
        self.removed: list[str] = []
        self.failed: list[tuple[str, str]] = []


def gc_pods(pods_root: Path, *, grace: float, expire_prepared: float, mark_only: bool) -> GcReport:
    """rkt gc: mark exited and aborted pods (pass 1), delete marked ones past the grace period."""
    from rkt.stage0.headstart import EARLY_JOURNAL

    report = GcReport()
    now = time.time()
    for pod in list(iter_pods(pods_root)):
        try:
            if pod.phase == RUN and not pod.is_locked():
                pod.move_to(EXITED_GARBAGE)
                report.marked.append(pod.uuid)
            elif (
                (pod.phase == PREPARE and not pod.is_locked())
                or (
                    pod.phase == PREPARED
                    and (
                        (pod.created_at() or now) + expire_prepared < now
                        # networks started early: a `rkt run` died before it ran the pod (no
                        # `rkt prepare` starts any), and they must not wait for the expiry
                        or pod.file(EARLY_JOURNAL).exists()
                    )
                    and _try_lock(pod)
                )
                or (pod.phase == EMBRYO and _abandoned_embryo(pod, now))
            ):
                pod.move_to(GARBAGE)
                report.marked.append(pod.uuid)
        except (PodError, OSError):
            continue
    if mark_only:
        return report
    now = time.time()  # pass 1 just marked pods: their mark time is after the first reading
    for pod in list(iter_pods(pods_root)):
        if pod.phase not in (EXITED_GARBAGE, GARBAGE):
            continue
        marked = pod.gc_marked_at() or now
        if marked + grace > now:
            continue
        try:
            delete_pod(pod)
            report.removed.append(pod.uuid)
        except PodError as exc:
            report.failed.append((pod.uuid, exc.message))
    return report


EMBRYO_GRACE = 60.0
"""How old an unlocked embryo must be to be garbage: one is locked a moment after its directory
is made (pod.create_embryo), and moved on to ``prepare`` at once; only a creator killed in
between leaves one behind."""


def _abandoned_embryo(pod: Pod, now: float) -> bool:
    try:
        made = pod.path.stat().st_mtime
    except OSError:
        return False
    return made + EMBRYO_GRACE < now and not pod.is_locked()


def _try_lock(pod: Pod) -> bool:
    try:
        lock = PodLock(pod.path)
    except FileNotFoundError:
        return False
    try:
        return lock.try_exclusive()
    finally:
        lock.close()


def delete_pod(pod: Pod) -> None:
    """Call the stage1 gc entrypoint, then remove the pod directory (busy mounts never fail it)."""
    from rkt.stage0.headstart import EARLY_JOURNAL, undo_orphaned
    from rkt.stage0.mounts import unmount_under
    from rkt.stage0.run import call_entrypoint
    from rkt.store.locks import remove_tree

    try:
        lock = PodLock(pod.path)
    except FileNotFoundError:
        return
    try:
        if not lock.try_exclusive():
            raise PodError(f'pod "{pod.uuid}": is in use')
        # An aborted pod too: ``rkt run`` may have started its networks before it failed
        # (stage0/headstart.py), and only the stage1 knows how to undo them.
        try:
            if pod.file(abi.STAGE1_MANIFEST).exists():
                call_entrypoint(pod, abi.ANN_GC, [])
            elif pod.file(EARLY_JOURNAL).exists():  # killed before its stage1 was laid out
                undo_orphaned(pod)
        except PodError as exc:
            # A broken stage1 must not make the pod immortal; its own state is what it is.
            os.write(2, f"rkt: warning: {exc.message}\n".encode())
        unmount_under(pod.path)
        remove_tree(pod.path)
    finally:
        lock.close()


def remove_pod(pod: Pod) -> None:
    """rkt rm: an exited (or aborted/prepared) pod, at once, without a grace period."""
    if pod.phase == RUN:
        if pod.is_locked():
            raise PodError(f'pod "{pod.uuid}": is running; stop it first')
        pod.move_to(EXITED_GARBAGE)
    elif pod.phase in (PREPARE, PREPARED):
        if not _try_lock(pod):
            raise PodError(f'pod "{pod.uuid}": is in use')
        pod.move_to(GARBAGE)
    elif pod.phase == "embryo":
        raise PodError(f'pod "{pod.uuid}": is being created')
    delete_pod(pod)
