"""``rkt export [--app=NAME] [--overwrite] UUID OUT.aci``: an exited pod's app as an image.

As rkt/export.go: the pod must have exited; the image is the app's image manifest (unchanged) over
the app's root filesystem as the app left it, i.e. the read-only image tree (or the layer trees of
``appsinfo/<app>/lowerdirs``) with the app's overlay upper directory on top (docs/stage1-abi.md §2
``overlay/<app>/upper``). The merge follows
overlayfs: a character device 0/0 in the upper dir is a whiteout (the path is deleted), a directory
with ``trusted.overlay.opaque=y`` hides the lower directory's contents; ``trusted.overlay.*``
attributes never reach the image. Image files are hard-linked into a store temp dir (same
filesystem as the tree store), the app's files copied; the pod's lock is held shared meanwhile, so
``rkt gc`` cannot delete the pod under us. Overlay ``redirect_dir`` and ``metacopy`` are not
supported (both off by default, and rkt's stage1s never turn them on).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat

from rkt import abi
from rkt.cli.commands.enter import choose_app
from rkt.cli.commands.status import lookup, pods_root
from rkt.cli.quickparse import add_bool
from rkt.errors import PodError, UsageError
from rkt.paths import Path
from rkt.pod.pod import PodLock
from rkt.settings import GlobalOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse

OVERLAY_XATTR_PREFIX = "trusted.overlay."
OPAQUE_XATTR = "trusted.overlay.opaque"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", default=None, help="the app to export (if the pod has several)")
    add_bool(parser, "--overwrite", False, "overwrite OUT.aci if it exists")
    parser.add_argument("uuid", metavar="UUID", help="an exited pod's UUID or unique prefix")
    parser.add_argument("output", metavar="OUT.aci", help="the image file to write")


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def copy_metadata(src: str, st: os.stat_result, dst: str) -> None:
    """Owner, mode, xattrs (not overlay's own) and times of ``src`` onto ``dst``."""
    os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        for name, value in _xattrs(src).items():
            if not name.startswith(OVERLAY_XATTR_PREFIX):
                with contextlib.suppress(OSError):
                    os.setxattr(dst, name, value, follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _place(src: str, st: os.stat_result, dst: str, *, link: bool) -> None:
    """One non-directory entry; ``link``: hard-link it (image files), else copy it."""
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        if link:
            try:
                os.link(src, dst, follow_symlinks=False)
                return
            except OSError:
                pass
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    else:
        return  # devices and sockets have no place in an ACI
    copy_metadata(src, st, dst)


def merge_layers(layers: list[tuple[str, bool]], dest: str) -> None:
    """Write the overlay of ``layers`` (top-most first; each ``(path, link)``) into ``dest``.

    ``link``: hard-link that layer's files (read-only image trees) instead of copying them.
    """
    taken: set[str] = set()
    for index, (layer, link) in enumerate(layers):
        for name in sorted(os.listdir(layer)):
            if name in taken:
                continue
            taken.add(name)
            src = os.path.join(layer, name)
            st = os.lstat(src)
            if is_whiteout(st):
                continue
            target = os.path.join(dest, name)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target)
                merge_layers(_dir_layers(layers, index, name), target)
                copy_metadata(src, st, target)
            else:
                _place(src, st, target, link=link)


def _dir_layers(layers: list[tuple[str, bool]], top: int, name: str) -> list[tuple[str, bool]]:
    """The directory ``name`` in layer ``top`` and the lower layers it does not hide."""
    found = [(os.path.join(layers[top][0], name), layers[top][1])]
    for layer, link in layers[top + 1 :]:
        if is_opaque(found[-1][0]):
            break
        path = os.path.join(layer, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISDIR(st.st_mode):
            break  # a whiteout or a file: nothing further down shows through
        found.append((path, link))
    return found


def image_layers(appsinfo: Path) -> list[str]:
    """The app's read-only trees, top-most first: ``lowerdirs`` if stage0 wrote it, else ``rootfs``
    (docs/stage1-abi.md §2)."""
    try:
        lines = (appsinfo / "lowerdirs").read_text().splitlines()
        layers = [line.strip() for line in lines if line.strip()]
    except FileNotFoundError:
        layers = [os.path.realpath(appsinfo / "rootfs")]
    for layer in layers:
        if not os.path.isdir(layer):
            raise PodError(f'app "{appsinfo.name}": its image tree "{layer}" is gone')
    return layers


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from rkt.formats.aci import build_aci
    from rkt.store.store import Store

    out = Path(args.output)
    if out.suffix != ".aci":
        raise UsageError(f'export: "{out}": the output must end in .aci')
    if os.path.lexists(out) and not args.overwrite:
        raise UsageError(f'export: "{out}": file exists', hint="pass --overwrite to replace it")
    pod = lookup(pods_root(opts, "export"), args.uuid)
    if not pod.is_exited():
        raise PodError(f'pod "{pod.uuid}": is {pod.state()}; only exited pods can be exported')
    app = choose_app(pod, args.app)
    lock = PodLock(pod.path)
    try:
        if not lock.try_shared():
            raise PodError(f'pod "{pod.uuid}": is in use')
        # Paths through the locked directory descriptor stay right if gc renames the pod.
        base = Path(f"/proc/self/fd/{lock.fd}")
        lowers = image_layers(base / abi.appsinfo(app))
        upper = base / abi.app_overlay(app) / "upper"
        layers = [(str(upper), False)] if upper.is_dir() else []
        layers += [(lower, True) for lower in lowers]
        manifest = (base / abi.appsinfo(app) / "manifest").read_bytes()
        with Store(opts.dir) as store, store.tempdir("export") as tmp:
            src = tmp.path / "src"
            rootfs = src / "rootfs"
            rootfs.mkdir(parents=True)
            merge_layers(layers, str(rootfs))
            copy_metadata(lowers[0], os.lstat(lowers[0]), str(rootfs))
            (src / "manifest").write_bytes(manifest)
            os.chown(src / "manifest", 0, 0)  # not the store temp dir's setgid group
            os.chmod(src / "manifest", 0o644)
            build_aci(src, out, overwrite=args.overwrite)
    except OSError as exc:
        raise PodError(f'pod "{pod.uuid}": export of app "{app}" failed: {exc}') from exc
    finally:
        lock.close()
    return 0
