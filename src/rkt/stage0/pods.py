"""Pod inspection and clean-up: status, list, stop, gc, rm. Never prints or exits.

Pod status is read cheaply from the pod directory (lock probe, ``pid``, the status files a stage1
keeps), so ``rkt list`` costs the same whether the pods run or not, and no stage1 is called.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rkt import abi
from rkt.errors import PodError
from rkt.pod.pod import (
    EXITED_GARBAGE,
    GARBAGE,
    PREPARE,
    PREPARED,
    RUN,
    Pod,
    PodLock,
    iter_pods,
)
from rkt.stage0.mounts import unmount_under
from rkt.stage0.run import call_entrypoint
from rkt.store.locks import remove_tree


@dataclass
class AppInfo:
    name: str
    image_name: str
    image_id: str
    state: str = "unknown"
    exit_code: int | None = None
    pid: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    oom_killed: bool = False

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


@dataclass
class PodInfo:
    uuid: str
    state: str
    phase: str
    pid: int | None
    created_at: float | None
    started_at: float | None
    gc_marked_at: float | None
    apps: list[AppInfo] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)

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


def pod_info(pod: Pod) -> PodInfo:
    state = pod.state()
    info = PodInfo(
        pod.uuid,
        state,
        pod.phase,
        pod.pid() if pod.phase in (RUN, EXITED_GARBAGE) else None,
        pod.created_at(),
        pod.started_at(),
        pod.gc_marked_at(),
    )
    try:
        manifest = json.loads(pod.read_manifest())
    except (PodError, ValueError):
        return info
    for app in manifest.get("apps", []):
        name = app["name"]
        app_info = AppInfo(name, app.get("image", {}).get("name", ""), app["image"]["id"])
        status = _read_json(pod.file(abi.app_status_json(name)))
        if status:
            app_info.state = str(status.get("state", "unknown"))
            app_info.pid = status.get("pid")
            app_info.created_at = _sec(status.get("created"))
            app_info.started_at = _sec(status.get("started"))
            app_info.finished_at = _sec(status.get("finished"))
            code = status.get("exit_code")
            app_info.exit_code = int(code) if isinstance(code, int) else None
            app_info.oom_killed = status.get("oom_killed") is True
        code_file = pod.file(abi.app_status(name))
        if app_info.exit_code is None and code_file.exists():
            text = code_file.read_text().strip()
            app_info.exit_code = int(text) if text.lstrip("-").isdigit() else None
            app_info.state = "exited"
        if app_info.state == "running" and state != "running":
            app_info.state = "exited"  # the pod is gone; the stage1 had no time to say so
        if app_info.state == "unknown":
            app_info.state = "prepared" if pod.phase == PREPARED else "created"
        info.apps.append(app_info)
    info.networks = _networks(pod)
    return info


def _networks(pod: Pod) -> list[dict[str, Any]]:
    nets = _read_json(pod.file("net-info.json"))
    return list(nets) if isinstance(nets, list) else []


def _sec(ns: object) -> float | None:
    return float(ns) / 1e9 if isinstance(ns, int | float) and ns else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def list_pods(pods_root: Path) -> list[PodInfo]:
    return [pod_info(pod) for pod in iter_pods(pods_root)]


def pod_exit_code(info: PodInfo) -> int | None:
    """The pod's status as ``rkt run`` returned it: the first failing app's, else 0."""
    codes = [a.exit_code for a in info.apps if a.exit_code is not None]
    if not codes:
        return None
    failing = [c for c in codes if c != 0]
    return failing[0] if failing else 0


# stop / gc / rm ---------------------------------------------------------------------------------


def stop_pod(pod: Pod, *, force: bool) -> None:
    if not pod.is_running():
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}, not running')
    call_entrypoint(pod, abi.ANN_STOP, ["--force"] if force else [])


@dataclass
class GcReport:
    marked: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def gc_pods(pods_root: Path, *, grace: float, expire_prepared: float, mark_only: bool) -> GcReport:
    """rkt gc: mark exited and aborted pods (pass 1), delete marked ones past the grace period."""
    report = GcReport()
    now = time.time()
    for pod in list(iter_pods(pods_root)):
        try:
            if pod.phase == RUN and not pod.is_locked():
                pod.move_to(EXITED_GARBAGE)
                report.marked.append(pod.uuid)
            elif (pod.phase == PREPARE and not pod.is_locked()) or (
                pod.phase == PREPARED
                and (pod.created_at() or now) + expire_prepared < now
                and _try_lock(pod)
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
    try:
        lock = PodLock(pod.path)
    except FileNotFoundError:
        return
    try:
        if not lock.try_exclusive():
            raise PodError(f'pod "{pod.uuid}": is in use')
        if pod.phase == EXITED_GARBAGE and pod.file(abi.STAGE1_MANIFEST).exists():
            try:
                call_entrypoint(pod, abi.ANN_GC, [])
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
