"""Choosing the stage1 image for a pod, and generating the built-in flavors.

A built-in flavor is an ordinary ACI named ``coreos.com/rkt/stage1-<flavor>`` (label ``version`` =
the rkt version) whose entrypoints are tiny Python scripts running this installation's stage1
modules.
It is generated and imported into the store on first use; the annotation ``rkt.local/interpreter``
ties it to the interpreter that runs it, so two installs sharing a store each get their own.

The scripts run ``<interpreter> -IS``: no ``site`` import (no ``.pth`` processing,
``sitecustomize``, user site), which saves a few ms per entrypoint. The paths ``site`` would have
given them are computed here, when the image is generated, and written into each script: the
interpreter's ``purelib``/``platlib`` (third-party modules such as ``pyseccomp``) and the directory
holding the ``rkt`` package actually imported (an editable install's source tree, whether its
``.pth`` file or a finder maps it, or ``site-packages`` itself). The annotation
``rkt.local/entrypoint-format`` records the script format and those paths, so an image generated
by an older rkt, or for a checkout that has since moved, is not reused but generated again.

Selection order (rkt's Documentation/build-configure.md):
``--stage1-{url,path,name,hash,from-dir}``, else the ``stage1`` config kind, else the built-in
default flavor.
"""

from __future__ import annotations

import os
import sys

from rkt import __version__, abi, jsonio
from rkt.errors import ImageError, UsageError
from rkt.paths import Path
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from rkt.store.records import ImageRecord
    from rkt.store.store import Store

STAGE1_PREFIX = "coreos.com/rkt/stage1-"
DEFAULT_FLAVOR = "default"
INTERPRETER_ANNOTATION = "rkt.local/interpreter"
ENTRYPOINT_FORMAT_ANNOTATION = "rkt.local/entrypoint-format"
# 1 (no annotation): "-I" with site; 2: "-IS" and an explicit sys.path; 3: 2 + native programs;
# 4: 3 + rkt's module bundle (rkt/bundle.py); 5: 4 + rkt looked for in its own root first
ENTRYPOINT_FORMAT = "5"

# flavor -> (python package holding its entrypoint modules, entrypoint names it ships)
BUILTIN_FLAVORS: dict[str, str] = {
    "default": "rkt.stage1.ns",
}
_ENTRY_FILES = {
    abi.ANN_RUN: "run",
    abi.ANN_ENTER: "enter",
    abi.ANN_GC: "gc",
    abi.ANN_STOP: "stop",
    abi.ANN_APP_ADD: "app-add",
    abi.ANN_APP_START: "app-start",
    abi.ANN_APP_STOP: "app-stop",
    abi.ANN_APP_RM: "app-rm",
}
# flavor -> native programs its rootfs ships beside the entrypoints (src/rkt/stage1/native/*.c,
# built by `make setup` into NATIVE_DIR): the pod's resident processes (docs/architecture.md)
NATIVE_PROGRAMS: dict[str, tuple[str, ...]] = {
    "default": ("app-exec", "pod-init", "pod-supervisor", "run-waiter"),
}
# flavor -> data files its rootfs ships beside them, built by `make setup` too: app-exec's
# prebuilt default seccomp filter (rkt.stage1.ns.prebuilt)
NATIVE_FILES: dict[str, tuple[str, ...]] = {
    "default": ("seccomp-default",),
}
NATIVE_DIR = Path(__file__).resolve().parent.parent / "stage1" / "native" / "bin"
# entrypoint file -> (module in the flavor's package, function); default (file, "main")
_ENTRY_TARGETS = {
    "app-add": ("app", "main_add"),
    "app-start": ("app", "main_start"),
    "app-stop": ("app", "main_stop"),
    "app-rm": ("app", "main_rm"),
}


class Stage1Choice(NamedTuple):
    """What the user asked for; at most one field is set."""

    url: str | None = None
    path: Path | None = None
    name: str | None = None
    hash: str | None = None
    from_dir: str | None = None

    def given(self) -> list[str]:
        return [k for k in ("url", "path", "name", "hash", "from_dir") if getattr(self, k)]


class Stage1(NamedTuple):
    image: ImageRecord
    entrypoints: dict[str, str]
    interface_version: int


def builtin_name(flavor: str) -> str:
    return STAGE1_PREFIX + flavor


def _flavor_of(name: str) -> str | None:
    """The built-in flavor an image name asks for: ``coreos.com/rkt/stage1-<flavor>`` with no
    version or this rkt's (``:VERSION`` or ``,version=VERSION``). Another version is an image
    like any other, looked for in the store and fetched (a user may have imported one)."""
    head, _, labels = name.partition(",")
    bare, _, version = head.partition(":")
    for label in labels.split(",") if labels else ():
        key, _, value = label.partition("=")
        if key == "version":
            version = value
    if version and version != __version__:
        return None
    if bare.startswith(STAGE1_PREFIX) and bare[len(STAGE1_PREFIX) :] in BUILTIN_FLAVORS:
        return bare[len(STAGE1_PREFIX) :]
    return None


_entrypoint_paths: list[str] = []


def _venv_prefix() -> str | None:
    """The virtual environment this interpreter belongs to, found as ``site`` finds it (a
    ``pyvenv.cfg`` beside or above the executable's directory): the ``rkt`` launcher runs Python
    without ``site``, so ``sys.prefix`` is not the venv's there."""
    if sys.prefix != sys.base_prefix:
        return sys.prefix
    bin_dir = os.path.dirname(os.path.abspath(sys.executable))
    for where in (bin_dir, os.path.dirname(bin_dir)):
        if os.path.isfile(os.path.join(where, "pyvenv.cfg")):
            return os.path.dirname(bin_dir)
    return None


def entrypoint_paths() -> list[str]:
    """What the scripts put on ``sys.path`` (``site`` is off): site-packages, then rkt's root."""
    if not _entrypoint_paths:
        import rkt

        venv = _venv_prefix()
        if venv is not None:  # a venv has one scheme: no need for sysconfig (~1 ms)
            version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
            libs = [f"{venv}/{d}/{version}/site-packages" for d in ("lib", sys.platlibdir)]
        else:
            import sysconfig

            libs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        package_dir = os.path.dirname(os.path.realpath(rkt.__file__))
        for path in (*libs, os.path.dirname(package_dir)):
            if path not in _entrypoint_paths:
                _entrypoint_paths.append(path)
    return list(_entrypoint_paths)


def native_identity(flavor: str) -> str:
    """Size and mtime of each native program the flavor ships: a rebuilt program makes the
    generated image stale. Raises a clear error when they were never built."""
    parts = []
    for program in (*NATIVE_PROGRAMS.get(flavor, ()), *NATIVE_FILES.get(flavor, ())):
        path = NATIVE_DIR / program
        try:
            st = path.stat()
        except OSError as exc:
            raise ImageError(
                f'stage1 flavor "{flavor}": native program {path} is missing '
                f"({exc.strerror}); build it with `make setup`"
            ) from None
        parts.append(f"{program}={st.st_size}.{st.st_mtime_ns}")
    return ",".join(parts)


def entrypoint_format(flavor: str = DEFAULT_FLAVOR) -> str:
    """The ``rkt.local/entrypoint-format`` value of an image generated by this installation."""
    paths = os.pathsep.join(entrypoint_paths())
    return f"{ENTRYPOINT_FORMAT}:{paths}:{native_identity(flavor)}"


def _script(module: str, function: str = "main", paths: list[str] | None = None) -> str:
    extra = entrypoint_paths() if paths is None else paths
    return (
        f"#!{sys.executable} -IS\n"
        "# rkt built-in stage1 entrypoint (generated; see docs/stage1-abi.md)\n"
        "import sys\n"
        f"sys.path += {extra!r}\n"
        f"sys.path.insert(0, {extra[-1]!r})\n"  # rkt's root, before the standard library's
        "from rkt.bundle import install\n"
        "install()\n"
        "del sys.path[0]\n"
        f"from {module} import {function} as main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )


def builtin_entry_scripts(*files: str) -> dict[bytes, tuple[str, str]]:
    """The exact entrypoint scripts this installation generates for its built-in flavors (the
    entrypoint ``files`` given, default all), mapped to the (module, function) each runs:
    ``rkt.stage0.inprocess`` runs that code without a new interpreter."""
    paths = entrypoint_paths()
    out = {}
    for package in BUILTIN_FLAVORS.values():
        for fname in files or tuple(_ENTRY_FILES.values()):
            module, function = _ENTRY_TARGETS.get(fname, (fname, "main"))
            target = (f"{package}.{module}", function)
            out[_script(target[0], function, paths).encode()] = target
    return out


def ensure_builtin_stage1(store: Store, flavor: str) -> ImageRecord:
    """The built-in flavor's image for this interpreter and rkt version, imported if missing."""
    if flavor not in BUILTIN_FLAVORS:
        known = ", ".join(sorted(BUILTIN_FLAVORS))
        raise UsageError(f'stage1 flavor "{flavor}" is not available (built-in: {known})')
    name = builtin_name(flavor)
    paths = entrypoint_paths()
    identity = [
        {"name": abi.ANN_INTERFACE_VERSION, "value": str(abi.INTERFACE_VERSION)},
        {"name": INTERPRETER_ANNOTATION, "value": sys.executable},
        {"name": ENTRYPOINT_FORMAT_ANNOTATION, "value": entrypoint_format(flavor)},
    ]
    for rec in store.find_by_name(name, {"version": __version__}):
        annotations = jsonio.loads(rec.manifest).get("annotations", [])
        if all(ann in annotations for ann in identity):
            return rec
    # Building and importing it (formats, ~8 ms of imports) only when it is not there yet.
    from rkt.formats.aci import build_aci
    from rkt.stage0.importer import import_image_file

    package = BUILTIN_FLAVORS[flavor]
    annotations = [{"name": ann, "value": "/" + fname} for ann, fname in _ENTRY_FILES.items()]
    annotations += identity
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": __version__},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "annotations": annotations,
    }
    with store.tempdir("stage1") as tmp:
        src = tmp.path / "src"
        (src / "rootfs").mkdir(parents=True)
        (src / "manifest").write_text(jsonio.dumps(manifest, indent=2))
        for fname in _ENTRY_FILES.values():
            script = src / "rootfs" / fname
            module, function = _ENTRY_TARGETS.get(fname, (fname, "main"))
            script.write_text(_script(f"{package}.{module}", function, paths))
            script.chmod(0o755)
        import shutil

        for program in NATIVE_PROGRAMS.get(flavor, ()):
            shutil.copyfile(NATIVE_DIR / program, src / "rootfs" / program)
            (src / "rootfs" / program).chmod(0o755)
        for name in NATIVE_FILES.get(flavor, ()):
            shutil.copyfile(NATIVE_DIR / name, src / "rootfs" / name)
            (src / "rootfs" / name).chmod(0o644)
        aci = tmp.path / "stage1.aci"
        build_aci(src, aci, mtime=0)
        image_id = import_image_file(store, aci, source=f"builtin:{flavor}", render=True)
    imported = store.get(image_id)
    assert imported is not None
    return imported


def stage1_entrypoints(rec: ImageRecord) -> Stage1:
    """Check the interface version and that every required entrypoint is declared."""
    from rkt.schema.image import ImageManifest

    manifest = ImageManifest.from_json(rec.manifest)
    version = abi.interface_version(manifest.annotation(abi.ANN_INTERFACE_VERSION))
    supported = f"{abi.MIN_INTERFACE_VERSION}..{abi.INTERFACE_VERSION}"
    if version is None:
        raise ImageError(
            f'stage1 "{manifest.name}": no valid interface version annotation '
            f"(this rkt speaks {supported})"
        )
    if not abi.MIN_INTERFACE_VERSION <= version <= abi.INTERFACE_VERSION:
        raise ImageError(
            f'stage1 "{manifest.name}": interface version {version} is not '
            f"supported (this rkt speaks {supported})"
        )
    entrypoints: dict[str, str] = {}
    required: tuple[str, ...] = abi.REQUIRED_ENTRYPOINTS
    if version >= abi.V3_MUTABLE:
        required += abi.APP_ENTRYPOINTS
    for ann in required:
        value = manifest.annotation(ann)
        if not value or not value.startswith("/"):
            raise ImageError(f'stage1 "{manifest.name}": missing entrypoint annotation "{ann}"')
        entrypoints[ann] = value
    return Stage1(rec, entrypoints, version)


def builtin_flavor_chosen(choice: Stage1Choice, configured: dict[str, str]) -> str | None:
    """The built-in flavor ``select_stage1`` resolves this choice to, known without the store;
    None for any other image (or a choice it refuses)."""
    given = choice.given()
    if given:
        return _flavor_of(choice.name) if given == ["name"] and choice.name else None
    if configured.get("name"):
        version = configured.get("version")
        return _flavor_of(configured["name"] + (":" + version if version else ""))
    return DEFAULT_FLAVOR


def select_stage1(
    store: Store, choice: Stage1Choice, configured: dict[str, str], fetch: Callable[[str], str]
) -> Stage1:
    """Resolve the stage1 image; ``fetch`` brings an image reference into the store."""
    given = choice.given()
    if len(given) > 1:
        flags = ", ".join("--stage1-" + g.replace("_", "-") for g in given)
        raise UsageError(f"only one stage1 may be chosen ({flags} given)")
    if choice.hash:
        rec = store.resolve_id(choice.hash)
    elif choice.name:
        flavor = _flavor_of(choice.name)
        rec = ensure_builtin_stage1(store, flavor) if flavor else _by_id(store, fetch(choice.name))
    elif choice.path:
        rec = _by_id(store, fetch(str(choice.path)))
    elif choice.url:
        rec = _by_id(store, fetch(choice.url))
    elif choice.from_dir:
        base = Path(configured.get("stage1-images", "/usr/lib/rkt/stage1-images"))
        rec = _by_id(store, fetch(str(base / choice.from_dir)))
    elif configured.get("name"):
        text = configured["name"]
        if configured.get("version"):
            text += ":" + configured["version"]
        flavor = _flavor_of(text)
        if flavor:
            rec = ensure_builtin_stage1(store, flavor)
        elif configured.get("location"):
            rec = _by_id(store, fetch(configured["location"]))
        else:
            rec = _by_id(store, fetch(text))
    else:
        rec = ensure_builtin_stage1(store, DEFAULT_FLAVOR)
    return stage1_entrypoints(rec)


def _by_id(store: Store, image_id: str) -> ImageRecord:
    rec = store.get(image_id)
    if rec is None:
        raise ImageError(f'stage1 "{image_id[:19]}": not in the store after fetching')
    return rec
