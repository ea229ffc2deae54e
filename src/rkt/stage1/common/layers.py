"""The lower dirs of an app's overlay: its image tree, or the stacked layer trees of an OCI image.

docs/stage1-abi.md §2: when stage0 wrote ``appsinfo/<app>/lowerdirs`` (absolute paths, one per
line, top-most first), a stage1 stacks exactly those; otherwise the one image tree (``rootfs``).

Imports only the standard library and ``rkt.abi``.
"""

from __future__ import annotations

from rkt import abi
from rkt.paths import Path

LOWERDIRS = "lowerdirs"


def app_lower_dirs(pod_path: Path, app: str, rootfs: str) -> list[str]:
    """The overlay lower dirs of ``app``, top-most first; ``[rootfs]`` without a lowerdirs file."""
    try:
        text = (pod_path / abi.appsinfo(app) / LOWERDIRS).read_text()
    except FileNotFoundError:
        return [rootfs]
    dirs = [line for line in text.splitlines() if line]
    if not dirs or not all(d.startswith("/") for d in dirs):
        raise ValueError(f'app "{app}": {LOWERDIRS} must list absolute paths, one per line')
    return dirs
