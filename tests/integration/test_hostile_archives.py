"""Hostile ACIs through ``rkt fetch`` and through the tree store: every one is refused with exit
254 and one line naming the cause; nothing is written outside the target, nothing is listed, and
no temp dir, blob or tree is left behind (issue 2, acceptance 4).

The archives are made with ``tarfile`` here, so they hold exactly what a hostile publisher would
put in them (``rkt image build`` would refuse to make most of them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import Rkt
from tests.support.aci_craft import (
    Member,
    blob_files,
    device_member,
    dir_member,
    file_member,
    hardlink_member,
    manifest_json,
    symlink_member,
    tar_bytes,
    tmp_entries,
    tree_dirs,
    write_aci,
)

NAME = "example.com/hostile"
MARKERS = {"evil", "pwned"}


@dataclass(frozen=True)
class Case:
    members: Callable[[Path], list[Member]]
    cause: str
    manifest: bytes = manifest_json(NAME)


def _big_manifest(field: str, entry: Callable[[int], object]) -> bytes:
    return manifest_json(NAME, extra={field: [entry(i) for i in range(10_000)]})


CASES: dict[str, Case] = {
    "dotdot": Case(
        lambda s: [dir_member("rootfs"), file_member("rootfs/../../evil", b"x")], '".."'
    ),
    "dotdot-to-sentinel": Case(
        lambda s: [
            dir_member("rootfs"),
            file_member("rootfs/" + "../" * 64 + str(s / "evil").lstrip("/"), b"x"),
        ],
        '".."',
    ),
    "absolute-path": Case(
        lambda s: [dir_member("rootfs"), file_member(str(s / "evil"), b"x")], "absolute"
    ),
    "symlink-escape-then-write": Case(
        lambda s: [
            dir_member("rootfs"),
            symlink_member("rootfs/x", str(s)),
            file_member("rootfs/x/pwned", b"x"),
        ],
        "symlink",
    ),
    "symlink-escape-then-mkdir": Case(
        lambda s: [
            dir_member("rootfs"),
            symlink_member("rootfs/x", str(s)),
            dir_member("rootfs/x/evil"),
        ],
        "symlink",
    ),
    "symlink-chain-to-dotdot": Case(
        lambda s: [
            dir_member("rootfs"),
            symlink_member("rootfs/a", ".."),
            symlink_member("rootfs/b", "a/../.."),
            file_member("rootfs/b/pwned", b"x"),
        ],
        "symlink",
    ),
    "hardlink-to-host-passwd": Case(
        lambda s: [dir_member("rootfs"), hardlink_member("rootfs/evil", "/etc/passwd")],
        "absolute",
    ),
    "hardlink-to-dotdot": Case(
        lambda s: [dir_member("rootfs"), hardlink_member("rootfs/evil", "../../x")], '".."'
    ),
    "hardlink-outside-rootfs": Case(
        lambda s: [dir_member("rootfs"), hardlink_member("rootfs/evil", "etc/passwd")],
        "outside the extracted tree",
    ),
    "hardlink-through-symlink": Case(
        lambda s: [
            dir_member("rootfs"),
            symlink_member("rootfs/s", "/etc/passwd"),
            hardlink_member("rootfs/evil", "rootfs/s"),
        ],
        "hard link target",
    ),
    "char-device": Case(
        lambda s: [dir_member("rootfs"), device_member("rootfs/evil", "char", 1, 3)],
        "device nodes",
    ),
    "block-device": Case(
        lambda s: [dir_member("rootfs"), device_member("rootfs/evil", "block", 8, 0)],
        "device nodes",
    ),
    "10000-annotations": Case(
        lambda s: [dir_member("rootfs")],
        "too many entries",
        _big_manifest("annotations", lambda i: {"name": f"a{i}", "value": "v"}),
    ),
    "10000-dependencies": Case(
        lambda s: [dir_member("rootfs")],
        "too many entries",
        _big_manifest("dependencies", lambda i: {"imageName": f"example.com/dep{i}"}),
    ),
    "10000-environment": Case(
        lambda s: [dir_member("rootfs")],
        "too many entries",
        manifest_json(
            NAME,
            extra={
                "app": {
                    "exec": ["/bin/true"],
                    "user": "0",
                    "group": "0",
                    "environment": [{"name": f"E{i}", "value": "v"} for i in range(10_000)],
                }
            },
        ),
    ),
    "duplicate-manifest": Case(
        lambda s: [dir_member("rootfs"), file_member("manifest", manifest_json(NAME))],
        "duplicate manifest",
    ),
    "extra-top-level-entry": Case(
        lambda s: [dir_member("rootfs"), file_member("evil", b"x")], "unexpected member"
    ),
    "rootfs-is-a-symlink": Case(
        lambda s: [symlink_member("rootfs", str(s))], "rootfs must be a directory"
    ),
}


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory a hostile archive aims at; it must stay empty."""
    path = tmp_path / "sentinel"
    path.mkdir()
    return path


def fetch(rkt: Rkt, aci: Path) -> tuple[int, list[str]]:
    """Run ``rkt fetch`` (signatures skipped); return the exit status and its error lines."""
    proc = rkt.run("--insecure-options=image", "fetch", str(aci), check=False)
    errors = [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and not line.startswith("rkt: warning:")
    ]
    assert "Traceback" not in proc.stderr
    return proc.returncode, errors


def assert_refused_cleanly(
    rkt: Rkt, aci: Path, cause: str, sentinel: Path, root: Path
) -> list[str]:
    passwd = os.stat("/etc/passwd")
    status, errors = fetch(rkt, aci)
    assert status == 254, errors
    assert len(errors) == 1, errors
    assert cause in errors[0], errors
    assert errors[0].startswith(f'rkt: image "{aci}": '), errors  # the line names the image
    # Checked straight after the failing command, before any other rkt command tidies up.
    assert tmp_entries(rkt.dir) == []
    assert blob_files(rkt.dir) == []
    assert tree_dirs(rkt.dir) == []
    assert_nothing_escaped(sentinel, root, passwd)
    assert rkt.image_list() == []
    return errors


def assert_nothing_escaped(sentinel: Path, root: Path, passwd: os.stat_result) -> None:
    assert list(sentinel.iterdir()) == []
    escaped = [p for p in root.rglob("*") if p.name in MARKERS]
    assert escaped == []
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_mtime_ns, after.st_size) == (
        passwd.st_nlink,
        passwd.st_mtime_ns,
        passwd.st_size,
    )


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fetch_refuses_hostile_archive(
    rkt: Rkt, tmp_path: Path, sentinel: Path, case: str, compression: str
) -> None:
    spec = CASES[case]
    aci = write_aci(
        tmp_path / "hostile.aci",
        spec.members(sentinel),
        manifest=spec.manifest,
        compression=compression,
    )
    assert_refused_cleanly(rkt, aci, spec.cause, sentinel, tmp_path)


def test_fetch_refuses_truncated_gzip(rkt: Rkt, tmp_path: Path, sentinel: Path) -> None:
    members = [dir_member("rootfs"), file_member("rootfs/data", os.urandom(1 << 20))]
    whole = write_aci(
        tmp_path / "whole.aci", members, manifest=manifest_json(NAME), compression="gzip"
    )
    data = whole.read_bytes()
    whole.unlink()
    for cut in (len(data) // 2, len(data) - 8):  # mid-stream; and only the gzip trailer missing
        aci = tmp_path / "truncated.aci"
        aci.write_bytes(data[:cut])
        assert_refused_cleanly(rkt, aci, "truncated", sentinel, tmp_path)


def test_fetch_refuses_truncated_tar(rkt: Rkt, tmp_path: Path, sentinel: Path) -> None:
    members = [dir_member("rootfs"), file_member("rootfs/data", os.urandom(1 << 16))]
    data = tar_bytes(members, manifest=manifest_json(NAME))
    aci = tmp_path / "truncated.aci"
    aci.write_bytes(data[: 512 * 8])  # cut inside rootfs/data's body
    assert_refused_cleanly(rkt, aci, "truncated", sentinel, tmp_path)


def test_hostile_fetch_leaves_existing_images_intact(
    rkt: Rkt, tmp_path: Path, sentinel: Path
) -> None:
    good = write_aci(
        tmp_path / "good.aci",
        [dir_member("rootfs"), file_member("rootfs/hello", b"hello\n")],
        manifest=manifest_json("example.com/good"),
    )
    rkt.run("--insecure-options=image", "fetch", str(good))
    before = rkt.image_list()
    blobs, trees = blob_files(rkt.dir), tree_dirs(rkt.dir)
    for name in ("symlink-escape-then-write", "char-device", "duplicate-manifest"):
        spec = CASES[name]
        aci = write_aci(tmp_path / f"{name}.aci", spec.members(sentinel), manifest=spec.manifest)
        status, errors = fetch(rkt, aci)
        assert status == 254 and len(errors) == 1 and spec.cause in errors[0], errors
        assert tmp_entries(rkt.dir) == []
    assert rkt.image_list() == before
    assert (blob_files(rkt.dir), tree_dirs(rkt.dir)) == (blobs, trees)
    rkt.run("image", "verify")
    assert list(sentinel.iterdir()) == []


# -- through the tree store: hostile only in combination with a dependency --------------------


def _dependency(name: str) -> dict[str, object]:
    return {
        "dependencies": [{"imageName": name, "labels": [{"name": "version", "value": "1.0.0"}]}]
    }


@pytest.mark.parametrize(
    "app_members",
    [
        pytest.param(lambda s: [file_member("rootfs/x/pwned", b"x")], id="write-through-base-link"),
        pytest.param(lambda s: [dir_member("rootfs/x/evil")], id="mkdir-through-base-link"),
        pytest.param(
            lambda s: [hardlink_member("rootfs/evil", "rootfs/passwd-link")],
            id="hardlink-to-base-symlink",
        ),
    ],
)
def test_render_refuses_escape_through_a_dependency(
    rkt: Rkt,
    as_root: None,
    tmp_path: Path,
    sentinel: Path,
    app_members: Callable[[Path], list[Member]],
) -> None:
    """A base image's symlink to the host is harmless alone; an app image that writes through it
    when rendered on top is refused, and the app is not listed (nor its blob kept)."""
    base = write_aci(
        tmp_path / "base.aci",
        [
            dir_member("rootfs"),
            symlink_member("rootfs/x", str(sentinel)),
            symlink_member("rootfs/passwd-link", "/etc/passwd"),
        ],
        manifest=manifest_json("example.com/base"),
    )
    base_id = rkt.run("--insecure-options=image", "fetch", "--full", str(base)).stdout.strip()
    base_blobs, base_trees = blob_files(rkt.dir), tree_dirs(rkt.dir)
    app = write_aci(
        tmp_path / "app.aci",
        [dir_member("rootfs"), *app_members(sentinel)],
        manifest=manifest_json("example.com/app", extra=_dependency("example.com/base")),
    )
    passwd = os.stat("/etc/passwd")
    status, errors = fetch(rkt, app)
    assert status == 254, errors
    assert len(errors) == 1, errors
    assert "symlink" in errors[0] or "hard link target" in errors[0], errors
    assert tmp_entries(rkt.dir) == []
    assert (blob_files(rkt.dir), tree_dirs(rkt.dir)) == (base_blobs, base_trees)
    assert_nothing_escaped(sentinel, tmp_path, passwd)
    assert [img["id"] for img in rkt.image_list()] == [base_id]
    rkt.run("image", "verify")
    # Rendering the base alone is fine: its links are kept as links, never followed.
    out = tmp_path / "rendered"
    rkt.run("image", "render", "--rootfs-only", base_id, str(out))
    assert os.readlink(out / "x") == str(sentinel)
    assert list(sentinel.iterdir()) == []


def test_deeply_nested_manifest_is_refused(rkt: Rkt, tmp_path: Path) -> None:
    """100,000 nested JSON lists must not crash the parser: a clean 254, no traceback."""
    depth = 100_000
    shallow = json.loads(manifest_json(NAME)) | {"annotations": "@@"}
    text = json.dumps(shallow).replace('"@@"', "[" * depth + "]" * depth)
    aci = write_aci(tmp_path / "deep.aci", [dir_member("rootfs")], manifest=text.encode())
    status, errors = fetch(rkt, aci)
    assert status == 254, errors
    assert len(errors) == 1, errors
    assert tmp_entries(rkt.dir) == [] and blob_files(rkt.dir) == []
    assert rkt.image_list() == []
