"""PodManifest codec (appc pods.md "Pod Manifest Schema"): round trip and per-field refusals."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from rkt.errors import ManifestError
from rkt.schema.image import App
from rkt.schema.pod import ExposedPort, Mount, PodApp, PodManifest, RuntimeImage, Volume

IMAGE_ID = "sha512-" + "cd" * 64
DELETE = object()


def full_pod() -> dict[str, Any]:
    return {
        "acVersion": "0.8.11",
        "acKind": "PodManifest",
        "apps": [
            {
                "name": "reduce-worker",
                "image": {
                    "name": "example.com/reduce-worker",
                    "id": IMAGE_ID,
                    "labels": [{"name": "version", "value": "1.0.0"}],
                },
                "app": {
                    "exec": ["/bin/reduce-worker", "--debug=true"],
                    "user": "0",
                    "group": "0",
                    "mountPoints": [{"name": "work", "path": "/var/lib/work"}],
                    "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}],
                },
                "readOnlyRootFS": True,
                "mounts": [
                    {"volume": "worklib", "path": "/var/lib/work"},
                    {
                        "volume": "scratch",
                        "path": "/tmp/scratch",
                        "appVolume": {
                            "name": "scratch",
                            "kind": "empty",
                            "mode": "1777",
                            "uid": 0,
                            "gid": 0,
                        },
                    },
                ],
                "annotations": [{"name": "foo", "value": "baz"}],
            },
            {"name": "register", "image": {"id": IMAGE_ID}},
        ],
        "volumes": [
            {
                "name": "worklib",
                "kind": "host",
                "source": "/opt/tenant1/work",
                "readOnly": True,
                "recursive": True,
            },
            {"name": "cache", "kind": "empty", "mode": "0700", "uid": 1000, "gid": 1000},
        ],
        "isolators": [{"name": "resource/memory", "value": {"limit": "4G"}}],
        "annotations": [
            {"name": "ip-address", "value": "10.1.2.3"},
            {"name": "coreos.com/rkt/stage1/mutable", "value": "false"},
        ],
        "ports": [
            {"name": "ftp", "hostPort": 2121},
            {
                "name": "http",
                "hostPort": 8080,
                "hostIP": "127.0.0.1",
                "podPort": {"name": "http", "protocol": "tcp", "port": 80},
            },
        ],
        "userAnnotations": {"owner": "team a"},
        "userLabels": {"env": "prod"},
    }


def mutate(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = doc
    for part in parents:
        target = target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


def test_full_pod_manifest_parses_into_dataclasses() -> None:
    pod = PodManifest.from_json(json.dumps(full_pod()).encode())
    worker = pod.app("reduce-worker")
    assert worker is not None
    assert worker.image == RuntimeImage(
        id=IMAGE_ID, name="example.com/reduce-worker", labels=worker.image.labels
    )
    assert worker.read_only_rootfs
    assert isinstance(worker.app, App)
    assert worker.mounts[0] == Mount(volume="worklib", path="/var/lib/work")
    assert worker.mounts[1].app_volume is not None
    assert worker.mounts[1].app_volume.mode_bits == 0o1777
    assert pod.app("register") == PodApp(name="register", image=RuntimeImage(id=IMAGE_ID))
    assert pod.app("nope") is None
    assert pod.volume("worklib") == Volume(
        name="worklib", kind="host", source="/opt/tenant1/work", read_only=True, recursive=True
    )
    assert pod.annotation("ip-address") == "10.1.2.3"
    assert pod.ports[0] == ExposedPort(name="ftp", host_port=2121)
    assert pod.user_labels == (("env", "prod"),)


def test_full_pod_manifest_round_trips() -> None:
    doc = full_pod()
    pod = PodManifest.from_json(doc)
    assert pod.to_dict() == doc
    assert PodManifest.from_json(pod.to_json()) == pod
    assert PodManifest.from_json(pod.to_json(pretty=True)) == pod
    hash(pod)


def test_empty_volume_gets_spec_defaults() -> None:
    doc = mutate(full_pod(), "volumes.1", {"name": "cache", "kind": "empty"})
    volume = PodManifest.from_json(doc).volume("cache")
    assert volume == Volume(name="cache", kind="empty", mode="0755", uid=0, gid=0)
    assert volume.mode_bits == 0o755


def test_pod_without_apps_is_accepted_for_app_sandbox() -> None:
    pod = PodManifest.from_json({"acKind": "PodManifest", "acVersion": "0.8.11", "apps": []})
    assert pod.apps == ()
    assert pod.to_dict() == {"acVersion": "0.8.11", "acKind": "PodManifest", "apps": []}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("acKind", "ImageManifest", 'field "acKind": must be "PodManifest", not "ImageManifest"'),
        ("acVersion", DELETE, 'field "acVersion": is required'),
        ("apps", {}, 'field "apps": must be a list'),
        ("apps.0.name", "Reduce", 'field "apps[0].name": "Reduce" is not a valid AC Name'),
        ("apps.0.name", "r" * 201, 'field "apps[0].name": "rrrrrrrrrrrrrrrrrrrrrrrr..." is 201'),
        ("apps.0.name", "register", 'field "apps[1].name": duplicate app "register"'),
        ("apps.0.image", DELETE, 'field "apps[0].image": is required'),
        ("apps.0.image.id", DELETE, 'field "apps[0].image.id": is required'),
        ("apps.0.image.id", "sha512-cdcd", 'field "apps[0].image.id": "sha512-cdcd" is not a full'),
        (
            "apps.0.image.name",
            "Worker",
            'field "apps[0].image.name": "Worker" is not a valid AC Id',
        ),
        (
            "apps.0.image.labels.0.name",
            "name",
            'field "apps[0].image.labels[0].name": "name" is not',
        ),
        ("apps.0.app.user", DELETE, 'field "apps[0].app.user": is required'),
        ("apps.0.app.mountPoints.0.path", "rel", 'field "apps[0].app.mountPoints[0].path": "rel"'),
        (
            "apps.0.readOnlyRootFS",
            1,
            'field "apps[0].readOnlyRootFS": must be true or false, not 1',
        ),
        (
            "apps.0.mounts.0.volume",
            "nope",
            'field "apps[0].mounts[0].volume": no volume named "nope"',
        ),
        (
            "apps.0.mounts.0.volume",
            "Work",
            'field "apps[0].mounts[0].volume": "Work" is not a valid',
        ),
        ("apps.0.mounts.0.path", DELETE, 'field "apps[0].mounts[0].path": is required'),
        (
            "apps.0.mounts.1.appVolume.kind",
            "tmpfs",
            'field "apps[0].mounts[1].appVolume.kind": "tmpfs"',
        ),
        ("apps.0.annotations.0.name", "Foo", 'field "apps[0].annotations[0].name": "Foo" is not'),
        ("volumes.0.name", "cache", 'field "volumes[1].name": duplicate volume "cache"'),
        ("volumes.0.kind", DELETE, 'field "volumes[0].kind": is required'),
        ("volumes.0.kind", "nfs", 'field "volumes[0].kind": "nfs" is not "host" or "empty"'),
        (
            "volumes.0.source",
            DELETE,
            'field "volumes[0].source": is required for a volume of kind "host"',
        ),
        ("volumes.0.source", "opt/x", 'field "volumes[0].source": "opt/x" is not an absolute path'),
        ("volumes.0.recursive", "yes", 'field "volumes[0].recursive": must be true or false'),
        ("volumes.1.mode", "0999", 'field "volumes[1].mode": "0999" is not an octal mode'),
        ("volumes.1.mode", 755, 'field "volumes[1].mode": must be a string, not 755'),
        ("volumes.1.uid", -1, 'field "volumes[1].uid": -1 is out of range'),
        ("volumes.1.gid", "0", 'field "volumes[1].gid": must be an integer, not "0"'),
        (
            "isolators.0.value",
            {"limit": "4X"},
            'field "isolators[0].value.limit": "4X" is not a valid',
        ),
        ("annotations.0.name", "coreos.com/rkt/stage1/mutable", 'field "annotations[1].name": dup'),
        ("ports.0.name", "FTP", 'field "ports[0].name": "FTP" is not a valid AC Name'),
        ("ports.0.hostPort", DELETE, 'field "ports[0].hostPort": is required'),
        ("ports.0.hostPort", 70000, 'field "ports[0].hostPort": 70000 is out of range (1..65535)'),
        (
            "ports.1.hostIP",
            "localhost",
            'field "ports[1].hostIP": "localhost" is not an IPv4 address',
        ),
        ("ports.1.hostIP", "::1", 'field "ports[1].hostIP": "::1" is not an IPv4 address'),
        ("ports.1.podPort.protocol", "icmp", 'field "ports[1].podPort.protocol": "icmp" is not'),
        ("userAnnotations", {"k": None}, 'field "userAnnotations.k": must be a string, not null'),
        ("userLabels", "x", 'field "userLabels": must be a JSON object'),
    ],
)
def test_each_invalid_field_is_refused_with_its_own_message(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        PodManifest.from_json(json.dumps(mutate(full_pod(), path, value)))
    text = str(info.value)
    assert text.startswith("pod manifest: ")
    assert message in text


def test_ten_thousand_entry_pod_manifest_is_refused() -> None:
    doc = full_pod()
    doc["annotations"] = [{"name": f"a{i}", "value": ""} for i in range(10_000)]
    with pytest.raises(
        ManifestError, match=r'"annotations": too many entries \(10000, at most 4096'
    ):
        PodManifest.from_json(json.dumps(doc))


def test_pod_with_too_many_apps_is_refused() -> None:
    doc = full_pod()
    doc["apps"] = [{"name": f"a{i}", "image": {"id": IMAGE_ID}} for i in range(5000)]
    with pytest.raises(ManifestError, match=r'field "apps": too many entries \(5000, at most'):
        PodManifest.from_json(json.dumps(doc))


def test_huge_user_label_map_is_refused() -> None:
    doc = mutate(full_pod(), "userLabels", {f"k{i}": "" for i in range(10_000)})
    with pytest.raises(ManifestError, match=r'field "userLabels": too many entries'):
        PodManifest.from_json(doc)
