"""The pod directory as a stage1 sees it (docs/stage1-abi.md §2): reading what stage0 wrote,
writing the stage1 files atomically.

Every entrypoint runs with the pod directory as its working directory; ``PodDir`` pins its
absolute path at start so later ``chdir``/``pivot_root`` cannot change what the paths mean.
Besides the ABI files, this stage1 keeps private state (the cgroup of each hierarchy, each app's
resolved launch) under ``stage1/rootfs/rkt/private/`` — inside its own root filesystem.

Imports only the standard library, ``rkt.abi``, ``rkt.errors`` and ``rkt.stage1.common.manifest``
(the lean manifest views; ``rkt.schema`` only to explain a malformed manifest).
"""

from __future__ import annotations

import os

from rkt import abi
from rkt.errors import PodError, RktError
from rkt.paths import Path
from rkt.stage1.common.manifest import (
    ImageManifest,
    PodManifest,
    load_image_manifest,
    load_pod_manifest,
)

PRIVATE_DIR = "stage1/rootfs/rkt/private"
CGROUP_STATE = f"{PRIVATE_DIR}/cgroups.json"
CONTROL_SOCKET = f"{PRIVATE_DIR}/control.sock"  # a mutable pod's (rkt.stage1.common.control)
NET_JOURNAL = f"{PRIVATE_DIR}/net.json"  # the CNI journal (rkt.stage1.ns.network); none without CNI


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it over (readers see old or new)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.rename(tmp, path)


def symlink_atomic(target: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.rename(tmp, path)


class PodDir:
    def __init__(self, path: Path, uuid: str) -> None:
        self.path = path.resolve()
        self.uuid = uuid

    @classmethod
    def from_cwd(cls, uuid: str) -> PodDir:
        return cls(Path(os.getcwd()), uuid)

    @classmethod
    def relative(cls, uuid: str) -> PodDir:
        """The pod directory that is the working directory, by relative paths: they stay valid
        while the directory is renamed (stage0 moves it between phases)."""
        pod = cls.__new__(cls)
        pod.path = Path(".")
        pod.uuid = uuid
        return pod

    def file(self, rel: str) -> Path:
        return self.path / rel

    def read_manifest(self) -> PodManifest:
        try:
            return load_pod_manifest(self.file(abi.POD_MANIFEST).read_bytes())
        except OSError as exc:
            raise PodError(f'pod "{self.uuid}": cannot read its manifest: {exc.strerror}') from exc
        except RktError as exc:
            raise PodError(f'pod "{self.uuid}": {exc.message}') from exc

    def read_image_manifest(self, app: str) -> ImageManifest:
        path = self.file(abi.appsinfo(app)) / "manifest"
        try:
            return load_image_manifest(path.read_bytes())
        except OSError as exc:
            raise PodError(f'app "{app}": cannot read its image manifest: {exc.strerror}') from exc
        except RktError as exc:
            raise PodError(f'app "{app}": {exc.message}') from exc

    def app_lower_rootfs(self, app: str) -> Path:
        """The app's read-only image tree (the ``appsinfo/<app>/rootfs`` symlink, resolved)."""
        link = self.file(abi.appsinfo(app)) / "rootfs"
        try:
            target = link.resolve(strict=True)
        except OSError as exc:
            raise PodError(f'app "{app}": its rootfs is missing ({link})') from exc
        if not target.is_dir():
            raise PodError(f'app "{app}": its rootfs {target} is not a directory')
        return target

    def read_pid(self) -> int | None:
        try:
            return int(self.file(abi.PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def ensure_stage1_dirs(self) -> None:
        for rel in (abi.STATUS_DIR, abi.LOGS_DIR, abi.ENV_DIR, abi.STAGE2_DIR, PRIVATE_DIR):
            self.file(rel).mkdir(parents=True, exist_ok=True)
