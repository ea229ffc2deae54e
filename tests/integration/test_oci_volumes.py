"""Docker copy-up of an OCI image's VOLUME (docs/images.md "Volumes"): the implicit empty volume
starts as the image's content there (layers and whiteouts resolved), writes land in the pod's
volume directory, and an explicit ``--volume`` for that name is used as given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.integration.conftest import Rkt
from tests.integration.oci_registry import LayoutWriter, busybox_tree

INSECURE = "--insecure-options=image"
ANNOTATION = "rkt.local/copy-up/volume-data"


@pytest.fixture(scope="session")
def volume_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("oci-volume") / "layout"
    w = LayoutWriter(root)
    base = busybox_tree({"data": None, "data/seed.txt": b"seed\n", "data/old.txt": b"old\n"})
    upper = {
        "data": None,
        "data/.wh.old.txt": b"",
        "data/sub": None,
        "data/sub/new.txt": b"new\n",
        "data/link": "seed.txt",
    }
    config = {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Volumes": {"/data": {}}}
    w.tag("v1", w.image([(base, "gzip"), (upper, "gzip")], config))
    return f"oci:{root}:v1"


def _prepare(rkt: Rkt, *args: str) -> tuple[str, Path]:
    uuid = rkt.run("prepare", "--quiet", INSECURE, *args).stdout.strip().splitlines()[-1]
    [pod_dir] = list(rkt.dir.glob(f"pods/*/{uuid}"))
    return uuid, pod_dir


def _annotations(rkt: Rkt, uuid: str) -> dict[str, str]:
    manifest = json.loads(rkt.run("cat-manifest", uuid).stdout)
    return {a["name"]: a["value"] for a in manifest.get("annotations", [])}


def test_image_volume_is_copied_up_and_writes_land_in_the_pod_volume(
    rkt: Rkt, volume_image: str
) -> None:
    require_root()
    script = (
        "cat /data/seed.txt /data/sub/new.txt /data/link; test ! -e /data/old.txt && echo wh-ok;"
        " echo written > /data/out; grep ' /data ' /proc/mounts >/dev/null && echo mounted"
    )
    uuid, _ = _prepare(rkt, volume_image, "--", "sh", "-c", script)
    assert _annotations(rkt, uuid)[ANNOTATION] == "layout"
    out = rkt.run("run-prepared", uuid).stdout
    assert "seed\nnew\nseed\nwh-ok\nmounted" in out
    volume = next(rkt.dir.glob(f"pods/*/{uuid}")) / "volumes" / "volume-data"
    assert (volume / "out").read_text() == "written\n"
    assert (volume / "seed.txt").read_text() == "seed\n"
    assert (volume / "link").is_symlink() and not (volume / "old.txt").exists()
    # The write went to the volume only: no layer tree and no overlay upper has it.
    assert not list(rkt.dir.glob("cas/layers/*/rootfs/data/out"))
    assert not list(rkt.dir.glob(f"pods/*/{uuid}/overlay/*/upper/data/out"))
    marker = next(rkt.dir.glob(f"pods/*/{uuid}")) / "stage1/rootfs/rkt/private/copy-up"
    assert (marker / "volume-data").read_text() == "done\n"


def test_explicit_volume_disables_copy_up(rkt: Rkt, volume_image: str) -> None:
    require_root()
    script = 'test -z "$(ls -A /data)" && echo empty-ok'
    uuid, _ = _prepare(
        rkt, "--volume=volume-data,kind=empty", volume_image, "--", "sh", "-c", script
    )
    assert ANNOTATION not in _annotations(rkt, uuid)
    assert "empty-ok" in rkt.run("run-prepared", uuid).stdout


def test_copy_up_in_a_private_users_pod(rkt: Rkt, volume_image: str) -> None:
    """A --private-users pod with a copy-up volume: the volume is filled (as host root, with
    the image's owners) before the pod's user namespace exists, then bound idmapped like any
    volume: the pod's root owns what the image's root owned, and its writes land there."""
    require_root()
    script = "cat /data/seed.txt /data/sub/new.txt; echo written > /data/out"
    script += "; stat -c %u /data/seed.txt; id -u"
    out = rkt.run(
        "run", INSECURE, "--net=none", "--private-users", volume_image, "--", "sh", "-c", script
    ).stdout
    assert out.split() == ["seed", "new", "0", "0"]
    [written] = list(rkt.dir.glob("pods/*/*/volumes/volume-data/out"))
    assert written.read_text() == "written\n"
