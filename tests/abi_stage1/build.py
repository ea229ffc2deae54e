"""Turn ``stage1.py`` into a stage1 ACI with ``rkt image build`` and the ABI annotations.

    python -m tests.abi_stage1.build OUT.aci [--interface-version=N]

Tests call ``build_stage1_aci`` with their own ``rkt image build`` runner.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "example.com/rkt-abi-test-stage1"
ENTRYPOINTS = {
    "coreos.com/rkt/stage1/run": "/run",
    "coreos.com/rkt/stage1/enter": "/enter",
    "coreos.com/rkt/stage1/gc": "/gc",
    "coreos.com/rkt/stage1/stop": "/stop",
}
FILES = ("run", "init", "enter", "stop", "gc")


def stage1_manifest(interface_version: str = "1", version: str = "1.0.0") -> dict[str, object]:
    annotations = [{"name": k, "value": v} for k, v in ENTRYPOINTS.items()]
    version_key = "coreos.com/rkt/stage1/interface-version"
    annotations.append({"name": version_key, "value": interface_version})
    return {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": NAME,
        "labels": [
            {"name": "version", "value": version},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "annotations": annotations,
    }


def make_source(src: Path, interface_version: str = "1", version: str = "1.0.0") -> Path:
    """A directory with ``manifest`` and ``rootfs/`` holding the entrypoints."""
    if src.exists():
        shutil.rmtree(src)
    rootfs = src / "rootfs"
    rootfs.mkdir(parents=True)
    for name in FILES:
        shutil.copyfile(HERE / "stage1.py", rootfs / name)
        (rootfs / name).chmod(0o755)
    (src / "manifest").write_text(json.dumps(stage1_manifest(interface_version, version)))
    return src


def build_stage1_aci(
    out: Path,
    image_build: Callable[[Path, Path], object],
    *,
    interface_version: str = "1",
    version: str = "1.0.0",
) -> Path:
    """Build the ACI at ``out``; ``image_build(src_dir, out)`` runs ``rkt image build``."""
    src = make_source(out.with_suffix(".src"), interface_version, version)
    image_build(src, out)
    return out


def main(argv: list[str]) -> int:
    version = "1"
    args = []
    for arg in argv:
        if arg.startswith("--interface-version="):
            version = arg.split("=", 1)[1]
        else:
            args.append(arg)
    if len(args) != 1:
        sys.stderr.write("usage: python -m tests.abi_stage1.build OUT.aci [--interface-version=N]")
        sys.stderr.write("\n")
        return 2
    rkt = HERE.parent.parent / ".venv" / "bin" / "rkt"

    def image_build(src: Path, out: Path) -> None:
        subprocess.run([str(rkt), "image", "build", "--overwrite", str(src), str(out)], check=True)

    build_stage1_aci(Path(args[0]).resolve(), image_build, interface_version=version)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
