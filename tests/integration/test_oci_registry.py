"""Docker/OCI images pulled natively from Debian's docker-registry (TLS with a test CA, htpasswd
auth), pushed there with skopeo: layers with whiteouts and an opaque dir, a two-platform index,
a zstd layer, shared base layers stored once, and hostile blobs refused with nothing stored."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.integration.conftest import Rkt
from tests.integration.oci_registry import LayoutWriter, Registry, busybox_tree

USER, PASSWORD = "puller", "s3cret-pw"
CHECK_WHITEOUTS = (
    "test -e /data/keep.txt && test ! -e /data/gone.txt && test ! -e /gone-dir"
    ' && test "$(ls -A /opq)" = new.txt && test -e /etc/passwd && echo whiteouts-ok'
)


@dataclass
class Images:
    registry: Registry
    ca_pem: Path
    layout: Path
    base_digest: str
    top_digest: str
    zstd_digest: str

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"docker://{self.registry.host}/{repo}:{tag}"


def _base_tree() -> dict[str, bytes | str | None]:
    return busybox_tree(
        {
            "data": None,
            "data/keep.txt": b"kept\n",
            "data/gone.txt": b"deleted by the upper layer\n",
            "gone-dir": None,
            "gone-dir/x": b"x\n",
            "opq": None,
            "opq/old1.txt": b"hidden by the opaque dir\n",
            "opq/old2.txt": b"hidden too\n",
        }
    )


@pytest.fixture(scope="session")
def oci_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    require_root()
    require_tool("docker-registry")
    require_tool("skopeo")
    import trustme

    root = tmp_path_factory.mktemp("oci-registry")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_pem = root / "chain.pem", root / "key.pem", root / "ca.pem"
    cert.private_key_pem.write_to_path(str(key))
    cert.cert_chain_pems[0].write_to_path(str(chain))
    ca.cert_pem.write_to_path(str(ca_pem))
    registry = Registry(root / "registry", tls=(chain, key), users={USER: PASSWORD})
    (root / "registry").mkdir()
    registry.start()
    try:
        layout = root / "layout"
        w = LayoutWriter(layout)
        env = {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh", "-c", "echo default-cmd"]}
        base = (_base_tree(), "gzip")
        upper = (
            {
                "data": None,
                "data/.wh.gone.txt": b"",
                ".wh.gone-dir": b"",
                "opq": None,
                "opq/.wh..wh..opq": b"",
                "opq/new.txt": b"the only file\n",
            },
            "gzip",
        )
        layered = w.image([base, upper], env)
        w.tag("layered", layered)
        second = w.image([base, ({"second.txt": b"two\n"}, "gzip")], env)
        w.tag("second", second)
        zstd = w.image([base, ({"zstd.txt": b"from a zstd layer\n"}, "zstd")], env)
        w.tag("zstd", zstd)
        per_arch = [
            w.image([base, ({"platform": f"{arch}\n".encode()}, "none")], env, arch=arch)
            for arch in ("arm64", "amd64")
        ]
        w.tag("multi", w.image_index(per_arch))
        for tag in ("layered", "second", "zstd"):
            registry.push(layout, tag, f"test/{tag}:latest")
        registry.push(layout, "multi", "test/multi:latest", all_platforms=True)
        manifest = json.loads((layout / "blobs" / layered["digest"].replace(":", "/")).read_text())
        zman = json.loads((layout / "blobs" / zstd["digest"].replace(":", "/")).read_text())
        yield Images(
            registry,
            ca_pem,
            layout,
            manifest["layers"][0]["digest"],
            manifest["layers"][1]["digest"],
            zman["layers"][1]["digest"],
        )
    finally:
        registry.stop()


@pytest.fixture
def puller(rkt: Rkt, oci_images: Images) -> Rkt:
    """rkt trusting the test CA, with dockerAuth credentials for the registry."""
    rkt.env["SSL_CERT_FILE"] = str(oci_images.ca_pem)
    auth = rkt.local_config / "dockerAuth.d"
    auth.mkdir(parents=True)
    doc = {
        "rktKind": "dockerAuth",
        "rktVersion": "v1",
        "registries": [oci_images.registry.host],
        "credentials": {"user": USER, "password": PASSWORD},
    }
    (auth / "test.json").write_text(json.dumps(doc))
    return rkt


def _layer_dirs(rkt: Rkt) -> list[str]:
    root = rkt.dir / "cas" / "layers"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_run_layered_image_applies_whiteouts_and_opaque_dirs(puller: Rkt, oci_images: Images):
    ref = oci_images.ref("test/layered")
    proc = puller.run(
        "run", "--insecure-options=image", ref, "--", "/bin/sh", "-c", CHECK_WHITEOUTS
    )
    assert "whiteouts-ok" in proc.stdout
    # The upper layer holds overlayfs whiteouts: a 0/0 char device and the opaque xattr.
    top = puller.dir / "cas" / "layers" / oci_images.top_digest.replace(":", "-") / "rootfs"
    st = os.lstat(top / "data" / "gone.txt")
    assert st.st_rdev == 0 and (st.st_mode & 0o170000) == 0o020000
    assert os.getxattr(top / "opq", "trusted.overlay.opaque") == b"y"


def test_run_image_default_command_and_docker_args_rule(puller: Rkt, oci_images: Images):
    ref = oci_images.ref("test/layered")
    assert "default-cmd" in puller.run("run", "--insecure-options=image", ref).stdout
    proc = puller.run("run", "--insecure-options=image", ref, "--", "echo", "replaced-cmd")
    assert "replaced-cmd" in proc.stdout


def test_run_manifest_list_picks_this_platform(puller: Rkt, oci_images: Images):
    ref = oci_images.ref("test/multi")
    proc = puller.run("run", "--insecure-options=image", ref, "--", "cat", "/platform")
    assert proc.stdout.strip().splitlines()[-1] == "amd64"


def test_run_image_with_zstd_layer(puller: Rkt, oci_images: Images):
    ref = oci_images.ref("test/zstd")
    proc = puller.run("run", "--insecure-options=image", ref, "--", "cat", "/zstd.txt")
    assert "from a zstd layer" in proc.stdout


def test_shared_base_layer_stored_and_rendered_once(puller: Rkt, oci_images: Images):
    first, second = oci_images.ref("test/layered"), oci_images.ref("test/second")
    puller.run("fetch", "--insecure-options=image", first)
    base_key = oci_images.base_digest.replace(":", "-")
    before = _layer_dirs(puller)
    assert base_key in before and len(before) == 2
    base_inode = os.stat(puller.dir / "cas/layers" / base_key / "rootfs/bin/busybox").st_ino
    puller.run("fetch", "--insecure-options=image", second)
    after = _layer_dirs(puller)
    assert len(after) == 3 and set(before) < set(after)  # only the new top layer was added
    assert os.stat(puller.dir / "cas/layers" / base_key / "rootfs/bin/busybox").st_ino == base_inode
    images = {str(i["source"]): str(i["id"]) for i in puller.image_list()}
    puller.run("image", "rm", images[first])
    left = _layer_dirs(puller)
    assert base_key in left and oci_images.top_digest.replace(":", "-") not in left
    proc = puller.run("run", "--insecure-options=image", second, "--", "cat", "/second.txt")
    assert "two" in proc.stdout


def test_image_list_shows_docker_name_and_tag(puller: Rkt, oci_images: Images):
    puller.run("fetch", "--insecure-options=image", oci_images.ref("test/second"))
    table = puller.run("image", "list").stdout
    assert f"{oci_images.registry.host}/test/second:latest" in table
    manifest = json.loads(
        puller.run(
            "image", "cat-manifest", f"127.0.0.1-{oci_images.registry.port}/test/second"
        ).stdout
    )
    names = {a["name"] for a in manifest["annotations"]}
    assert "appc.io/docker/repository" in names and manifest["app"]["exec"][0] == "/bin/sh"


def test_docker_image_refused_without_insecure_image(puller: Rkt, oci_images: Images):
    proc = puller.run("fetch", oci_images.ref("test/layered"), check=False)
    assert proc.returncode == 254
    assert "--insecure-options=image" in proc.stderr
    assert _layer_dirs(puller) == []


def test_registry_credentials_required(rkt: Rkt, oci_images: Images):
    rkt.env["SSL_CERT_FILE"] = str(oci_images.ca_pem)
    proc = rkt.run("fetch", "--insecure-options=image", oci_images.ref("test/layered"), check=False)
    assert proc.returncode == 254 and "credentials" in proc.stderr


def test_tls_verified_unless_insecure_tls(puller: Rkt, oci_images: Images):
    del puller.env["SSL_CERT_FILE"]
    ref = oci_images.ref("test/second")
    proc = puller.run("fetch", "--insecure-options=image", ref, check=False)
    assert proc.returncode == 254 and "certificate verify failed" in proc.stderr
    puller.run("fetch", "--insecure-options=image,tls", ref)


def test_corrupted_blob_refused_and_nothing_stored(puller: Rkt, oci_images: Images, tmp_path: Path):
    ref = oci_images.ref("test/zstd")
    data = oci_images.registry.blob_data(oci_images.zstd_digest)
    original = data.read_bytes()
    data.write_bytes(original[:-8] + bytes(b ^ 0xFF for b in original[-8:]))  # same size
    try:
        proc = puller.run("fetch", "--insecure-options=image", ref, check=False)
    finally:
        data.write_bytes(original)
    assert proc.returncode == 254
    assert "digest" in proc.stderr or "corrupt" in proc.stderr
    assert puller.image_list() == []
    assert _layer_dirs(puller) == []  # the good base layer fetched alongside is not kept
    assert [p.name for p in (puller.dir / "cas" / "tmp").iterdir()] == []
