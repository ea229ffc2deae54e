"""What a pod is asked to be (``rkt run``/``prepare``/``app sandbox`` flags, or ``rkt app add``):
the records ``rkt.stage0.prepare`` lays a pod out from.

Records, not dataclasses: immutable and typed all the same, and created several times faster at
import. Light on purpose (no store, no ``sqlite3``): ``rkt run`` validates its request and
creates the pod before the store's modules are loaded (stage0/headstart.py).
"""

from __future__ import annotations

from rkt.paths import Path
from rkt.records import NamedTuple
from rkt.stage0.stage1_image import Stage1Choice

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

Pairs = tuple[tuple[str, str], ...]


class VolumeSpec(NamedTuple):
    name: str
    kind: str  # host | empty
    source: str | None = None
    read_only: bool = False
    recursive: bool | None = None
    mode: str = "0755"
    uid: int = 0
    gid: int = 0


class MountSpec(NamedTuple):
    volume: str
    target: str


class AppRequest(NamedTuple):
    image: str
    name: str | None = None
    exec_: str | None = None
    args: tuple[str, ...] = ()
    has_args: bool = False
    user: str | None = None
    group: str | None = None
    supplementary_gids: tuple[int, ...] | None = None
    working_dir: str | None = None
    environment: Pairs = ()
    readonly_rootfs: bool | None = None
    mounts: tuple[MountSpec, ...] = ()
    signature: Path | None = None
    annotations: Pairs = ()
    user_annotations: Pairs = ()
    user_labels: Pairs = ()
    isolators: tuple[dict[str, Any], ...] = ()


class PodRequest(NamedTuple):
    apps: tuple[AppRequest, ...]
    volumes: tuple[VolumeSpec, ...] = ()
    mounts: tuple[MountSpec, ...] = ()  # pod-wide --mount: applies to every app
    set_env: Pairs = ()
    set_env_file: Pairs = ()
    inherit_env: bool = False
    pull_policy: str = "new"
    stage1: Stage1Choice = Stage1Choice()  # frozen: one shared default is safe
    pod_manifest: Path | None = None
    annotations: Pairs = ()
    user_annotations: Pairs = ()
    user_labels: Pairs = ()
    mutable: bool = False  # rkt app sandbox: may have no apps; apps are added while it runs
