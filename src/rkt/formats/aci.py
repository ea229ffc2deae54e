"""App Container Images (appc aci.md): one-pass import, manifest reading, deterministic build.

An ACI is a tar, possibly compressed, holding exactly a ``manifest`` file and a ``rootfs/`` tree
(``./manifest`` and ``./rootfs/`` are the same names). Its image ID is ``sha512-`` + the sha512 of
the uncompressed tar, every byte of it including the zero records at the end (appc aci.md
"Image ID": it equals ``sha512sum`` of the uncompressed file).

Importing reads the stream once: decompress, hash the tar, check the layout, keep the manifest
(at most 1 MiB) in memory, extract ``rootfs/`` with :mod:`rkt.formats.safetar` while feeding a
tree-hash builder. Reading and decompressing, the image-ID digest and the digests of large files
run on threads of their own (:mod:`rkt.formats.background`), beside the parser and extractor.
Building writes a deterministic PAX tar (sorted members, numeric owners, no user or group names,
optional fixed mtime, xattrs, hard links by inode) to a temp file beside the target, fsyncs it and
renames it into place.

May import ``rkt.errors``, ``rkt.formats`` and (lazily) ``rkt.schema``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

from rkt.errors import ArchiveError, ImageError, ManifestError, UsageError
from rkt.formats.background import ReadAhead, Worker
from rkt.formats.compression import COMPRESSIONS, detected, open_compressor, open_decompressed
from rkt.formats.safetar import Extractor, member_path
from rkt.formats.tarstream import TarEntry, TarReader
from rkt.formats.treehash import TreeHashBuilder
from rkt.paths import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

MAX_MANIFEST = 1 << 20
_COPY_BUFFER = 1 << 20


@dataclass(frozen=True)
class AciImport:
    """The result of :func:`import_aci`.

    ``entries`` counts the members of ``rootfs/`` (the rootfs directory itself included);
    ``tree_size`` the file bytes written under ``rootfs_dest`` (0 when not extracted).
    """

    image_id: str
    manifest_bytes: bytes
    uncompressed_size: int
    compression: str
    tree_hash: str | None
    entries: int
    tree_size: int = 0


class _CountingReader:
    """Reports the compressed bytes consumed so far to ``progress``."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None]) -> None:
        self._raw = raw
        self._progress = progress
        self._total = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._total += len(data)
            self._progress(self._total)
        return data


def _image_id(hexdigest: str) -> str:
    from rkt.schema.names import image_id_from_digest

    return image_id_from_digest(hexdigest)


def _read_manifest(entry: TarEntry, reader: TarReader) -> bytes:
    if entry.kind != "file":
        raise ArchiveError(f'"{entry.name}": the ACI manifest must be a regular file')
    if entry.size > MAX_MANIFEST:
        raise ArchiveError(
            f'"{entry.name}": manifest of {entry.size} bytes exceeds the 1 MiB limit'
        )
    return reader.read_body()


def _top_level(entry: TarEntry) -> str:
    """Classify a member by the ACI layout: "root", "manifest" or "rootfs"; refuse the rest."""
    path = member_path(entry.name)
    if path == "" and entry.kind == "dir":
        return "root"
    if path == "manifest":
        return "manifest"
    if path == "rootfs" or path.startswith("rootfs/"):
        if path == "rootfs" and entry.kind != "dir":
            raise ArchiveError(f'"{entry.name}": rootfs must be a directory')
        if entry.kind in ("char", "block"):
            raise ArchiveError(f'"{entry.name}": device nodes are not allowed')
        return "rootfs"
    raise ArchiveError(
        f'"{entry.name}": unexpected member in ACI (only "manifest" and "rootfs/" at the top)'
    )


def import_aci(
    raw: BinaryIO,
    rootfs_dest: Path | None,
    *,
    progress: Callable[[int], None] | None = None,
) -> AciImport:
    """Read an ACI once: its image ID, its manifest bytes, its rootfs extracted to ``rootfs_dest``.

    ``progress(n)`` is called with the total compressed bytes consumed so far. The manifest is
    not validated here (callers parse it with ``rkt.schema``).
    """
    source = cast("BinaryIO", _CountingReader(raw, progress)) if progress is not None else raw
    stream = open_decompressed(source)
    tar_digest = hashlib.sha512()
    builder = TreeHashBuilder() if rootfs_dest is not None else None
    manifest: bytes | None = None
    entries = 0
    tree_size = 0
    with contextlib.ExitStack() as stack:
        # Threads (see rkt.formats.background): reading ``raw`` (and whatever the caller's
        # stream does, such as copying to the blob) and decompressing run ahead of the tar
        # parser; the image-ID digest runs on one worker and the tree-hash digests of large
        # files on another (one shared worker measured slower). The main thread parses the tar
        # and writes the tree.
        ahead = stack.enter_context(ReadAhead(stream))
        digest_worker = Worker("rkt-aci-digest")
        stack.callback(digest_worker.abort)
        tree_worker = Worker("rkt-tree-digest")
        stack.callback(tree_worker.abort)
        reader = TarReader(
            cast("BinaryIO", ahead), on_chunk=lambda c: digest_worker.submit(tar_digest.update, c)
        )
        extractor = None
        if rootfs_dest is not None:
            extractor = stack.enter_context(
                Extractor(
                    rootfs_dest, strip_prefix="rootfs", hasher=builder, digest_worker=tree_worker
                )
            )
        for entry in reader:
            where = _top_level(entry)
            if where == "manifest":
                if manifest is not None:
                    raise ArchiveError(f'"{entry.name}": duplicate manifest in ACI')
                manifest = _read_manifest(entry, reader)
            elif where == "rootfs":
                entries += 1
                if extractor is not None:
                    extractor.extract(entry, reader)
        reader.drain()
        if extractor is not None:
            tree_size = extractor.finish().bytes_written
        digest_worker.close()
        tree_worker.close()
    if manifest is None:
        raise ArchiveError("ACI has no manifest")
    if entries == 0:
        raise ArchiveError("ACI has no rootfs directory")
    return AciImport(
        image_id=_image_id(tar_digest.hexdigest()),
        manifest_bytes=manifest,
        uncompressed_size=reader.consumed,
        compression=detected(stream),
        tree_hash=builder.hexdigest() if builder is not None else None,
        entries=entries,
        tree_size=tree_size,
    )


def read_aci_manifest(raw: BinaryIO) -> bytes:
    """The manifest bytes of an ACI, reading only as far as the manifest member."""
    reader = TarReader(open_decompressed(raw))
    for entry in reader:
        if _top_level(entry) == "manifest":
            return _read_manifest(entry, reader)
    raise ArchiveError("ACI has no manifest")


# -- building -------------------------------------------------------------------------------------


class _HashingWriter:
    """Hashes the uncompressed tar on its way into the compressor; tarfile needs ``tell``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha512()
        self._offset = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self._out.write(data)
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset


def _xattr_headers(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    headers = {}
    for name in sorted(names):
        value = os.getxattr(path, name, follow_symlinks=False)
        headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return headers


def _walk_sorted(root: str, arcroot: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, member name, lstat) of ``root`` and all below it: depth first, sorted as bytes."""
    stack = [(root, arcroot)]
    while stack:
        path, name = stack.pop()
        st = os.lstat(path)
        yield path, name, st
        if stat.S_ISDIR(st.st_mode):
            children = sorted(os.listdir(path), key=os.fsencode)
            stack.extend(
                (os.path.join(path, child), f"{name}/{child}") for child in reversed(children)
            )


def _tarinfo(name: str, st: os.stat_result, mtime: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime) if mtime is None else mtime
    return info


def write_aci(
    manifest_bytes: bytes,
    rootfs: Path,
    out: BinaryIO,
    *,
    compression: str = "none",
    mtime: int | None = None,
    manifest_stat: os.stat_result | None = None,
) -> str:
    """Write an ACI of ``manifest_bytes`` and the tree ``rootfs`` to ``out``; return its image ID.

    Without ``manifest_stat`` the manifest member is root-owned, mode 0644.
    """
    compressor = open_compressor(compression, out)
    hashing = _HashingWriter(compressor)
    fileobj = cast("BinaryIO", hashing)
    tar = tarfile.TarFile(
        fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT, copybufsize=_COPY_BUFFER
    )
    with tar:
        info = tarfile.TarInfo("manifest")
        info.size = len(manifest_bytes)
        info.mode = stat.S_IMODE(manifest_stat.st_mode) if manifest_stat else 0o644
        if manifest_stat is not None:
            info.uid, info.gid = manifest_stat.st_uid, manifest_stat.st_gid
        info.uname = info.gname = ""
        info.mtime = (
            mtime if mtime is not None else int(manifest_stat.st_mtime if manifest_stat else 0)
        )
        tar.addfile(info, io.BytesIO(manifest_bytes))
        _add_tree(tar, os.fspath(rootfs), mtime)
    compressor.close()
    return _image_id(hashing.digest.hexdigest())


def _add_tree(tar: tarfile.TarFile, rootfs: str, mtime: int | None) -> None:
    links: dict[tuple[int, int], str] = {}
    for path, name, st in _walk_sorted(rootfs, "rootfs"):
        info = _tarinfo(name, st, mtime)
        info.pax_headers = _xattr_headers(path)
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif fmt == stat.S_IFLNK:
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif fmt == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        elif fmt == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                info.type = tarfile.LNKTYPE
                info.linkname = links[key]
            else:
                if st.st_nlink > 1:
                    links[key] = name
                info.size = st.st_size
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as data:
                    tar.addfile(info, data)
                continue
        else:
            what = "device nodes" if fmt in (stat.S_IFCHR, stat.S_IFBLK) else "sockets"
            raise ArchiveError(f'"{path}": {what} are not allowed in an ACI')
        tar.addfile(info)


def _check_build_source(src_dir: Path, out: Path) -> tuple[bytes, os.stat_result]:
    manifest_path, rootfs = src_dir / "manifest", src_dir / "rootfs"
    try:
        manifest_stat = os.lstat(manifest_path)
        rootfs_stat = os.lstat(rootfs)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise UsageError(f'"{src_dir}": needs a "manifest" file and a "rootfs" directory') from exc
    if not stat.S_ISREG(manifest_stat.st_mode) or not stat.S_ISDIR(rootfs_stat.st_mode):
        raise UsageError(f'"{src_dir}": needs a "manifest" file and a "rootfs" directory')
    if manifest_stat.st_size > MAX_MANIFEST:
        raise ManifestError(f'"{manifest_path}": manifest exceeds the 1 MiB limit')
    if out.resolve().is_relative_to(rootfs.resolve()):
        raise UsageError(f'"{out}": the output must not be inside the rootfs it archives')
    data = manifest_path.read_bytes()
    from rkt.schema.image import ImageManifest

    ImageManifest.from_json(data)
    return data, manifest_stat


def check_output(out: Path, *, overwrite: bool) -> None:
    """An ACI file about to be written at ``out`` (build, export): an existing one only with
    ``overwrite``, and only a regular file (never a device, a directory or a link)."""
    if not os.path.lexists(out):
        return
    if not overwrite:
        raise UsageError(f'"{out}": file exists', hint="pass --overwrite to replace it")
    if os.path.islink(out) or not os.path.isfile(out):
        raise UsageError(f'"{out}": not a regular file; --overwrite replaces only those')


def build_aci(
    src_dir: Path,
    out: Path,
    *,
    compression: str = "none",
    mtime: int | None = None,
    overwrite: bool = False,
) -> str:
    """Build ``out`` from ``src_dir`` (``manifest`` + ``rootfs/``); return the image ID.

    Deterministic: the same tree, ``compression`` and ``mtime`` give the same bytes. The file
    appears atomically; an existing ``out`` is replaced only with ``overwrite``.
    """
    if compression not in COMPRESSIONS:
        raise UsageError(
            f'unknown compression "{compression}" (choose from {", ".join(COMPRESSIONS)})'
        )
    check_output(out, overwrite=overwrite)
    manifest_bytes, manifest_stat = _check_build_source(src_dir, out)
    directory = out.parent if str(out.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise ImageError(f'"{out}": {exc.strerror or exc}') from exc
    try:
        with os.fdopen(fd, "wb") as tmp:
            image_id = write_aci(
                manifest_bytes,
                src_dir / "rootfs",
                tmp,
                compression=compression,
                mtime=mtime,
                manifest_stat=manifest_stat,
            )
            tmp.flush()
            os.fchmod(tmp.fileno(), 0o644)
            os.fsync(tmp.fileno())
        if overwrite:
            os.replace(tmp_name, out)
        else:
            try:
                os.link(tmp_name, out)  # fails, unlike rename, if out appeared meanwhile
            except FileExistsError as exc:
                raise UsageError(
                    f'"{out}": file exists', hint="pass --overwrite to replace it"
                ) from exc
            os.unlink(tmp_name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return image_id
