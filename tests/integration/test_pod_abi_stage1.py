"""The stage1 ABI is real (issue 3, acceptance 6): a stage1 written only from docs/stage1-abi.md
(tests/abi_stage1) runs a pod, and stage0 refuses a stage1 speaking an unknown interface version."""

from __future__ import annotations

import json
from pathlib import Path

from rkt.abi import INTERFACE_VERSION
from tests.abi_stage1.build import make_source
from tests.conftest import require_root
from tests.integration.conftest import ImageFactory, Rkt
from tests.integration.test_pod_lifecycle import INSECURE, abi_stage1_aci


def test_abi_stage1_runs_the_app_and_propagates_its_exit_status(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    require_root()
    stage1 = abi_stage1_aci(rkt, tmp_path)
    image = images.build("example.com/busybox")
    uuid_file = tmp_path / "uuid"
    proc = rkt.run(
        "run",
        INSECURE,
        f"--stage1-path={stage1}",
        "--net=host",
        f"--uuid-file-save={uuid_file}",
        str(image),
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo hello-from-abi-stage1; hostname; exit 42",
        check=False,
    )
    assert proc.returncode == 42, proc.stderr
    uuid = uuid_file.read_text().strip()
    assert "hello-from-abi-stage1" in proc.stdout
    assert f"rkt-{uuid}" in proc.stdout  # the ABI's default hostname
    status = dict(line.split("=", 1) for line in rkt.run("status", uuid).stdout.splitlines())
    assert status["app-busybox"] == "42"
    pod_dir = rkt.dir / "pods" / "run" / uuid
    doc = json.loads((pod_dir / "stage1/rootfs/rkt/status/busybox.json").read_text())
    assert doc["state"] == "exited" and doc["exit_code"] == 42
    manifest = json.loads((pod_dir / "stage1" / "manifest").read_text())
    assert manifest["name"] == "example.com/rkt-abi-test-stage1"
    rkt.run("gc", "--grace-period=0s")
    assert not pod_dir.exists()


def test_unknown_interface_version_is_refused(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    require_root()
    stage1 = abi_stage1_aci(rkt, tmp_path, interface_version="99")
    image = images.build("example.com/busybox")
    proc = rkt.run(
        "run", INSECURE, f"--stage1-path={stage1}", "--net=host", str(image), check=False
    )
    assert proc.returncode == 254
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("rkt: warning:")]
    assert errors == [
        'rkt: stage1 "example.com/rkt-abi-test-stage1": interface version 99 is not supported '
        f"(this rkt speaks 1..{INTERFACE_VERSION})"
    ]
    listing = json.loads(rkt.run("list", "--format=json").stdout)
    assert [p["state"] for p in listing] == ["garbage"]  # the aborted prepare, for gc


def test_stage1_without_interface_version_is_refused(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    require_root()
    stage1 = abi_stage1_aci(rkt, tmp_path, interface_version="one")
    image = images.build("example.com/busybox")
    proc = rkt.run("run", INSECURE, f"--stage1-path={stage1}", str(image), check=False)
    assert proc.returncode == 254
    assert "interface version" in proc.stderr


def test_version_1_stage1_is_not_given_version_2_flags(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    """Version skew is loud and early: a v1 stage1 never receives a CNI network it can't honour."""
    require_root()
    stage1 = abi_stage1_aci(rkt, tmp_path)
    image = images.build("example.com/busybox")
    proc = rkt.run(
        "run", INSECURE, f"--stage1-path={stage1}", "--net=default", str(image), check=False
    )
    assert proc.returncode == 254
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("rkt: warning:")]
    assert errors == ["rkt: stage1 speaks interface version 1; --net=default needs version 2"]
    # rkt run made the pod for this run only: it does not stay behind, prepared
    assert rkt.run("list", "--no-legend").stdout == ""


def test_stage1_name_with_another_version_is_that_image_not_the_builtin(
    rkt: Rkt, images: ImageFactory, tmp_path: Path
) -> None:
    """``--stage1-name=coreos.com/rkt/stage1-default:V`` is the built-in flavor only for this
    rkt's version: another V is looked for in the store (and fetched) like any image, so a
    stage1 a user imported under that name runs, and a missing one is refused, not replaced."""
    require_root()
    name = "coreos.com/rkt/stage1-default"
    image = images.build("example.com/busybox")
    missing = rkt.run(
        "run", INSECURE, "--pull-policy=never", f"--stage1-name={name}:9.9.9", "--net=host",
        str(image), check=False,
    )  # fmt: skip
    assert missing.returncode == 254
    assert f'image "{name}:9.9.9": not in the store' in missing.stderr
    src = make_source(tmp_path / "stage1-src", version="9.9.9")
    manifest = json.loads((src / "manifest").read_text())
    manifest["name"] = name
    (src / "manifest").write_text(json.dumps(manifest))
    aci = tmp_path / "stage1-default-9.9.9.aci"
    rkt.run("image", "build", str(src), str(aci))
    rkt.run("fetch", INSECURE, str(aci))
    uuid_file = tmp_path / "uuid"
    proc = rkt.run(
        "run", INSECURE, f"--stage1-name={name}:9.9.9", "--net=host",
        f"--uuid-file-save={uuid_file}", str(image), "--exec=/bin/sh", "--", "-c", "exit 42",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 42, proc.stderr
    pod_dir = rkt.dir / "pods" / "run" / uuid_file.read_text().strip()
    labels = json.loads((pod_dir / "stage1" / "manifest").read_text())["labels"]
    assert {"name": "version", "value": "9.9.9"} in labels  # the imported image, not ours
    builtin = rkt.run(
        "run", INSECURE, f"--stage1-name={name}", "--net=host", str(image), "--exec=/bin/true"
    )
    assert builtin.returncode == 0
