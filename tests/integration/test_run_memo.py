"""``rkt run``'s memo (rkt.stage0.runmemo): a command line run a third time lays its pod out from
the memo its second run wrote, exactly as prepare would have, and never once anything it was
decided from has changed: the store's images under its names, the configuration, the
environment, an environment file."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ImageFactory, Rkt

pytestmark = pytest.mark.usefixtures("as_root")

IMAGE = "example.com/memo"
INSECURE = "--insecure-options=image"
HIT = "laid out from the run memo"


def run(rkt: Rkt, *args: str, check: bool = True) -> tuple[str, bool, str]:
    """``rkt run --debug ARGS``: the app's output, whether the memo laid the pod out, the UUID."""
    uuid_file = rkt.root / "uuid"
    proc = rkt.run("run", "--debug", f"--uuid-file-save={uuid_file}", *args, check=check)
    uuid = uuid_file.read_text().strip() if proc.returncode == 0 else ""
    return proc.stdout if check else proc.stdout + proc.stderr, HIT in proc.stderr, uuid


def warm(rkt: Rkt, *args: str) -> str:
    """Run ``args`` twice, as the usual way both times (the second writes the memo)."""
    outs = [run(rkt, *args) for _ in range(2)]
    assert [hit for _, hit, _ in outs] == [False, False]
    return outs[-1][0]


def fetch(rkt: Rkt, images: ImageFactory, message: str, out: str) -> str:
    aci = images.build(IMAGE, extra_files={"msg": message.encode()}, out=images.workdir / out)
    return rkt.run(INSECURE, "fetch", str(aci)).stdout.strip()


def laid_out(rkt: Rkt, uuid: str) -> dict[str, object]:
    """What stage0 lays out in a pod (docs/stage1-abi.md §2), each path's type, mode, owner,
    and content or target; the stage1 tree's files by inode (hard links into the store)."""
    pod = next((rkt.dir / "pods").glob(f"*/{uuid}"))
    out: dict[str, object] = {}
    roots = [
        "pod",
        "appsinfo",
        "overlay",
        "stage1/manifest",
        *(
            f"stage1/rootfs/{e.name}"
            for e in (pod / "stage1" / "rootfs").iterdir()
            if e.name not in ("rkt", "opt")
        ),
    ]
    for rel in roots:
        top = pod / rel
        for path in [top, *(sorted(top.rglob("*")) if top.is_dir() else [])]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                what: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what = st.st_ino if rel.startswith("stage1/rootfs/") else path.read_bytes()
            else:
                what = sorted(p.name for p in path.iterdir())
            out[str(path.relative_to(pod))] = (
                stat.S_IFMT(st.st_mode),
                st.st_mode & 0o7777,
                st.st_uid,
                st.st_gid,
                what,
            )
    return out


def test_a_command_line_run_again_is_laid_out_from_its_memo_as_prepare_would(
    rkt: Rkt, images: ImageFactory
) -> None:
    fetch(rkt, images, "one", "one.aci")
    args = (IMAGE, "--exec=/bin/cat", "--", "/msg")
    out1, hit1, uuid1 = run(rkt, *args)  # a mark
    memos = rkt.dir / "cache" / "run-memo"
    assert [p.suffix for p in memos.iterdir()] == [".seen"]
    out2, hit2, _ = run(rkt, *args)  # the memo
    assert [p.suffix for p in memos.iterdir()] == [".json"]
    out3, hit3, uuid3 = run(rkt, *args)
    assert [(out1, hit1), (out2, hit2), (out3, hit3)] == [("one", False)] * 2 + [("one", True)]
    assert laid_out(rkt, uuid3) == laid_out(rkt, uuid1)
    assert stat.S_IMODE(memos.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in memos.iterdir()] == [0o600]
    # another command line has a memo of its own
    assert warm(rkt, IMAGE, "--exec=/bin/cat", "--", "/msg", "/msg") == "oneone"
    assert run(rkt, IMAGE, "--exec=/bin/cat", "--", "/msg", "/msg")[:2] == ("oneone", True)
    assert run(rkt, *args)[:2] == ("one", True)
    # the memo off
    rkt.env["RKT_RUN_MEMO"] = "0"
    assert run(rkt, *args)[:2] == ("one", False)


def test_the_memo_follows_the_images_in_the_store(rkt: Rkt, images: ImageFactory) -> None:
    old = fetch(rkt, images, "one", "one.aci")
    args = ("--pull-policy=never", IMAGE, "--exec=/bin/cat", "--", "/msg")
    warm(rkt, *args)
    assert run(rkt, *args)[:2] == ("one", True)
    new = fetch(rkt, images, "two", "two.aci")  # same name and labels, imported later: chosen
    assert warm(rkt, *args) == "two"
    assert run(rkt, *args)[:2] == ("two", True)
    rkt.run("image", "rm", new)
    assert run(rkt, *args)[:2] == ("one", False)
    rkt.run("image", "rm", old)
    out, hit, _ = run(rkt, *args, check=False)
    assert not hit and "not in the store" in out


def test_the_environment_and_environment_files_are_read_by_every_run(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    fetch(rkt, images, "one", "one.aci")
    shell = ("--exec=/bin/sh", "--", "-c", "echo $FOO $BAR")
    rkt.env["FOO"] = "a"
    warm(rkt, "--inherit-env", IMAGE, *shell)
    assert run(rkt, "--inherit-env", IMAGE, *shell)[:2] == ("a\n", True)
    rkt.env["FOO"] = "b"
    assert run(rkt, "--inherit-env", IMAGE, *shell)[:2] == ("b\n", False)
    env_file = tmp_path / "env"
    env_file.write_text("BAR=1\n")
    warm(rkt, f"--set-env-file={env_file}", IMAGE, *shell)
    assert run(rkt, f"--set-env-file={env_file}", IMAGE, *shell)[:2] == ("1\n", False)
    env_file.write_text("BAR=2\n")
    assert run(rkt, f"--set-env-file={env_file}", IMAGE, *shell)[:2] == ("2\n", False)


def test_the_memo_follows_the_configuration(rkt: Rkt, images: ImageFactory) -> None:
    fetch(rkt, images, "one", "one.aci")
    args = (IMAGE, "--exec=/bin/cat", "--", "/msg")
    warm(rkt, *args)
    assert run(rkt, *args)[:2] == ("one", True)
    stage1_d = rkt.local_config / "stage1.d"
    stage1_d.mkdir(parents=True)
    (stage1_d / "default.json").write_text(
        '{"rktKind": "stage1", "rktVersion": "v1", "name": "coreos.com/rkt/stage1-default"}'
    )
    assert warm(rkt, *args) == "one"
    assert run(rkt, *args)[:2] == ("one", True)
    (stage1_d / "default.json").write_text('{"rktKind": "stage1", "rktVersion": "v1"}')
    assert run(rkt, *args)[:2] == ("one", False)


def test_a_memo_does_not_skip_the_checks_made_before_a_pod_exists(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    fetch(rkt, images, "one", "one.aci")
    save = tmp_path / "out" / "uuid"
    save.parent.mkdir()
    args = ("run", f"--uuid-file-save={save}", IMAGE)
    for _ in range(3):  # the third from the memo
        rkt.run(*args)
    assert len(list((rkt.dir / "pods").glob("*/*"))) == 3
    save.unlink()
    save.parent.rmdir()
    proc = rkt.run(*args, check=False)
    assert proc.returncode == 2 and "--uuid-file-save" in proc.stderr
    assert len(list((rkt.dir / "pods").glob("*/*"))) == 3  # no pod for the refused run


def test_a_file_named_as_the_image_is_the_image_again(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    # an image argument names a file when a regular file of that name exists (rkt's rule)
    fetch(rkt, images, "one", "one.aci")
    shadow = images.build(IMAGE, extra_files={"msg": b"file"}, out=images.workdir / "file.aci")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    argv = rkt.argv("run", "--debug", INSECURE, IMAGE, "--exec=/bin/cat", "--", "/msg")

    def run_here() -> tuple[str, bool]:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True)
        return proc.stdout, HIT in proc.stderr

    assert [run_here() for _ in range(3)] == [("one", False)] * 2 + [("one", True)]
    (cwd / "example.com").mkdir()
    shutil.copy(shadow, cwd / IMAGE)
    assert run_here() == ("file", False)


def test_a_file_reached_through_a_symlink_and_dot_dot_is_the_image_again(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    # "example.com/memo:1/../../x" as a path: the kernel follows the symlink before the ".."
    aci = images.build(
        IMAGE, "1/../../x", extra_files={"msg": b"one"}, out=images.workdir / "v.aci"
    )
    rkt.run(INSECURE, "fetch", str(aci))
    shadow = images.build(IMAGE, extra_files={"msg": b"file"}, out=images.workdir / "file.aci")
    cwd, elsewhere = tmp_path / "cwd", tmp_path / "elsewhere"
    (cwd / "example.com").mkdir(parents=True)
    (elsewhere / "a" / "b").mkdir(parents=True)
    argv = rkt.argv(
        "run", "--debug", INSECURE, f"{IMAGE}:1/../../x", "--exec=/bin/cat", "--", "/msg"
    )

    def run_here() -> tuple[str, bool]:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True)
        return proc.stdout, HIT in proc.stderr

    assert [run_here() for _ in range(3)][-1] == ("one", True)
    (cwd / f"{IMAGE}:1").symlink_to(elsewhere / "a" / "b")
    shutil.copy(shadow, elsewhere / "x")
    assert run_here() == ("file", False)
