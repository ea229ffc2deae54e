"""``rkt.store.locks.remove_tree``: rm -rf for pods, trees and temporary directories, never
following a symlink out of the tree, through directories without write or search permission."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rkt.paths import Path as RktPath
from rkt.store.locks import remove_tree
from tests.conftest import require_root


def _tree(root: Path, outside: Path) -> None:
    (root / "a/b/c").mkdir(parents=True)
    (root / "a/b/c/file").write_text("x")
    (root / "a/empty").mkdir()
    (root / "top").write_text("y")
    (root / "a/to-outside-dir").symlink_to(outside)
    (root / "a/b/to-outside-file").symlink_to(outside / "keep")
    (root / "dangling").symlink_to("/nonexistent/rkt-test")
    os.mkfifo(root / "a/fifo")
    (root / "ro/inner").mkdir(parents=True)
    (root / "ro/inner/f").write_text("z")
    os.chmod(root / "ro/inner", 0o555)
    os.chmod(root / "ro", 0o000)


def test_removes_everything_and_follows_no_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    root = tmp_path / "tree"
    _tree(root, outside)
    remove_tree(RktPath(str(root)))
    assert not root.exists() and not root.is_symlink()
    assert (outside / "keep").read_text() == "kept"


def test_a_symlink_a_file_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    (target / "sub").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(target)
    remove_tree(RktPath(str(link)))
    assert not link.is_symlink() and (target / "sub").is_dir()  # the link only
    (tmp_path / "file").write_text("x")
    remove_tree(RktPath(str(tmp_path / "file")))
    assert not (tmp_path / "file").exists()
    remove_tree(RktPath(str(tmp_path / "missing")))  # nothing to do: no error


def test_an_owner_without_root_privileges_gets_through_read_only_directories() -> None:
    """As the tree's owner, not root: directories without write or search permission (an image's
    0555 and 0000 ones) are opened up, as far as they need to be removed."""
    require_root()
    base = Path(tempfile.mkdtemp(prefix="rkt-remove-tree-"))  # (pytest's tmp dirs are 0700)
    try:
        os.chmod(base, 0o755)
        outside = base / "outside"
        outside.mkdir()
        (outside / "keep").write_text("kept")
        work = base / "work"
        work.mkdir()
        root = work / "tree"
        _tree(root, outside)
        os.chmod(root, 0o555)  # the top too
        uid = 65534
        for dirpath, dirnames, filenames in os.walk(work):
            for name in [*dirnames, *filenames]:
                os.lchown(os.path.join(dirpath, name), uid, uid)
        os.chown(work, uid, uid)
        code = (
            "import os, sys\n"
            f"os.setresgid({uid}, {uid}, {uid}); os.setresuid({uid}, {uid}, {uid})\n"
            "from rkt.paths import Path\n"
            "from rkt.store.locks import remove_tree\n"
            "remove_tree(Path(sys.argv[1]))\n"
        )
        subprocess.run([sys.executable, "-c", code, str(root)], check=True, timeout=60)
        assert not root.exists()
        assert (outside / "keep").read_text() == "kept"
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=True)
