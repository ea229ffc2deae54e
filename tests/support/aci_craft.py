"""Hand-crafted ACIs (built with ``tarfile`` in the test, not by ``rkt image build``) and checks of
the on-disk store, for the store, image and hostile-archive integration tests.

    members = [dir_member("rootfs"), file_member("rootfs/x", b"data")]
    write_aci(path, members, manifest=manifest_json("example.com/x"), compression="gzip")

``write_aci`` writes the members exactly as given: names are not normalised, so absolute names,
``..`` components, duplicate manifests and device nodes reach the tar as a hostile publisher
would put them there.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MTIME = 1_600_000_000


@dataclass(frozen=True)
class Member:
    info: tarfile.TarInfo
    data: bytes | None = None


def _info(name: str, kind: bytes, *, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = MTIME
    return info


def dir_member(name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    return Member(_info(name, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid))


def file_member(
    name: str, data: bytes = b"", *, mode: int = 0o644, uid: int = 0, gid: int = 0
) -> Member:
    info = _info(name, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid)
    info.size = len(data)
    return Member(info, data)


def symlink_member(name: str, target: str) -> Member:
    info = _info(name, tarfile.SYMTYPE, mode=0o777)
    info.linkname = target
    return Member(info)


def hardlink_member(name: str, target: str) -> Member:
    info = _info(name, tarfile.LNKTYPE, mode=0o644)
    info.linkname = target
    return Member(info)


def device_member(name: str, kind: str, major: int = 1, minor: int = 3) -> Member:
    info = _info(name, tarfile.CHRTYPE if kind == "char" else tarfile.BLKTYPE, mode=0o666)
    info.devmajor, info.devminor = major, minor
    return Member(info)


def manifest_doc(
    name: str,
    version: str = "1.0.0",
    *,
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    doc: dict[str, object] = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": version},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "app": {"exec": ["/bin/true"], "user": "0", "group": "0"},
    }
    doc.update(extra or {})
    return doc


def manifest_json(
    name: str, version: str = "1.0.0", *, extra: dict[str, object] | None = None
) -> bytes:
    return json.dumps(manifest_doc(name, version, extra=extra)).encode()


def tar_bytes(members: Iterable[Member], *, manifest: bytes | None) -> bytes:
    """An uncompressed tar: ``manifest`` first (when given), then ``members`` as they are."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if manifest is not None:
            info = _info("manifest", tarfile.REGTYPE, mode=0o644)
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
        for member in members:
            tar.addfile(member.info, io.BytesIO(member.data) if member.data is not None else None)
    return buf.getvalue()


def write_aci(
    path: Path,
    members: Sequence[Member],
    *,
    manifest: bytes | None,
    compression: str = "none",
) -> Path:
    raw = tar_bytes(members, manifest=manifest)
    if compression == "gzip":
        raw = gzip.compress(raw, mtime=0)
    elif compression != "none":
        raise ValueError(compression)
    path.write_bytes(raw)
    return path


# -- the store on disk ------------------------------------------------------------------------


def tmp_entries(data_dir: Path) -> list[str]:
    tmp = data_dir / "cas" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def blob_files(data_dir: Path) -> list[str]:
    root = data_dir / "cas" / "blob" / "sha512"
    return sorted(p.name for p in root.glob("*/*")) if root.is_dir() else []


def tree_dirs(data_dir: Path) -> list[str]:
    root = data_dir / "cas" / "tree"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def files_under(root: Path) -> list[Path]:
    """Everything below ``root`` (symlinks not followed)."""
    return sorted(root.rglob("*")) if root.exists() else []
