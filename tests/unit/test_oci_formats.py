"""Docker/OCI metadata, references, auth challenges and layer extraction with whiteouts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from rkt.errors import ArchiveError, ManifestError, UsageError
from rkt.fetch.registry import DEFAULT_REGISTRY, parse_docker_reference
from rkt.fetch.registry_auth import parse_challenge
from rkt.formats.oci import (
    ImageIndex,
    ImageManifestDoc,
    ImageOrigin,
    appc_name,
    choose_platform,
    derive_image_manifest,
    docker_entrypoint,
    parse_manifest,
)
from rkt.formats.oci_layer import DigestReader, extract_layer, lookup_in_layers
from rkt.schema.image import ImageManifest
from tests.conftest import require_root

D1, D2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_parse_docker_reference_applies_docker_hub_defaults():
    ref = parse_docker_reference("docker://busybox")
    assert (ref.registry, ref.repository, ref.tag) == (
        DEFAULT_REGISTRY,
        "library/busybox",
        "latest",
    )
    ref = parse_docker_reference("docker://127.0.0.1:5000/a/b:v1.2")
    assert (ref.registry, ref.repository, ref.tag) == ("127.0.0.1:5000", "a/b", "v1.2")
    ref = parse_docker_reference(f"docker://localhost/x@{D1}")
    assert (ref.registry, ref.reference) == ("localhost", D1)


@pytest.mark.parametrize("bad", ["docker://UPPER/x:y/z", "docker://x@sha256:zz", "docker://a/B"])
def test_parse_docker_reference_refuses_invalid(bad: str):
    with pytest.raises(UsageError):
        parse_docker_reference(bad)


def test_parse_challenge_reads_bearer_parameters():
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "registry",
        "scope": "repository:a/b:pull",
    }
    basic = parse_challenge('Basic realm="r"')
    assert basic is not None and basic.scheme == "basic"


def _manifest(layers: list[dict[str, object]]) -> bytes:
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 2}
    return json.dumps({"schemaVersion": 2, "config": config, "layers": layers}).encode()


def test_parse_manifest_kinds():
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": D2, "size": 9}
    doc = parse_manifest(_manifest([layer]))
    assert isinstance(doc, ImageManifestDoc) and doc.layers[0].compression == "zstd"
    index = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                "manifests": [
                    {"digest": D1, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
                    {"digest": D2, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
                ],
            }
        ).encode()
    )
    assert isinstance(index, ImageIndex)
    assert choose_platform(index, ("linux", "amd64", "")).digest == D2
    with pytest.raises(ManifestError, match="no image for linux/s390x"):
        choose_platform(index, ("linux", "s390x", ""))


def test_parse_schema1_lists_layers_bottom_first():
    doc = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 1,
                "fsLayers": [{"blobSum": D2}, {"blobSum": D1}],
                "history": [
                    {"v1Compatibility": '{"config": {"Cmd": ["sh"]}}'},
                    {"v1Compatibility": "{}"},
                ],
            }
        ).encode()
    )
    assert isinstance(doc, ImageManifestDoc)
    assert [d.digest for d in doc.layers] == [D1, D2]
    assert doc.schema1_config == {"config": {"Cmd": ["sh"]}}


@pytest.mark.parametrize(
    "bad",
    [
        b"[]",
        b"{",
        json.dumps({"schemaVersion": 2, "layers": [{"digest": "md5:x", "size": 1}]}).encode(),
    ],
)
def test_parse_manifest_refuses_bad_documents(bad: bytes):
    with pytest.raises(ManifestError):
        parse_manifest(bad)


def test_derive_image_manifest_maps_the_docker_config():
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/httpd"],
            "Cmd": ["-f"],
            "Env": ["PATH=/bin", "A=b=c"],
            "WorkingDir": "/srv",
            "User": "1000:2000",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}, "/var/Cache": {}},
            "Labels": {"org.example.title": "t", "Bad Key": "x"},
        },
    }
    origin = ImageOrigin("example.org/web", "1.0", "example.org", "web", D1, D2)
    raw = derive_image_manifest(config, origin)
    manifest = ImageManifest.from_json(raw)  # valid appc
    app = manifest.app
    assert app is not None
    assert list(app.exec) == ["/bin/httpd", "-f"]
    assert (app.user, app.group, app.working_directory) == ("1000", "2000", "/srv")
    assert [(p.name, p.port, p.protocol) for p in app.ports] == [
        ("53-udp", 53, "udp"),
        ("80-tcp", 80, "tcp"),
    ]
    assert [(m.name, m.path) for m in app.mount_points] == [
        ("volume-data", "/data"),
        ("volume-var-cache", "/var/Cache"),
    ]
    assert ("A", "b=c") in [(e.name, e.value) for e in app.environment]
    ann = {a.name: a.value for a in manifest.annotations}
    assert ann["appc.io/docker/label/org.example.title"] == "t"
    assert docker_entrypoint(ann) == ["/bin/httpd"]
    assert derive_image_manifest(config, origin) == raw  # deterministic: the image ID depends on it


def test_appc_name_sanitises_registry_names():
    assert appc_name("127.0.0.1:5000/Team/App_1") == "127.0.0.1-5000/team/app_1"


def test_digest_reader_refuses_wrong_content():
    data = b"x" * 1000
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    DigestReader(io.BytesIO(data), good, len(data)).finish()
    with pytest.raises(ArchiveError, match="digest mismatch"):
        DigestReader(io.BytesIO(data[:-1] + b"y"), good, len(data)).finish()
    with pytest.raises(ArchiveError, match="999 of 1000"):
        DigestReader(io.BytesIO(data[:-1]), good, len(data)).finish()


def _tar(entries: list[tuple[str, bytes | None]], pax: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in entries:
            info = tarfile.TarInfo(name)
            if body is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                info.pax_headers = dict(pax or {})
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_extract_layer_turns_whiteouts_into_overlayfs_ones(tmp_path: Path):
    require_root()
    data = _tar(
        [
            ("etc/", None),
            ("etc/.wh.shadow", b""),
            ("etc/.wh.kept", b""),
            ("etc/kept", b"this layer's own file survives its whiteout\n"),
            ("opt/", None),
            ("opt/.wh..wh..opq", b""),
            ("opt/new", b"n"),
            (".wh..wh.plnk", b""),
        ],
        pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"},
    )
    stats = extract_layer(io.BytesIO(data), tmp_path / "rootfs")
    root = tmp_path / "rootfs"
    st = os.lstat(root / "etc" / "shadow")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (root / "etc" / "kept").read_bytes().startswith(b"this layer")
    assert os.getxattr(root / "opt", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(root / ".wh..wh.plnk")
    with pytest.raises(OSError):
        os.getxattr(root / "etc", "trusted.overlay.redirect")  # forged overlay xattrs dropped
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.opaque_dirs == 1


def test_extract_layer_refuses_traversal_in_whiteouts(tmp_path: Path):
    with pytest.raises(ArchiveError):
        extract_layer(io.BytesIO(_tar([("../.wh.x", b"")])), tmp_path / "rootfs")


def test_lookup_in_layers_follows_whiteouts(tmp_path: Path):
    require_root()
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (upper / "etc").mkdir(parents=True)
    assert lookup_in_layers([upper, lower], "etc/passwd") == lower / "etc" / "passwd"
    os.mknod(upper / "etc" / "passwd", stat.S_IFCHR, os.makedev(0, 0))
    assert lookup_in_layers([upper, lower], "etc/passwd") is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Env": 5}, "config.Env is not a list of strings"),
        ({"Env": "A=b"}, "config.Env is not a list of strings"),
        ({"Env": [5]}, "config.Env is not a list of strings"),
        ({"Env": ["A\u0000=b"]}, "config.Env is not a list of strings"),
        ({"Volumes": ["/a"]}, "config.Volumes is not an object"),
        ({"ExposedPorts": "80/tcp"}, "config.ExposedPorts is not an object"),
        ({"Labels": [1]}, "config.Labels is not an object of strings"),
        ({"Labels": {"a": 1}}, "config.Labels is not an object of strings"),
        ({"User": 5}, "config.User is not a string"),
        ({"WorkingDir": 5}, "config.WorkingDir is not a string"),
    ],
)
def test_config_fields_of_the_wrong_type_are_refused(config: dict[str, object], message: str):
    """A wrong type is refused on one line, never a TypeError or a value quietly left out."""
    from rkt.formats.oci import parse_config

    blob = json.dumps({"config": config, "rootfs": {"diff_ids": []}}).encode()
    with pytest.raises(ManifestError, match=f"^image config: {message}$"):
        parse_config(blob)
    with pytest.raises(ManifestError, match="os is not a string"):
        parse_config(json.dumps({"os": 5}).encode())


def test_a_volume_with_a_dotdot_component_is_refused():
    from rkt.formats.oci import derive_app

    with pytest.raises(ManifestError, match=r'volume "/\.\./x" has a "\.\." component'):
        derive_app({"Cmd": ["sh"], "Volumes": {"/../x": {}}})
