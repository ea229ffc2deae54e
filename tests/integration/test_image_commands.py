"""The ``rkt image`` commands on a real store: export re-imports to the same ID (issue 2,
acceptance 6), extract/render write the expected tree, cat-manifest, rm by ID prefix and by name,
ambiguous prefixes refused, gc with a grace period."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.integration.conftest import ImageFactory, Rkt
from tests.support.aci_craft import (
    blob_files,
    dir_member,
    file_member,
    manifest_json,
    symlink_member,
    tmp_entries,
    tree_dirs,
    write_aci,
)

FETCH = ("--insecure-options=image", "fetch", "--full")


def fetch(rkt: Rkt, aci: Path) -> str:
    return rkt.run(*FETCH, str(aci)).stdout.strip()


def small_aci(path: Path, name: str, version: str = "1.0.0", payload: bytes = b"") -> Path:
    return write_aci(
        path,
        [
            dir_member("rootfs"),
            dir_member("rootfs/etc"),
            file_member("rootfs/etc/payload", payload or name.encode()),
            symlink_member("rootfs/link", "etc/payload"),
        ],
        manifest=manifest_json(name, version),
    )


def listing(root: Path) -> dict[str, str]:
    """Relative path -> kind and content (files), target (symlinks) or "dir"."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_export_of_gzip_image_reimports_to_the_same_id(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    aci = images.build("example.com/export", compression="gzip")
    assert aci.read_bytes()[:2] == b"\x1f\x8b"
    image_id = fetch(rkt, aci)
    exported = tmp_path / "exported.aci"
    rkt.run("image", "export", image_id, str(exported))
    # Uncompressed, and its sha512 is the image ID (appc: the ID hashes the uncompressed tar).
    assert "sha512-" + hashlib.sha512(exported.read_bytes()).hexdigest() == image_id
    # Refuses to overwrite without --overwrite; replaces with it.
    refused = rkt.run("image", "export", image_id, str(exported), check=False)
    assert refused.returncode != 0 and "exists" in refused.stderr
    rkt.run("image", "export", "--overwrite", "example.com/export", str(exported))

    fresh = Rkt(tmp_path / "fresh")
    fresh.root.mkdir()
    assert fetch(fresh, exported) == image_id
    fresh.run("image", "verify", image_id)
    assert [img["id"] for img in fresh.image_list()] == [image_id]
    assert not list(tmp_path.glob(".exported.aci.rkt-tmp-*"))


def test_export_of_a_corrupt_blob_fails_without_leaving_files(rkt: Rkt, tmp_path: Path) -> None:
    aci = write_aci(
        tmp_path / "z.aci",
        [dir_member("rootfs"), file_member("rootfs/data", os.urandom(1 << 18))],
        manifest=manifest_json("example.com/corrupt"),
        compression="gzip",
    )
    image_id = fetch(rkt, aci)
    (blob,) = (rkt.dir / "cas" / "blob" / "sha512").glob("*/*")
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    out = tmp_path / "out" / "exported.aci"
    out.parent.mkdir()
    proc = rkt.run("image", "export", image_id, str(out), check=False)
    assert proc.returncode == 254 and "truncated" in proc.stderr, proc.stderr
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("command", ["extract", "render"])
def test_extract_and_render_write_the_image_tree(rkt: Rkt, tmp_path: Path, command: str) -> None:
    aci = small_aci(tmp_path / "small.aci", "example.com/small")
    image_id = fetch(rkt, aci)

    full = tmp_path / f"{command}-full"
    rkt.run("image", command, image_id, str(full))
    assert sorted(p.name for p in full.iterdir()) == ["manifest", "rootfs"]
    assert json.loads((full / "manifest").read_bytes())["name"] == "example.com/small"
    assert listing(full / "rootfs") == {
        "etc": "dir",
        "etc/payload": hashlib.sha256(b"example.com/small").hexdigest(),
        "link": "-> etc/payload",
    }

    only = tmp_path / f"{command}-rootfs"
    rkt.run("image", command, "--rootfs-only", "example.com/small", str(only))
    assert listing(only) == listing(full / "rootfs")

    # An existing target is refused unless --overwrite, which replaces it wholesale.
    refused = rkt.run("image", command, image_id, str(only), check=False)
    assert refused.returncode != 0
    assert "exists" in refused.stderr and "--overwrite" in refused.stderr
    (only / "stale").write_text("left over")
    rkt.run("image", command, "--overwrite", "--rootfs-only", image_id, str(only))
    assert listing(only) == listing(full / "rootfs")
    assert not list(tmp_path.glob(f".{command}-*.rkt-tmp-*"))
    assert tmp_entries(rkt.dir) == []


def test_cat_manifest_prints_the_stored_manifest(rkt: Rkt, tmp_path: Path) -> None:
    aci = small_aci(tmp_path / "small.aci", "example.com/cat")
    image_id = fetch(rkt, aci)
    expected = json.loads(manifest_json("example.com/cat"))
    pretty = rkt.run("image", "cat-manifest", image_id).stdout
    assert json.loads(pretty) == expected
    assert pretty.count("\n") > 5
    compact = rkt.run("image", "cat-manifest", "--pretty-print=false", image_id[:20]).stdout
    assert json.loads(compact) == expected and compact.count("\n") == 1
    assert json.loads(rkt.run("image", "cat-manifest", "example.com/cat:1.0.0").stdout) == expected
    missing = rkt.run("image", "cat-manifest", "example.com/nothing", check=False)
    assert missing.returncode == 254 and "not in the store" in missing.stderr


def test_rm_by_id_prefix_and_by_name(rkt: Rkt, tmp_path: Path) -> None:
    one = fetch(rkt, small_aci(tmp_path / "one.aci", "example.com/one"))
    two = fetch(rkt, small_aci(tmp_path / "two.aci", "example.com/two"))
    assert len(blob_files(rkt.dir)) == 2 and len(tree_dirs(rkt.dir)) == 2

    rkt.run("image", "rm", one[:19])
    assert [img["id"] for img in rkt.image_list()] == [two]
    assert blob_files(rkt.dir) == [two] and len(tree_dirs(rkt.dir)) == 1

    rkt.run("image", "rm", "example.com/two")
    assert rkt.image_list() == []
    assert blob_files(rkt.dir) == [] and tree_dirs(rkt.dir) == []
    assert tmp_entries(rkt.dir) == []

    gone = rkt.run("image", "rm", one[:19], check=False)
    assert gone.returncode == 254 and "no image" in gone.stderr


def test_rm_by_name_with_two_versions_is_refused_without_a_version(
    rkt: Rkt, tmp_path: Path
) -> None:
    v1 = fetch(rkt, small_aci(tmp_path / "v1.aci", "example.com/multi", "1.0.0"))
    v2 = fetch(rkt, small_aci(tmp_path / "v2.aci", "example.com/multi", "2.0.0"))
    refused = rkt.run("image", "rm", "example.com/multi", check=False)
    assert refused.returncode == 254 and "give an ID" in refused.stderr
    assert len(rkt.image_list()) == 2
    rkt.run("image", "rm", "example.com/multi:2.0.0")
    assert [img["id"] for img in rkt.image_list()] == [v1]
    assert v2 not in blob_files(rkt.dir)


def test_ambiguous_id_prefix_is_refused(rkt: Rkt, tmp_path: Path) -> None:
    """Fetch small images until two share their first hex digit; that prefix is ambiguous."""
    by_digit: dict[str, list[str]] = {}
    for i in range(17):  # pigeonhole: 17 IDs over 16 digits
        image_id = fetch(rkt, small_aci(tmp_path / f"i{i}.aci", f"example.com/i{i}"))
        by_digit.setdefault(image_id[7], []).append(image_id)
        if len(by_digit[image_id[7]]) == 2:
            break
    digit, pair = next((d, ids) for d, ids in by_digit.items() if len(ids) == 2)
    prefix = "sha512-" + digit
    before = rkt.image_list()
    for argv in (
        ("image", "rm", prefix),
        ("image", "cat-manifest", prefix),
        ("image", "export", prefix, str(tmp_path / "out.aci")),
        ("image", "verify", prefix),
        ("image", "render", prefix, str(tmp_path / "out")),
    ):
        proc = rkt.run(*argv, check=False)
        assert proc.returncode == 254, (argv, proc.stderr)
        assert "matches 2 images" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert rkt.image_list() == before
    assert not (tmp_path / "out.aci").exists() and not (tmp_path / "out").exists()
    # One more digit than the shared prefix resolves each of them.
    shared = next(i for i, (a, b) in enumerate(zip(*pair, strict=True)) if a != b)
    for image_id in pair:
        rkt.run("image", "cat-manifest", image_id[: shared + 1])


def test_gc_with_zero_grace_period_removes_images(rkt: Rkt, tmp_path: Path) -> None:
    for name in ("example.com/gc-a", "example.com/gc-b"):
        fetch(rkt, small_aci(tmp_path / f"{name[12:]}.aci", name))
    rkt.run("image", "gc", "--grace-period=24h")
    assert len(rkt.image_list()) == 2  # used just now: kept
    proc = rkt.run("image", "gc", "--grace-period=0s")
    assert proc.stderr.count("successfully removed image") == 2
    assert rkt.image_list() == []
    assert blob_files(rkt.dir) == [] and tree_dirs(rkt.dir) == []
    assert tmp_entries(rkt.dir) == []


def test_gc_removes_orphan_blobs_and_trees(rkt: Rkt, tmp_path: Path) -> None:
    image_id = fetch(rkt, small_aci(tmp_path / "kept.aci", "example.com/kept"))
    shard = rkt.dir / "cas" / "blob" / "sha512" / "ab"
    shard.mkdir(exist_ok=True)
    orphan_blob = shard / ("sha512-ab" + "0" * 126)
    orphan_blob.write_bytes(b"not listed")
    orphan_tree = rkt.dir / "cas" / "tree" / ("deps-" + "1" * 64)
    (orphan_tree / "rootfs").mkdir(parents=True)
    (orphan_tree / "rootfs" / "f").write_text("x")
    proc = rkt.run("image", "gc", "--grace-period=24h")
    assert proc.stderr.count("removed orphan") == 2
    assert not orphan_blob.exists() and not orphan_tree.exists()
    assert [img["id"] for img in rkt.image_list()] == [image_id]
    rkt.run("image", "verify")


def test_verify_detects_a_modified_tree_and_blob(rkt: Rkt, tmp_path: Path) -> None:
    image_id = fetch(rkt, small_aci(tmp_path / "v.aci", "example.com/verify"))
    rkt.run("image", "verify", image_id)
    (tree,) = tree_dirs(rkt.dir)
    payload = rkt.dir / "cas" / "tree" / tree / "rootfs" / "etc" / "payload"
    payload.write_bytes(b"tampered")
    proc = rkt.run("image", "verify", check=False)
    assert proc.returncode == 254 and "was modified" in proc.stdout
    rkt.run("image", "rm", image_id)
    image_id = fetch(rkt, small_aci(tmp_path / "v.aci", "example.com/verify"))
    (blob,) = (rkt.dir / "cas" / "blob" / "sha512").glob("*/*")
    with open(blob, "r+b") as fh:
        fh.seek(600)
        fh.write(b"X")
    proc = rkt.run("image", "verify", "--format=json", check=False)
    assert proc.returncode == 254
    (result,) = json.loads(proc.stdout)
    assert result["ok"] is False and "does not match" in result["problem"]


def test_image_list_fields_and_json(rkt: Rkt, tmp_path: Path) -> None:
    image_id = fetch(rkt, small_aci(tmp_path / "l.aci", "example.com/list", "3.1.4"))
    table = rkt.run("image", "list", "--no-legend", "--full", "--fields=id,name").stdout
    assert table.split() == [image_id, "example.com/list:3.1.4"]
    (img,) = rkt.image_list()
    assert img["id"] == image_id and img["name"] == "example.com/list"
    assert img["labels"] == {"version": "3.1.4", "os": "linux", "arch": "amd64"}
    bad = rkt.run("image", "list", "--fields=nope", check=False)
    assert bad.returncode == 2


def test_overwrite_replaces_a_target_only_once_the_new_one_is_complete(
    rkt: Rkt, tmp_path: Path
) -> None:
    """``--overwrite`` never loses what it would replace: an extraction that fails (no space
    left) leaves the old target as it was; the store's own directory, or one holding it, is
    never a target; ``image export --overwrite`` replaces only a regular file."""
    require_root()
    image_id = fetch(
        rkt, small_aci(tmp_path / "big.aci", "example.com/big", payload=b"x" * 300_000)
    )
    small = tmp_path / "small-fs"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(small)], check=True)
    try:
        old = small / "tree"
        old.mkdir()
        (old / "precious").write_text("kept")
        proc = rkt.run("image", "extract", "--overwrite", image_id, str(old), check=False)
        assert proc.returncode == 254 and proc.stderr.count("\n") == 1, proc.stderr
        assert f'target "{old}"' in proc.stderr and "No space left" in proc.stderr
        assert (old / "precious").read_text() == "kept"
        assert sorted(p.name for p in small.iterdir()) == ["tree"]  # no staging left behind
    finally:
        subprocess.run(["umount", str(small)], check=True)

    for target in (rkt.dir, rkt.dir.parent):
        proc = rkt.run("image", "extract", "--overwrite", image_id, str(target), check=False)
        assert proc.returncode == 2 and "holds the image store" in proc.stderr
    assert rkt.run("image", "list", "--no-legend").stdout.count("example.com/big") == 1

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = rkt.run("image", "export", "--overwrite", image_id, str(fifo), check=False)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_image_build_and_fetch_refuse_bad_paths_on_one_line(rkt: Rkt, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "rootfs").mkdir(parents=True)
    (src / "manifest").write_bytes(manifest_json("example.com/paths", "1"))
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    good = tmp_path / "good.aci"
    rkt.run("image", "build", str(src), str(good))
    cases = [
        (["image", "build", str(src), str(tmp_path / "nodir" / "x.aci")], 254, "No such file"),
        (["image", "build", str(src), str(tmp_path / "afile" / "x.aci")], 254, "Not a directory"),
        (["image", "build", "--overwrite", str(src), str(tmp_path / "adir")], 2, "regular file"),
        (["image", "build", str(good), str(tmp_path / "y.aci")], 2, 'needs a "manifest"'),
        ([*FETCH, str(tmp_path / "adir")], 254, "a directory, not an image file"),
        ([*FETCH, "/dev/null"], 254, "not a regular file"),
    ]
    for argv, code, message in cases:
        proc = rkt.run(*argv, check=False)
        errors = [line for line in proc.stderr.splitlines() if "warning:" not in line]
        assert proc.returncode == code and len(errors) == 1 and message in errors[0], argv
    assert (tmp_path / "adir").is_dir() and rkt.run("image", "list", "--no-legend").stdout == ""
