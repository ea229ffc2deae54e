"""appc dependencies rendered into the tree store: ``A -> [B, C], C -> [D]`` is applied B, D, C, A,
later files overwriting earlier ones (appc ace.md "Filesystem Setup"); ``pathWhitelist`` keeps only
the listed files; list, verify, render and rm work with dependency trees."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import Rkt
from tests.support.aci_craft import (
    Member,
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

# Which images write each shared file: the last one in B, D, C, A order must win.
SHARED = {
    "order/bd": "BD",
    "order/dc": "DC",
    "order/ca": "CA",
    "order/bc": "BC",
    "order/ba": "BA",
    "order/all": "BDCA",
}


def dep(name: str, version: str = "1.0.0") -> dict[str, object]:
    return {"imageName": name, "labels": [{"name": "version", "value": version}]}


def layer_members(letter: str) -> list[Member]:
    members = [
        dir_member("rootfs"),
        dir_member("rootfs/order"),
        file_member(f"rootfs/from-{letter}", letter.encode()),
    ]
    members += [
        file_member(f"rootfs/{path}", letter.encode())
        for path, writers in SHARED.items()
        if letter in writers
    ]
    if letter == "B":  # B's directory becomes a file in C; B's file becomes a directory in D
        members += [dir_member("rootfs/thing"), file_member("rootfs/thing/inner", b"B")]
        members += [file_member("rootfs/was-file", b"B")]
    if letter == "D":
        members += [dir_member("rootfs/was-file"), file_member("rootfs/was-file/inner", b"D")]
        members += [symlink_member("rootfs/link", "from-D")]
    if letter == "C":
        members += [file_member("rootfs/thing", b"C")]
    if letter == "A":
        members += [symlink_member("rootfs/link", "from-A")]
    return members


def build(
    tmp_path: Path, letter: str, deps: list[str], extra: dict[str, object] | None = None
) -> Path:
    fields: dict[str, object] = dict(extra or {})
    if deps:
        fields["dependencies"] = [dep(f"example.com/{d.lower()}") for d in deps]
    return write_aci(
        tmp_path / f"{letter}.aci",
        layer_members(letter[0]),
        manifest=manifest_json(f"example.com/{letter.lower()}", extra=fields),
    )


def listing(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_text()
    return out


@pytest.fixture
def chain(rkt: Rkt, tmp_path: Path, as_root: None) -> dict[str, str]:
    """B, D, C (C -> D) fetched first, then A -> [B, C]; returns letter -> image ID."""
    ids: dict[str, str] = {}
    for letter, deps in (("B", []), ("D", []), ("C", ["D"]), ("A", ["B", "C"])):
        ids[letter] = rkt.run(*FETCH, str(build(tmp_path, letter, deps))).stdout.strip()
    return ids


EXPECTED_A = {
    "from-A": "A",
    "from-B": "B",
    "from-C": "C",
    "from-D": "D",
    "link": "-> from-A",
    "order": "dir",
    **{path: writers[-1] for path, writers in SHARED.items()},
    "thing": "C",
    "was-file": "dir",
    "was-file/inner": "D",
}


def tree_of(rkt: Rkt, image_ids: list[str]) -> Path:
    """The tree-store directory rendered from exactly this chain (docs/architecture.md: a tree is
    named ``deps-`` + the first 64 hex digits of the sha512 of its newline-joined chain)."""
    name = "deps-" + hashlib.sha512("\n".join(image_ids).encode()).hexdigest()[:64]
    tree = rkt.dir / "cas" / "tree" / name
    assert tree.is_dir(), f"no tree rendered from {image_ids}"
    return tree


def test_dependencies_render_in_order_b_d_c_a(
    rkt: Rkt, tmp_path: Path, chain: dict[str, str]
) -> None:
    # At fetch time, in the tree store:
    tree = tree_of(rkt, [chain[x] for x in "BDCA"])
    assert listing(tree / "rootfs") == EXPECTED_A
    assert json.loads((tree / "manifest").read_bytes())["name"] == "example.com/a"
    assert listing(tree_of(rkt, [chain["D"], chain["C"]]) / "rootfs")["order/dc"] == "C"
    # And with `rkt image render`:
    out = tmp_path / "rendered"
    rkt.run("image", "render", "example.com/a", str(out))
    assert listing(out / "rootfs") == EXPECTED_A
    rkt.run("image", "render", "--rootfs-only", chain["C"], str(out), "--overwrite")
    assert listing(out)["order/dc"] == "C" and "from-B" not in listing(out)
    # `image extract` is the image's own files only.
    own = tmp_path / "own"
    rkt.run("image", "extract", "--rootfs-only", "example.com/a", str(own))
    assert sorted(listing(own)) == ["from-A", "link", "order", "order/all", "order/ba", "order/ca"]
    assert tmp_entries(rkt.dir) == []


def test_path_whitelist_keeps_only_listed_files(
    rkt: Rkt, tmp_path: Path, chain: dict[str, str]
) -> None:
    whitelist = ["/from-A", "/from-D", "/order/all", "/was-file/inner"]
    aci = build(tmp_path, "Awl", ["B", "C"], {"pathWhitelist": whitelist})
    image_id = rkt.run(*FETCH, str(aci)).stdout.strip()
    expected = {
        "from-A": "A",
        "from-D": "D",
        "order": "dir",
        "order/all": "A",
        "was-file": "dir",
        "was-file/inner": "D",
    }
    tree = tree_of(rkt, [chain["B"], chain["D"], chain["C"], image_id])
    assert listing(tree / "rootfs") == expected
    out = tmp_path / "rendered"
    rkt.run("image", "render", "--rootfs-only", image_id, str(out))
    assert listing(out) == expected
    rkt.run("image", "verify", image_id)


def test_list_verify_and_rm_with_dependency_trees(rkt: Rkt, chain: dict[str, str]) -> None:
    listed = {str(img["name"]): str(img["id"]) for img in rkt.image_list()}
    assert listed == {f"example.com/{x.lower()}": chain[x] for x in "ABCD"}
    verify = rkt.run("image", "verify", "--format=json")
    assert sorted(r["id"] for r in json.loads(verify.stdout)) == sorted(chain.values())
    assert all(r["ok"] for r in json.loads(verify.stdout))
    assert len(tree_dirs(rkt.dir)) == 4  # B, D, D+C, B+D+C+A

    # Tampering with A's rendered tree is caught.
    tree = tree_of(rkt, [chain[x] for x in "BDCA"])
    (tree / "rootfs" / "from-B").write_text("tampered")
    proc = rkt.run("image", "verify", chain["A"], check=False)
    assert proc.returncode == 254 and "was modified" in proc.stdout

    # Removing a dependency removes the trees built on it; A stays listed and intact.
    rkt.run("image", "rm", chain["D"])
    assert tree_dirs(rkt.dir) == [tree_of(rkt, [chain["B"]]).name]
    assert sorted(blob_files(rkt.dir)) == sorted(chain[x] for x in "ABC")
    rkt.run("image", "verify")
    render = rkt.run("image", "render", "example.com/a", str(rkt.root / "out"), check=False)
    assert render.returncode == 254 and "example.com/d" in render.stderr
    assert not (rkt.root / "out").exists()


def test_image_rm_refuses_the_images_a_prepared_pods_tree_is_rendered_from(
    rkt: Rkt, chain: dict[str, str]
) -> None:
    """A prepared pod of A will run on A's tree, rendered from B, D, C and A: while it exists,
    neither A nor a dependency may be removed (that would remove the tree); once the pod is
    gone, they may."""
    prepare = ("prepare", "--quiet", "--insecure-options=image", "example.com/a")
    uuid = rkt.run(*prepare, "--exec=/from-A").stdout.strip()
    for letter in "AD":
        refused = rkt.run("image", "rm", chain[letter], check=False)
        assert refused.returncode == 254 and refused.stderr.count("\n") == 1
        assert f'used by prepared pod "{uuid}"' in refused.stderr
    listed = {img["id"] for img in rkt.image_list()}  # (and the stage1's)
    assert {chain[x] for x in "ABCD"} <= listed
    rkt.run("rm", uuid)
    rkt.run("image", "rm", chain["D"])
    assert {img["id"] for img in rkt.image_list()} == listed - {chain["D"]}


def test_fetch_of_image_with_missing_dependency_lists_nothing(rkt: Rkt, tmp_path: Path) -> None:
    """A dependency neither in the store nor discoverable (nothing listens on localhost:443):
    the fetch fails and leaves nothing behind."""
    rkt.run(*FETCH, str(build(tmp_path, "B", [])))
    before = blob_files(rkt.dir), tree_dirs(rkt.dir)
    aci = write_aci(
        tmp_path / "needy.aci",
        layer_members("A"),
        manifest=manifest_json(
            "example.com/needy",
            extra={"dependencies": [dep("example.com/b"), dep("localhost/missing")]},
        ),
    )
    proc = rkt.run(*FETCH, str(aci), check=False, timeout=120)
    assert proc.returncode == 254, proc.stderr
    assert "localhost/missing" in proc.stderr
    assert [img["name"] for img in rkt.image_list()] == ["example.com/b"]
    assert (blob_files(rkt.dir), tree_dirs(rkt.dir)) == before
    assert tmp_entries(rkt.dir) == []
