"""stage1/common/manifest: the lean manifest views resolve to the same AppSpec as rkt.schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rkt import abi
from rkt.errors import PodError
from rkt.schema.image import ImageManifest as SchemaImageManifest
from rkt.schema.pod import PodManifest as SchemaPodManifest
from rkt.stage1.common import manifest as lean
from rkt.stage1.common.appspec import AppSpec, build_app_spec
from rkt.stage1.common.poddir import PodDir

UUID = "0a1b2c3d-0000-4000-8000-000000000001"
IMAGE_ID = "sha512-" + "b" * 128


class SchemaPodDir(PodDir):
    """The reference path: the manifests parsed and validated by ``rkt.schema``."""

    def read_manifest(self) -> Any:
        return SchemaPodManifest.from_json(self.file(abi.POD_MANIFEST).read_bytes())

    def read_image_manifest(self, app: str) -> Any:
        return SchemaImageManifest.from_json(
            (self.file(abi.appsinfo(app)) / "manifest").read_bytes()
        )


def _write_pod(
    tmp_path: Path, image_apps: dict[str, dict[str, Any] | None], pod: dict[str, Any]
) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nwebgrp:x:2000:\n")
    path = tmp_path / "pod"
    for name, image_app in image_apps.items():
        info = path / abi.appsinfo(name)
        info.mkdir(parents=True)
        (info / "rootfs").symlink_to(root)
        image: dict[str, Any] = {
            "acKind": "ImageManifest",
            "acVersion": "0.8.11",
            "name": f"example.com/{name}",
            "annotations": [{"name": "a", "value": "b"}],
        }
        if image_app is not None:
            image["app"] = image_app
        (info / "manifest").write_text(json.dumps(image))
    (path / "pod").write_text(json.dumps({"acKind": "PodManifest", "acVersion": "0.8.11", **pod}))
    return path


def _specs(path: Path, insecure: frozenset[str]) -> tuple[list[AppSpec], list[AppSpec]]:
    lean_pod = PodDir(path, UUID)
    lean_manifest = lean_pod.read_manifest()
    assert isinstance(lean_manifest, lean.PodManifest)
    got = [build_app_spec(lean_pod, lean_manifest, a, insecure) for a in lean_manifest.apps]
    ref_pod = SchemaPodDir(path, UUID)
    ref_manifest = ref_pod.read_manifest()
    want = [build_app_spec(ref_pod, ref_manifest, a, insecure) for a in ref_manifest.apps]
    return got, want


WEB = {
    "exec": ["/bin/web", "-v"],
    "user": "web",
    "group": "webgrp",
    "environment": [{"name": "FOO", "value": "image"}, {"name": "EMPTY", "value": ""}],
    "mountPoints": [
        {"name": "data", "path": "/data", "readOnly": True},
        {"name": "logs", "path": "/logs"},
    ],
    "ports": [{"name": "http", "protocol": "tcp", "port": 80}],
}
ISOLATORS = [
    {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_ADMIN", "CAP_CHOWN"]}},
    {"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPERM"}},
    {"name": "resource/memory", "value": {"limit": "64Mi"}},
    {"name": "resource/cpu", "value": {"limit": "500m"}},
    {"name": "os/linux/cpu-shares", "value": 512},
    {"name": "os/linux/oom-score-adj", "value": 100},
    {"name": "os/linux/pids-limit", "value": {"limit": 64}},
    {"name": "os/linux/no-new-privileges", "value": True},
    {"name": "example.com/unknown", "value": {"anything": [1, 2]}},
]
CASES: dict[str, tuple[dict[str, dict[str, Any] | None], dict[str, Any]]] = {
    "image app only": (
        {"web": WEB},
        {"apps": [{"name": "web", "image": {"id": IMAGE_ID}}]},
    ),
    "pod override, isolators, null lists": (
        {"web": WEB},
        {
            "apps": [
                {
                    "name": "web",
                    "image": {"id": IMAGE_ID, "name": "example.com/web"},
                    "app": {
                        "exec": ["web"],
                        "user": "0",
                        "group": "0",
                        "supplementaryGids": [5, 6],
                        "workingDirectory": "/srv",
                        "environment": [{"name": "PATH", "value": "/x"}],
                        "isolators": ISOLATORS,
                        "mountPoints": None,
                    },
                    "readOnlyRootFS": True,
                }
            ],
            "annotations": None,
        },
    ),
    "non-root retain-set gets ambient": (
        {"web": {**WEB, "isolators": ISOLATORS[:1], "supplementaryGIDs": [7]}},
        {"apps": [{"name": "web", "image": {"id": IMAGE_ID}, "readOnlyRootFS": False}]},
    ),
    "volumes, appVolume, copy-up": (
        {"web": WEB, "db": {**WEB, "user": "0", "group": "0", "environment": None}},
        {
            "apps": [
                {
                    "name": "web",
                    "image": {"id": IMAGE_ID},
                    "mounts": [
                        {"volume": "data", "path": "/data"},
                        {"volume": "logs", "path": "/logs"},
                        {
                            "volume": "inline",
                            "path": "/inline",
                            "appVolume": {"name": "inline", "kind": "host", "source": "/srv/i"},
                        },
                    ],
                },
                {
                    "name": "db",
                    "image": {"id": IMAGE_ID},
                    "mounts": [{"volume": "logs", "path": "/var/log"}],
                },
            ],
            "volumes": [
                {"name": "data", "kind": "host", "source": "/srv/data", "recursive": False},
                {"name": "logs", "kind": "empty", "readOnly": True, "mode": "0700", "uid": 5},
            ],
            "annotations": [{"name": abi.COPY_UP_ANNOTATION + "logs", "value": "db"}],
        },
    ),
}


@pytest.mark.parametrize("insecure", [frozenset(), frozenset({"capabilities", "seccomp", "paths"})])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lean_views_give_the_schema_app_spec(
    tmp_path: Path, case: str, insecure: frozenset[str]
) -> None:
    images, pod = CASES[case]
    got, want = _specs(_write_pod(tmp_path, images, pod), insecure)
    assert got == want
    assert [s.to_json() for s in got] == [s.to_json() for s in want]


def test_lean_views_match_the_schema_fields(tmp_path: Path) -> None:
    images, pod = CASES["volumes, appVolume, copy-up"]
    path = _write_pod(tmp_path, images, pod)
    got = PodDir(path, UUID).read_manifest()
    want = SchemaPodDir(path, UUID).read_manifest()
    for g, w in zip(got.volumes, want.volumes, strict=True):
        for field in ("name", "kind", "source", "read_only", "recursive", "mode", "uid", "gid"):
            assert getattr(g, field) == getattr(w, field), field
        assert g.mode_bits == w.mode_bits
    assert got.annotation(abi.COPY_UP_ANNOTATION + "logs") == "db"
    image = PodDir(path, UUID).read_image_manifest("web")
    ref = SchemaPodDir(path, UUID).read_image_manifest("web")
    assert image.annotation("a") == ref.annotation("a") == "b"
    assert image.app is not None and ref.app is not None
    assert [(p.name, p.protocol, p.port, p.count) for p in image.app.ports] == [
        (p.name, p.protocol, p.port, p.count) for p in ref.app.ports
    ]


def test_lean_reader_reports_a_malformed_manifest_as_the_schema_does(tmp_path: Path) -> None:
    path = _write_pod(tmp_path, {"web": WEB}, {"apps": [{"name": "web"}]})
    with pytest.raises(PodError, match="image"):
        PodDir(path, UUID).read_manifest()
    (path / abi.appsinfo("web") / "manifest").write_text(json.dumps({"acKind": "ImageManifest"}))
    with pytest.raises(PodError, match="web"):
        PodDir(path, UUID).read_image_manifest("web")


def test_the_run_path_does_not_import_the_schema(tmp_path: Path) -> None:
    images, pod = CASES["volumes, appVolume, copy-up"]
    path = _write_pod(tmp_path, images, pod)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rkt.stage1.common.appspec import build_app_spec\n"
        "from rkt.stage1.common.poddir import PodDir\n"
        f"pod = PodDir(Path({str(path)!r}), {UUID!r})\n"
        "m = pod.read_manifest()\n"
        "[build_app_spec(pod, m, a, frozenset()) for a in m.apps]\n"
        "import rkt.stage1.ns.run, rkt.stage1.ns.userns\n"
        "print(sorted(n for n in sys.modules if n.startswith('rkt.schema.')))\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env={**os.environ}
    ).stdout
    assert out.strip() == "['rkt.schema.capnames']"
