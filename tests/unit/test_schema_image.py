"""ImageManifest codec (appc aci.md "Image Manifest Schema"): round trip and per-field refusals."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from rkt.errors import ManifestError
from rkt.schema._fields import MAX_LIST_ENTRIES, MAX_MANIFEST_SIZE
from rkt.schema.image import App, ImageManifest, Label, Port
from rkt.schema.isolators import Isolator

IMAGE_ID = "sha512-" + "ab" * 64
DELETE = object()


def full_manifest() -> dict[str, Any]:
    return {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "example.com/reduce-worker",
        "labels": [
            {"name": "version", "value": "1.0.0"},
            {"name": "arch", "value": "amd64"},
            {"name": "os", "value": "linux"},
        ],
        "app": {
            "exec": ["/usr/bin/reduce-worker", "--quiet"],
            "user": "100",
            "group": "300",
            "supplementaryGIDs": [400, 500],
            "eventHandlers": [
                {"name": "pre-start", "exec": ["/usr/bin/data-downloader"]},
                {"name": "post-stop", "exec": ["/usr/bin/deregister-worker", "--verbose"]},
            ],
            "workingDirectory": "/opt/work",
            "environment": [{"name": "REDUCE_WORKER_DEBUG", "value": "true"}],
            "isolators": [
                {"name": "resource/cpu", "value": {"request": "250m", "limit": "500m"}},
                {"name": "resource/memory", "value": {"request": "1G", "limit": "2G"}},
                {
                    "name": "os/linux/capabilities-retain-set",
                    "value": {"set": ["CAP_NET_BIND_SERVICE"]},
                },
            ],
            "mountPoints": [{"name": "work", "path": "/var/lib/work", "readOnly": True}],
            "ports": [
                {"name": "health", "protocol": "tcp", "port": 4000, "socketActivated": True},
                {"name": "ftp-data", "protocol": "tcp", "port": 20000, "count": 1000},
            ],
            "userAnnotations": {"Any Key": "any value"},
            "userLabels": {"tier": "backend"},
        },
        "dependencies": [
            {
                "imageName": "example.com/reduce-worker-base",
                "imageID": IMAGE_ID,
                "labels": [{"name": "os", "value": "linux"}, {"name": "env", "value": "canary"}],
                "size": 22017258,
            }
        ],
        "pathWhitelist": ["/etc/ca/example.com/crt", "/usr/bin/map-reduce-worker"],
        "annotations": [
            {"name": "authors", "value": "Carly Container <carly@example.com>"},
            {"name": "created", "value": "2014-10-27T19:32:27.67021798Z"},
            {"name": "appc.io/executor/supports-systemd-notify", "value": "false"},
        ],
    }


def mutate(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with the dotted ``path`` (list indices as numbers) set or deleted."""
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


def test_full_manifest_parses_into_dataclasses() -> None:
    manifest = ImageManifest.from_json(json.dumps(full_manifest()))
    assert manifest.name == "example.com/reduce-worker"
    assert manifest.label("version") == "1.0.0"
    assert manifest.label("missing") is None
    assert manifest.annotation("created") == "2014-10-27T19:32:27.67021798Z"
    assert manifest.labels[0] == Label("version", "1.0.0")
    app = manifest.app
    assert app is not None
    assert app.exec == ("/usr/bin/reduce-worker", "--quiet")
    assert app.supplementary_gids == (400, 500)
    assert app.ports[1] == Port("ftp-data", "tcp", 20000, 1000, False)
    assert app.isolators[0] == Isolator("resource/cpu", {"request": "250m", "limit": "500m"})
    assert app.user_annotations == (("Any Key", "any value"),)
    assert manifest.dependencies[0].size == 22017258


def test_full_manifest_round_trips() -> None:
    doc = full_manifest()
    manifest = ImageManifest.from_json(doc)
    assert manifest.to_dict() == doc
    assert ImageManifest.from_json(manifest.to_json()) == manifest
    assert ImageManifest.from_json(manifest.to_json(pretty=True)) == manifest
    hash(manifest)


def test_minimal_manifest_omits_empty_optional_fields() -> None:
    manifest = ImageManifest.from_json(
        b'{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "busybox"}'
    )
    assert manifest.app is None
    assert manifest.to_dict() == {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": "busybox",
    }


def test_built_in_code_manifest_serialises_to_valid_json() -> None:
    manifest = ImageManifest(
        name="example.com/app", app=App(exec=("/bin/sh",), user="0", group="0")
    )
    assert ImageManifest.from_json(manifest.to_json()) == manifest


def test_unknown_fields_and_nulls_are_ignored() -> None:
    doc = full_manifest()
    doc["futureField"] = {"x": 1}
    doc["app"]["futureAppField"] = [1]
    doc["dependencies"] = None
    manifest = ImageManifest.from_json(doc)
    assert manifest.dependencies == ()
    assert "futureField" not in manifest.to_dict()


def test_relative_exec_is_allowed_for_path_lookup() -> None:
    doc = mutate(full_manifest(), "app.exec", ["sh", "-c", "true"])
    app = ImageManifest.from_json(doc).app
    assert app is not None
    assert app.exec[0] == "sh"


def test_spec_example_spelling_supplementary_gids_is_accepted() -> None:
    doc = full_manifest()
    doc["app"]["supplementaryGids"] = doc["app"].pop("supplementaryGIDs")
    app = ImageManifest.from_json(doc).app
    assert app is not None
    assert app.supplementary_gids == (400, 500)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("acKind", DELETE, 'field "acKind": is required'),
        ("acKind", "PodManifest", 'field "acKind": must be "ImageManifest", not "PodManifest"'),
        ("acVersion", "0.8", 'field "acVersion": "0.8" is not a semantic version'),
        ("acVersion", 8, 'field "acVersion": must be a string, not 8'),
        ("name", DELETE, 'field "name": is required'),
        (
            "name",
            "Foo",
            'image manifest: field "name": "Foo" is not a valid AC Identifier'
            " (lower-case letters, digits and -._~/ separators)",
        ),
        ("labels", {"os": "linux"}, 'field "labels": must be a list'),
        ("labels.0.name", "Version", 'field "labels[0].name": "Version" is not a valid AC Id'),
        ("labels.0.name", "arch", 'field "labels[1].name": duplicate label "arch"'),
        ("labels.0.name", "name", 'field "labels[0].name": "name" is not allowed as a label'),
        ("labels.0.value", DELETE, 'field "labels[0].value": is required'),
        ("labels.0", "version=1", 'field "labels[0]": must be a JSON object'),
        ("labels.2.value", "plan9", 'field "labels": os "plan9" is not supported'),
        ("labels.1.value", "x86_64", 'field "labels": arch "x86_64" is not valid for os "linux"'),
        ("app", [], 'field "app": must be a JSON object'),
        ("app.user", DELETE, 'field "app.user": is required'),
        ("app.group", "", 'field "app.group": must not be empty'),
        ("app.exec", "/bin/sh", 'field "app.exec": must be a list'),
        ("app.exec.0", "", 'field "app.exec[0]": must not be empty'),
        ("app.exec.1", 3, 'field "app.exec[1]": must be a string, not 3'),
        ("app.exec.1", "a\x00b", 'field "app.exec[1]": must not contain a NUL character'),
        ("app.supplementaryGIDs.0", -1, 'field "app.supplementaryGIDs[0]": -1 is out of range'),
        ("app.supplementaryGIDs.0", "400", 'field "app.supplementaryGIDs[0]": must be an integ'),
        (
            "app.eventHandlers.0.name",
            "pre-stop",
            'field "app.eventHandlers[0].name": "pre-stop" is',
        ),
        (
            "app.eventHandlers.1.name",
            "pre-start",
            'field "app.eventHandlers[1].name": duplicate event handler "pre-start"',
        ),
        ("app.eventHandlers.0.exec", [], 'field "app.eventHandlers[0].exec": must not be empty'),
        (
            "app.workingDirectory",
            "opt/work",
            'field "app.workingDirectory": "opt/work" is not an ab',
        ),
        (
            "app.environment.0.name",
            "1BAD",
            'field "app.environment[0].name": "1BAD" is not a valid',
        ),
        ("app.environment.0.name", "A=B", '"A=B" is not a valid environment variable name'),
        (
            "app.environment",
            [{"name": "A", "value": "1"}] * 2,
            'duplicate environment variable "A"',
        ),
        ("app.isolators.0.value.limit", "fast", 'field "app.isolators[0].value.limit": "fast" is'),
        (
            "app.mountPoints.0.name",
            "Work",
            'field "app.mountPoints[0].name": "Work" is not a valid AC Name',
        ),
        (
            "app.mountPoints.0.path",
            "var",
            'field "app.mountPoints[0].path": "var" is not an absolute',
        ),
        (
            "app.mountPoints.0.readOnly",
            "yes",
            'field "app.mountPoints[0].readOnly": must be true or f',
        ),
        (
            "app.ports.0.name",
            "ftp_data",
            'field "app.ports[0].name": "ftp_data" is not a valid AC Name',
        ),
        ("app.ports.0.name", "ftp-data", 'field "app.ports[1].name": duplicate port "ftp-data"'),
        (
            "app.ports.0.protocol",
            "sctp",
            'field "app.ports[0].protocol": "sctp" is not "tcp" or "udp"',
        ),
        ("app.ports.0.port", 0, 'field "app.ports[0].port": 0 is out of range (1..65535)'),
        ("app.ports.0.port", 65536, 'field "app.ports[0].port": 65536 is out of range (1..65535)'),
        ("app.ports.0.port", 80.0, 'field "app.ports[0].port": must be an integer, not 80.0'),
        ("app.ports.0.port", True, 'field "app.ports[0].port": must be an integer, not true'),
        ("app.ports.0.port", DELETE, 'field "app.ports[0].port": is required'),
        ("app.ports.1.count", 0, 'field "app.ports[1].count": 0 is out of range'),
        ("app.ports.1.count", 50000, 'field "app.ports[1].count": port range 20000+50000 goes be'),
        ("app.userAnnotations", {"k": 1}, 'field "app.userAnnotations.k": must be a string, not 1'),
        ("app.userLabels", ["x"], 'field "app.userLabels": must be a JSON object'),
        ("dependencies.0.imageName", DELETE, 'field "dependencies[0].imageName": is required'),
        (
            "dependencies.0.imageName",
            "Base",
            'field "dependencies[0].imageName": "Base" is not a v',
        ),
        (
            "dependencies.0.imageID",
            "sha512-abc",
            'field "dependencies[0].imageID": "sha512-abc" is no',
        ),
        ("dependencies.0.imageID", "sha256-" + "ab" * 32, 'field "dependencies[0].imageID"'),
        ("dependencies.0.size", -1, 'field "dependencies[0].size": must be a non-negative integer'),
        (
            "dependencies.0.size",
            "1",
            'field "dependencies[0].size": must be a non-negative integer',
        ),
        (
            "dependencies.0.labels.0.name",
            "env",
            'field "dependencies[0].labels[1].name": duplicate',
        ),
        (
            "pathWhitelist.1",
            "usr/bin",
            'field "pathWhitelist[1]": "usr/bin" is not an absolute path',
        ),
        (
            "annotations.0.name",
            "Authors",
            'field "annotations[0].name": "Authors" is not a valid AC',
        ),
        (
            "annotations.1.name",
            "authors",
            'field "annotations[1].name": duplicate annotation "authors"',
        ),
    ],
)
def test_each_invalid_field_is_refused_with_its_own_message(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        ImageManifest.from_json(json.dumps(mutate(full_manifest(), path, value)))
    text = str(info.value)
    assert text.startswith("image manifest: ")
    assert message in text
    assert "\n" not in text
    assert not text.endswith(".")


def test_ten_thousand_entry_manifest_is_refused() -> None:
    doc = full_manifest()
    doc["app"]["environment"] = [{"name": f"V{i}", "value": ""} for i in range(10_000)]
    with pytest.raises(ManifestError) as info:
        ImageManifest.from_json(json.dumps(doc))
    assert str(info.value) == (
        'image manifest: field "app.environment": too many entries (10000, at most 4096)'
    )


@pytest.mark.parametrize("key", ["labels", "annotations", "pathWhitelist", "dependencies"])
def test_every_list_is_capped(key: str) -> None:
    doc = full_manifest()
    doc[key] = [None] * (MAX_LIST_ENTRIES + 1)
    with pytest.raises(ManifestError, match=f'field "{key}": too many entries'):
        ImageManifest.from_json(doc)


def test_oversized_manifest_is_refused_before_parsing() -> None:
    data = b'{"name": "' + b"a" * MAX_MANIFEST_SIZE + b'"}'
    with pytest.raises(ManifestError, match=r"^image manifest: manifest is \d+ bytes, more than"):
        ImageManifest.from_json(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "image manifest: invalid JSON at line 1 column 1: expecting value"),
        (b"[]", "image manifest: must be a JSON object"),
        (b'{"name": "a", "name": "b"}', 'image manifest: invalid JSON: duplicate key "name"'),
        (b'{"x": NaN}', "image manifest: invalid JSON: NaN is not a number"),
        (b"[" * 100_000 + b"]" * 100_000, "image manifest: invalid JSON: nested too deeply"),
        (b'{"x": ' + b"9" * 5000 + b"}", "image manifest: invalid JSON: integer 9999"),
        (b"\xff\xfe\xfd", "image manifest: invalid JSON: not UTF-8 text"),
        (b'{"name": "\xc3"}', "image manifest: invalid JSON: not UTF-8 text"),
    ],
)
def test_malformed_json_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        ImageManifest.from_json(data)
    assert str(info.value).startswith(message)
