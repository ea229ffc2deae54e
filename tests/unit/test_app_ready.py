"""``rkt app add|start|stop|rm`` ask a mutable pod only once its stage1 says it is ready
(docs/stage1-abi.md §3): before that, one line that says so and how to wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rkt import abi
from rkt.errors import PodError
from rkt.pod.pod import RUN, Pod, PodLock, ensure_pods_root
from rkt.stage0.app import check_mutable

UUID = "5f0c1ad2-7f44-4a5e-9a0e-6e4bb1b2c3d4"


def test_app_commands_wait_for_ready(tmp_path: Path) -> None:
    root = ensure_pods_root(tmp_path)
    path = root / RUN / UUID
    (path / "stage1/rootfs/rkt").mkdir(parents=True)
    stage1 = {"annotations": [{"name": abi.ANN_INTERFACE_VERSION, "value": "3"}]}
    (path / abi.STAGE1_MANIFEST).write_text(json.dumps(stage1))
    (path / abi.STAGE1_CONFIG).write_text(json.dumps({"mutable": True}))
    pod = Pod(root, UUID, RUN)
    lock = PodLock(path)  # the stage1 holds it while the pod lives
    lock.exclusive()
    try:
        with pytest.raises(PodError, match=r"is not ready yet .*--wait-ready"):
            check_mutable(pod, "app add")
        (path / abi.SUPERVISOR_STATUS).symlink_to("starting")
        with pytest.raises(PodError, match="is not ready yet"):
            check_mutable(pod, "app add")
        (path / abi.SUPERVISOR_STATUS).unlink()
        (path / abi.SUPERVISOR_STATUS).symlink_to("ready")
        check_mutable(pod, "app add")
    finally:
        lock.close()
