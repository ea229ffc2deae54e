"""stage1/common: argv per the ABI, CRI logs, status files, app environment, users, AppSpec."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rkt import abi
from rkt.errors import PodError
from rkt.schema.isolators import CAPABILITIES, DEFAULT_CAPABILITIES
from rkt.stage1.common.appspec import DEFAULT_PATH, AppSpec, build_app_spec
from rkt.stage1.common.args import parse_enter, parse_gc, parse_run, parse_stop
from rkt.stage1.common.logs import format_cri, rfc3339_nano
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.common.status import AppStatus, StatusWriter, wait_status_to_exit_code
from rkt.stage1.common.users import resolve_group, resolve_user

UUID = "0a1b2c3d-0000-4000-8000-000000000001"
IMAGE_ID = "sha512-" + "a" * 128


# -- argv ------------------------------------------------------------------------------------


def test_parse_run_reads_every_abi_flag() -> None:
    args = parse_run(
        [
            "--debug",
            "--net=none",
            "--hostname=web",
            "--interactive",
            "--insecure-options=capabilities,seccomp",
            "--mutable",
            UUID,
        ]
    )
    assert (args.uuid, args.debug, args.net_mode, args.hostname) == (UUID, True, "none", "web")
    assert args.interactive and args.mutable
    assert args.insecure == {"capabilities", "seccomp"}


@pytest.mark.parametrize(
    ("net", "mode"), [("host", "host"), ("none", "none"), ("default", "cni"), ("a,b", "cni")]
)
def test_parse_run_net_modes(net: str, mode: str) -> None:
    assert parse_run([f"--net={net}", UUID]).net_mode == mode


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", UUID],
        ["--net", UUID],
        [UUID, UUID],
        ["not-a-uuid"],
        ["--insecure-options=everything", UUID],
        ["--hostname=bad_name!", UUID],
    ],
)
def test_parse_run_refuses_unknown_or_malformed(argv: list[str]) -> None:
    with pytest.raises(PodError):
        parse_run(argv)


def test_parse_enter_stop_gc() -> None:
    enter = parse_enter(["--app=web", UUID, "--", "/bin/sh", "-c", "--x"])
    assert (enter.app, enter.command) == ("web", ("/bin/sh", "-c", "--x"))
    assert parse_stop(["--force", UUID]).force
    assert not parse_stop([UUID]).force
    assert parse_gc(["--debug", UUID]).uuid == UUID
    with pytest.raises(PodError):
        parse_enter([UUID])


# -- logs and status -------------------------------------------------------------------------


def test_cri_format_full_and_partial_lines() -> None:
    ns = 1_700_000_000_123_456_789
    out = format_cri(b"stdout", b"one\ntwo\nthr", ns)
    stamp = b"2023-11-14T22:13:20.123456789Z"
    assert rfc3339_nano(ns) == stamp
    assert out == (
        stamp + b" stdout F one\n" + stamp + b" stdout F two\n" + stamp + b" stdout P thr\n"
    )


def test_exit_code_of_signal_is_128_plus_n() -> None:
    assert wait_status_to_exit_code(3 << 8) == (3, None)
    assert wait_status_to_exit_code(15) == (143, 15)


def test_status_files_are_written_atomically(tmp_path: Path) -> None:
    (tmp_path / abi.STATUS_DIR).mkdir(parents=True)
    writer = StatusWriter(tmp_path)
    st = AppStatus("web")
    writer.created(st)
    writer.started(st, 1234)
    doc = json.loads((tmp_path / abi.app_status_json("web")).read_text())
    assert (doc["state"], doc["pid"]) == ("running", 1234)
    assert not (tmp_path / abi.app_status("web")).exists()
    writer.exited(st, 3 << 8)
    assert (tmp_path / abi.app_status("web")).read_text() == "3"
    doc = json.loads((tmp_path / abi.app_status_json("web")).read_text())
    assert (doc["state"], doc["exit_code"], doc["signal"]) == ("exited", 3, None)
    assert doc["created"] <= doc["started"] <= doc["finished"]
    assert sorted(os.listdir(tmp_path / abi.STATUS_DIR)) == ["web", "web.json"]


# -- users, environment, AppSpec ---------------------------------------------------------------


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nwebgrp:x:2000:\n")
    (root / "owned").write_text("")
    os.chown(root / "owned", 3000, 4000) if os.geteuid() == 0 else None
    return root


def test_resolve_user_and_group_by_number_name_and_path(tmp_path: Path) -> None:
    root = str(_rootfs(tmp_path))
    assert resolve_user(root, "a", "42") == 42
    assert resolve_user(root, "a", "web") == 1000
    assert resolve_group(root, "a", "webgrp") == 2000
    st = os.stat(Path(root) / "owned")
    assert resolve_user(root, "a", "/owned") == st.st_uid
    assert resolve_group(root, "a", "/owned") == st.st_gid
    with pytest.raises(PodError, match="not found"):
        resolve_user(root, "a", "nobody")


def _pod(
    tmp_path: Path, app_override: dict[str, object] | None, *, volumes: bool = False
) -> PodDir:
    pod = tmp_path / "pod"
    info = pod / abi.appsinfo("web")
    info.mkdir(parents=True)
    (info / "rootfs").symlink_to(_rootfs(tmp_path))
    image_app = {
        "exec": ["/bin/web"],
        "user": "web",
        "group": "webgrp",
        "environment": [{"name": "FOO", "value": "image"}, {"name": "KEEP", "value": "1"}],
        "mountPoints": [{"name": "data", "path": "/data", "readOnly": True}],
    }
    (info / "manifest").write_text(
        json.dumps(
            {
                "acKind": "ImageManifest",
                "acVersion": "0.8.11",
                "name": "example.com/web",
                "app": image_app,
            }
        )
    )
    app: dict[str, object] = {"name": "web", "image": {"id": IMAGE_ID}}
    if app_override is not None:
        app["app"] = app_override
    manifest: dict[str, object] = {"acKind": "PodManifest", "acVersion": "0.8.11", "apps": [app]}
    if volumes:
        app["mounts"] = [{"volume": "data", "path": "/data"}, {"volume": "scratch", "path": "/s"}]
        manifest["volumes"] = [
            {"name": "data", "kind": "host", "source": "/srv/data"},
            {"name": "scratch", "kind": "empty", "recursive": False},
        ]
    (pod / "pod").write_text(json.dumps(manifest))
    return PodDir(pod, UUID)


def _spec(pod: PodDir, insecure: frozenset[str] = frozenset()) -> AppSpec:
    manifest = pod.read_manifest()
    return build_app_spec(pod, manifest, manifest.apps[0], insecure)


def test_app_spec_from_image_has_default_path_and_app_name(tmp_path: Path) -> None:
    spec = _spec(_pod(tmp_path, None))
    env = spec.env_dict()
    assert env == {"FOO": "image", "KEEP": "1", "PATH": DEFAULT_PATH, "AC_APP_NAME": "web"}
    assert (spec.exec, spec.uid, spec.gid, spec.working_dir) == (("/bin/web",), 1000, 2000, "/")
    assert spec.capabilities == tuple(sorted(CAPABILITIES[c] for c in DEFAULT_CAPABILITIES))
    assert len(spec.capabilities) == 14 and spec.no_new_privs  # on with seccomp (issue 4)


def test_pod_app_overrides_exec_env_user_and_isolators(tmp_path: Path) -> None:
    override: dict[str, object] = {
        "exec": ["/bin/web", "--flag"],
        "user": "0",
        "group": "0",
        "supplementaryGIDs": [5, 6],
        "workingDirectory": "/srv",
        "environment": [
            {"name": "FOO", "value": "pod"},
            {"name": "PATH", "value": "/x"},
            {"name": "AC_APP_NAME", "value": "spoof"},
        ],
        "isolators": [
            {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_ADMIN"]}},
            {"name": "os/linux/no-new-privileges", "value": True},
        ],
    }
    spec = _spec(_pod(tmp_path, override))
    env = spec.env_dict()
    assert (env["FOO"], env["KEEP"], env["PATH"], env["AC_APP_NAME"]) == ("pod", "1", "/x", "web")
    assert spec.exec == ("/bin/web", "--flag")
    assert (spec.uid, spec.gid, spec.supplementary_gids) == (0, 0, (5, 6))
    assert spec.working_dir == "/srv"
    assert spec.capabilities == (CAPABILITIES["CAP_NET_ADMIN"],)
    assert spec.no_new_privs


def test_insecure_capabilities_keeps_the_bounding_set(tmp_path: Path) -> None:
    assert _spec(_pod(tmp_path, None), frozenset({"capabilities"})).capabilities is None


def test_volume_mounts_resolve_sources_and_flags(tmp_path: Path) -> None:
    pod = _pod(tmp_path, None, volumes=True)
    spec = _spec(pod)
    data, scratch = spec.mounts
    assert (data.source, data.target, data.read_only, data.recursive) == (
        "/srv/data",
        "/data",
        True,
        True,  # readOnly from the image's mount point
    )
    assert scratch.source == str(pod.path / "volumes/scratch")
    assert (scratch.read_only, scratch.recursive) == (False, False)
    assert AppSpec.from_json(spec.to_json()) == spec


def test_missing_rootfs_is_a_clear_error(tmp_path: Path) -> None:
    pod = _pod(tmp_path, None)
    (pod.path / abi.appsinfo("web") / "rootfs").unlink()
    with pytest.raises(PodError, match='app "web": its rootfs is missing'):
        _spec(pod)
