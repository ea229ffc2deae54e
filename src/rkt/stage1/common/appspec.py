"""An app's launch, fully resolved before any process is forked: what to exec, with which
environment, user, groups, working directory, capability bounding and ambient sets,
no_new_privs, seccomp policy, masked paths, resource limits, root filesystem options and volume
mounts.

Resolution follows appc: the pod manifest's ``app`` (if present) stands in for the image's, the
environment is the image's with the pod's overrides and ``AC_APP_NAME`` on top and a default
``PATH`` (ace.md "Execution Environment"); the bounding set is rkt's 14 capabilities unless a
``capabilities-retain-set``/``-remove-set`` isolator or ``--insecure-options=capabilities`` says
otherwise (rkt's capabilities-guide, ``caps.py``); seccomp, masks and limits come from their
sibling modules. The resolved ``AppSpec`` is saved as JSON so ``enter`` applies exactly what the
app got.

Imports only the standard library, ``rkt.abi``, ``rkt.errors`` and siblings (``NameFile`` is
``namefile``'s, re-exported); the manifests are the
lean views of ``manifest.py``, and ``rkt.schema.isolators`` is imported only for an app that has
isolators.
"""

from __future__ import annotations

from rkt import abi, jsonio
from rkt.errors import PodError, RktError
from rkt.paths import Path
from rkt.records import NamedTuple
from rkt.stage1.common.caps import resolve_capabilities
from rkt.stage1.common.manifest import App, PodApp, PodManifest, Volume
from rkt.stage1.common.namefile import NameFile as NameFile
from rkt.stage1.common.poddir import PRIVATE_DIR, PodDir
from rkt.stage1.common.resources import AppLimits, resolve_limits
from rkt.stage1.common.seccomp import SeccompPolicy, resolve_seccomp
from rkt.stage1.common.users import resolve_group, resolve_user

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

COPY_UP_DIR = f"{PRIVATE_DIR}/copy-up"  # one marker per copied-up volume (copyup.py)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class VolumeMount(NamedTuple):
    source: str  # host path
    target: str  # absolute path inside the app
    read_only: bool
    recursive: bool
    # Docker copy-up (copyup.py): the once-per-pod marker file, set only for the app that
    # fills this implicit volume from its image (pod annotation ``rkt.local/copy-up/<volume>``).
    copy_up: str | None = None


class AppSpec(NamedTuple):
    name: str
    exec: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    uid: int
    gid: int
    supplementary_gids: tuple[int, ...]
    working_dir: str
    capabilities: tuple[int, ...] | None  # the bounding set; None keeps the caller's
    no_new_privs: bool
    read_only_rootfs: bool
    lower_rootfs: str
    mounts: tuple[VolumeMount, ...] = ()
    ambient: tuple[int, ...] = ()
    seccomp: SeccompPolicy | None = None
    mask_paths: bool = False
    limits: AppLimits = AppLimits()
    name_files: tuple[NameFile, ...] = ()

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_json(self) -> bytes:
        obj = self._asdict()
        obj["mounts"] = [m._asdict() for m in self.mounts]
        obj["name_files"] = [n._asdict() for n in self.name_files]
        obj["limits"] = self.limits.to_json_obj()
        obj["seccomp"] = None if self.seccomp is None else self.seccomp.to_json_obj()
        return jsonio.dumps(obj).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AppSpec:
        obj: dict[str, Any] = jsonio.loads(data)
        caps = obj["capabilities"]
        return cls(
            name=obj["name"],
            exec=tuple(obj["exec"]),
            env=tuple((k, v) for k, v in obj["env"]),
            uid=obj["uid"],
            gid=obj["gid"],
            supplementary_gids=tuple(obj["supplementary_gids"]),
            working_dir=obj["working_dir"],
            capabilities=None if caps is None else tuple(caps),
            no_new_privs=obj["no_new_privs"],
            read_only_rootfs=obj["read_only_rootfs"],
            lower_rootfs=obj["lower_rootfs"],
            mounts=tuple(VolumeMount(**m) for m in obj["mounts"]),
            ambient=tuple(obj.get("ambient", ())),
            seccomp=None
            if obj.get("seccomp") is None
            else SeccompPolicy.from_json_obj(obj["seccomp"]),
            mask_paths=bool(obj.get("mask_paths", False)),
            limits=AppLimits.from_json_obj(obj.get("limits") or {}),
            name_files=tuple(NameFile(**m) for m in obj.get("name_files") or ()),
        )


def app_spec_path(pod: PodDir, app: str) -> Path:
    return pod.file(f"{PRIVATE_DIR}/apps/{app}.json")


def compute_env(app: App, image_app: App | None, name: str) -> tuple[tuple[str, str], ...]:
    """ace.md: the image's environment, the pod's app overrides, AC_APP_NAME, default PATH."""
    env: dict[str, str] = {}
    if image_app is not None and image_app is not app:
        env.update((e.name, e.value) for e in image_app.environment)
    env.update((e.name, e.value) for e in app.environment)
    env.setdefault("PATH", DEFAULT_PATH)
    env["AC_APP_NAME"] = name
    return tuple(env.items())


def _typed(name: str, isolator: Any) -> Any:
    from rkt.schema.isolators import parse_isolator

    try:
        return parse_isolator(isolator)
    except RktError as exc:
        raise PodError(f'isolator "{name}": {exc.message}') from exc


def _volume_mounts(
    pod: PodDir, manifest: PodManifest, pod_app: PodApp, app: App
) -> list[VolumeMount]:
    out = []
    read_only_points = {mp.name for mp in app.mount_points if mp.read_only}
    for mount in pod_app.mounts:
        volume: Volume | None = mount.app_volume or manifest.volume(mount.volume)
        if volume is None:
            raise PodError(f'app "{pod_app.name}": no volume "{mount.volume}"')
        copy_up = None
        if volume.kind == "host":
            source = str(volume.source)
        else:
            source = str(pod.file(f"{abi.VOLUMES_DIR}/{volume.name}"))
            marked = manifest.annotation(abi.COPY_UP_ANNOTATION + volume.name)
            if marked == pod_app.name and mount.app_volume is None:
                copy_up = str(pod.file(f"{COPY_UP_DIR}/{volume.name}"))
        out.append(
            VolumeMount(
                source=source,
                target=mount.path,
                read_only=volume.read_only or mount.volume in read_only_points,
                # rkt binds host volumes recursively unless told otherwise.
                recursive=volume.recursive is not False,
                copy_up=copy_up,
            )
        )
    return out


def build_app_spec(
    pod: PodDir, manifest: PodManifest, pod_app: PodApp, insecure: frozenset[str]
) -> AppSpec:
    name = pod_app.name
    image_app = pod.read_image_manifest(name).app
    app = pod_app.app or image_app
    if app is None:
        raise PodError(f'app "{name}": neither the image nor the pod manifest says what to run')
    if not app.exec:
        raise PodError(f'app "{name}": has no exec')
    lower = str(pod.app_lower_rootfs(name))
    typed = [_typed(i.name, i) for i in app.isolators]
    cap_sets: list[Any] = []
    seccomp_sets: list[Any] = []
    no_new_privs = False
    if typed:  # the isolator classes only for an app that has isolators (lean run path)
        from rkt.schema.isolators import CapabilitySet, NoNewPrivileges, SeccompSet

        cap_sets = [t for t in typed if isinstance(t, CapabilitySet)]
        seccomp_sets = [t for t in typed if isinstance(t, SeccompSet)]
        no_new_privs = any(isinstance(t, NoNewPrivileges) and t.enabled for t in typed)
    uid = resolve_user(lower, name, app.user)
    caps = resolve_capabilities(cap_sets, uid, insecure)
    try:
        seccomp = resolve_seccomp(seccomp_sets, insecure)
        limits = resolve_limits(typed, app.isolators)
    except RktError as exc:
        raise PodError(f'app "{name}": {exc.message}') from exc
    return AppSpec(
        name=name,
        exec=app.exec,
        env=compute_env(app, image_app, name),
        uid=uid,
        gid=resolve_group(lower, name, app.group),
        supplementary_gids=app.supplementary_gids,
        working_dir=app.working_directory or "/",
        capabilities=caps.bounding,
        # rkt's default is off; we set it whenever seccomp is on (as Docker), and the isolator
        # can only turn it on: loading a filter without CAP_SYS_ADMIN needs it anyway.
        no_new_privs=seccomp is not None or no_new_privs,
        read_only_rootfs=pod_app.read_only_rootfs,
        lower_rootfs=lower,
        mounts=tuple(_volume_mounts(pod, manifest, pod_app, app)),
        ambient=caps.ambient,
        seccomp=seccomp,
        mask_paths="paths" not in insecure,
        limits=limits,
    )
