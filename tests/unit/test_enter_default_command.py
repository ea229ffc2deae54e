"""``rkt enter``'s default command: /bin/bash when the app's image has it (in any of its
layers, unless one above whites it out), else /bin/sh."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rkt import abi
from rkt.cli.commands.enter import default_command
from rkt.pod.pod import Pod

UUID = "5f0c1ad2-7f44-4a5e-9a0e-6e4bb1b2c3d4"


def _pod(tmp_path: Path, layers: list[Path] | None, rootfs: Path | None = None) -> Pod:
    info = tmp_path / "run" / UUID / abi.appsinfo("web")
    info.mkdir(parents=True)
    if layers is not None:
        (info / "lowerdirs").write_text("".join(f"{layer}\n" for layer in layers))
    if rootfs is not None:
        (info / "rootfs").symlink_to(rootfs)
    return Pod(tmp_path, UUID, "run")


def _layer(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    root = tmp_path / "layers" / name
    root.mkdir(parents=True)
    for path, kind in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            target.write_text("#!/bin/sh\n")
        elif kind == "whiteout":
            os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        else:  # a symlink to kind
            target.symlink_to(kind)
    return root


def test_bash_in_a_lower_layer_counts(tmp_path: Path) -> None:
    top = _layer(tmp_path, "top", {"etc/app.conf": "file"})
    base = _layer(tmp_path, "base", {"bin/bash": "file", "bin/sh": "file"})
    assert default_command(_pod(tmp_path, [top, base]), "web") == ["/bin/bash"]


def test_a_whiteout_above_removes_it(tmp_path: Path) -> None:
    top = _layer(tmp_path, "top", {"bin/bash": "whiteout"})
    base = _layer(tmp_path, "base", {"bin/bash": "file", "bin/sh": "file"})
    assert default_command(_pod(tmp_path, [top, base]), "web") == ["/bin/sh"]


def test_merged_usr_is_looked_at_through_usr_bin_never_the_host(tmp_path: Path) -> None:
    # /bin -> /usr/bin (absolute): followed, it would find the host's bash
    top = _layer(tmp_path, "top", {"bin": "/usr/bin"})
    assert default_command(_pod(tmp_path, [top]), "web") == ["/bin/sh"]
    merged = _layer(tmp_path, "merged", {"bin": "usr/bin", "usr/bin/bash": "file"})
    other = tmp_path / "other"
    other.mkdir()
    assert default_command(_pod(other, [merged]), "web") == ["/bin/bash"]


def test_an_aci_s_tree_is_its_rootfs(tmp_path: Path) -> None:
    tree = _layer(tmp_path, "tree", {"bin/sh": "file"})
    assert default_command(_pod(tmp_path, None, rootfs=tree), "web") == ["/bin/sh"]
