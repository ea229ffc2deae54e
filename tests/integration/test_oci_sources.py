"""Local OCI/Docker sources made with skopeo (``oci:``, ``oci-archive:``, ``docker-archive:``), and
blob downloads cut in the middle by a small test registry: resumed, or refused with nothing kept."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.integration.conftest import Rkt
from tests.integration.oci_registry import LayoutWriter, busybox_tree

CHECK = 'test ! -e /old.txt && test -e /new.txt && test "$(ls -A /opq)" = b && echo layers-ok'


@pytest.fixture(scope="session")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oci-src") / "layout"
    w = LayoutWriter(root)
    base = busybox_tree({"old.txt": b"old\n", "opq": None, "opq/a": b"a\n"})
    upper = {
        ".wh.old.txt": b"",
        "new.txt": b"new\n",
        "opq": None,
        "opq/.wh..wh..opq": b"",
        "opq/b": b"b\n",
    }
    w.tag("v1", w.image([(base, "gzip"), (upper, "gzip")], {"Env": ["PATH=/bin"], "Cmd": ["sh"]}))
    return root


@pytest.fixture(scope="session")
def skopeo_sources(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require_tool("skopeo")
    out = tmp_path_factory.mktemp("skopeo")
    refs = {
        "oci": f"oci:{out / 'copied'}:v1",
        "oci-archive": f"oci-archive:{out / 'image.tar'}:v1",
        "docker-archive": f"docker-archive:{out / 'saved.tar'}:example.org/test/saved:1",
    }
    for ref in refs.values():
        subprocess.run(["skopeo", "copy", "--quiet", f"oci:{layout}:v1", ref], check=True)
    refs["docker-archive"] = f"docker-archive:{out / 'saved.tar'}"
    return refs


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
def test_run_local_source(rkt: Rkt, skopeo_sources: dict[str, str], kind: str):
    require_root()
    ref = skopeo_sources[kind]
    proc = rkt.run("run", "--insecure-options=image", ref, "--", "sh", "-c", CHECK)
    assert "layers-ok" in proc.stdout
    assert [i for i in rkt.image_list() if str(i["source"]).startswith(f"{kind}:")]


def test_docker_archive_names_the_image_from_repo_tags(rkt: Rkt, skopeo_sources: dict[str, str]):
    require_root()
    rkt.run("fetch", "--insecure-options=image", skopeo_sources["docker-archive"])
    [image] = [i for i in rkt.image_list() if "stage1" not in str(i["name"])]
    assert image["name"] == "example.org/test/saved"
    assert image["labels"]["version"] == "1"  # type: ignore[index]


# -- a registry that cuts blob downloads ------------------------------------------------------


def _schema1(layout: Path) -> bytes:
    """A legacy schema 1 manifest of the layout's image (unsigned; layers listed top first)."""
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(
        (layout / "blobs" / index["manifests"][0]["digest"].replace(":", "/")).read_text()
    )
    top = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}}
    doc = {
        "schemaVersion": 1,
        "name": "test/img",
        "tag": "schema1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": layer["digest"]} for layer in reversed(manifest["layers"])],
        "history": [{"v1Compatibility": json.dumps(top)}, {"v1Compatibility": "{}"}],
    }
    return json.dumps(doc).encode()


class _CuttingRegistry(http.server.ThreadingHTTPServer):
    layout: Path
    cuts_left: int
    honour_range: bool


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _CuttingRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        lay = self.server.layout
        m = re.fullmatch(r"/v2/[a-z0-9/]+/(manifests|blobs)/([^/]+)", self.path)
        if self.path == "/v2/":
            return self._send(200, b"{}", "application/json")
        if m is None:
            return self._send(404, b"{}", "application/json")
        ref = m.group(2)
        if m.group(1) == "manifests" and ref == "schema1":
            return self._send(
                200, _schema1(lay), "application/vnd.docker.distribution.manifest.v1+json"
            )
        if m.group(1) == "manifests" and not ref.startswith("sha256:"):
            index = json.loads((lay / "index.json").read_text())
            entry = next(
                e
                for e in index["manifests"]
                if e["annotations"]["org.opencontainers.image.ref.name"] == ref
            )
            ref = entry["digest"]
        path = lay / "blobs" / ref.replace(":", "/")
        data = path.read_bytes()
        kind = "application/vnd.oci.image.manifest.v1+json" if m.group(1) == "manifests" else ""
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.honour_range:
            start = int(rng.split("=")[1].rstrip("-"))
        if m.group(1) == "blobs" and len(data) > 4096 and self.server.cuts_left > 0:
            self.server.cuts_left -= 1
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(206 if start else 200, data[start:], kind or "application/octet-stream")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def cutting_registry(layout: Path) -> Iterator[_CuttingRegistry]:
    server = _CuttingRegistry(("127.0.0.1", 0), _Handler)
    server.layout = layout
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_cut_download_is_resumed(rkt: Rkt, cutting_registry: _CuttingRegistry):
    require_root()
    cutting_registry.cuts_left, cutting_registry.honour_range = 2, True
    port = cutting_registry.server_address[1]
    ref = f"docker://127.0.0.1:{port}/test/img:v1"
    proc = rkt.run("run", "--insecure-options=image,http", ref, "--", "sh", "-c", CHECK)
    assert "layers-ok" in proc.stdout
    assert cutting_registry.cuts_left == 0


def test_cut_download_without_resume_fails_cleanly(rkt: Rkt, cutting_registry: _CuttingRegistry):
    require_root()
    cutting_registry.cuts_left, cutting_registry.honour_range = 100, False
    port = cutting_registry.server_address[1]
    proc = rkt.run(
        "fetch",
        "--insecure-options=image,http",
        f"docker://127.0.0.1:{port}/test/img:v1",
        check=False,
    )
    assert proc.returncode == 254 and "cut" in proc.stderr
    assert [i for i in rkt.image_list() if "stage1" not in str(i["name"])] == []
    layers = rkt.dir / "cas" / "layers"
    assert not layers.exists() or list(layers.iterdir()) == []
    assert list((rkt.dir / "cas" / "tmp").iterdir()) == []


def test_run_legacy_schema1_image(rkt: Rkt, cutting_registry: _CuttingRegistry):
    require_root()
    cutting_registry.cuts_left, cutting_registry.honour_range = 0, True
    port = cutting_registry.server_address[1]
    ref = f"docker://127.0.0.1:{port}/test/img:schema1"
    proc = rkt.run("run", "--insecure-options=image,http", ref, "--", "sh", "-c", CHECK)
    assert "layers-ok" in proc.stdout


def test_a_malformed_layout_is_refused_on_one_line_naming_the_image(
    rkt: Rkt, tmp_path: Path
) -> None:
    """What the layout's index, manifest or config gets wrong is one line that names the
    image (exit 254), with nothing left in the store; a truncated index.json was an internal
    error in a process that had not imported ``json``."""
    bad_config = LayoutWriter(tmp_path / "config")
    bad_config.tag("v1", bad_config.image([(busybox_tree({}), "gzip")], {"Env": 5}))
    truncated = LayoutWriter(tmp_path / "index")
    truncated.tag("v1", truncated.image([(busybox_tree({}), "gzip")], {"Cmd": ["sh"]}))
    (tmp_path / "index" / "index.json").write_text('{"manifests": [{"a":1,')
    longer = LayoutWriter(tmp_path / "longer")
    longer.tag("v1", longer.image([(busybox_tree({}), "gzip")], {"Cmd": ["sh"]}))
    index = json.loads((tmp_path / "longer" / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    blob = tmp_path / "longer" / "blobs" / "sha256" / digest.split(":")[1]
    blob.write_bytes(blob.read_bytes() + b" " * 64)  # longer than its descriptor says
    cases = [
        (f"oci:{tmp_path / 'config'}:v1", "config.Env is not a list of strings"),
        (f"oci:{tmp_path / 'index'}:v1", "index.json is not JSON"),
        (f"oci:{tmp_path / 'longer'}:v1", "content does not match its digest"),
    ]
    for ref, cause in cases:
        proc = rkt.run("--insecure-options=image", "fetch", ref, check=False)
        errors = [line for line in proc.stderr.splitlines() if "warning:" not in line]
        assert proc.returncode == 254 and len(errors) == 1, proc.stderr
        assert errors[0].startswith(f'rkt: image "{ref}": ') and cause in errors[0], errors
    assert rkt.run("image", "list", "--no-legend").stdout == ""


@pytest.mark.parametrize("kind", ["oci", "docker-archive"])
def test_fetch_update_imports_a_local_source_again_once_it_names_another_image(
    rkt: Rkt, tmp_path: Path, kind: str
) -> None:
    require_root()
    root = tmp_path / "layout"
    writer = LayoutWriter(root)

    def tag(message: bytes) -> str:
        writer.tag("v1", writer.image([(busybox_tree({"msg": message}), "gzip")], {"Cmd": ["sh"]}))
        if kind == "oci":
            return f"oci:{root}:v1"
        require_tool("skopeo")
        archive = tmp_path / "saved.tar"
        archive.unlink(missing_ok=True)
        ref = f"docker-archive:{archive}:example.org/test/saved:1"
        subprocess.run(["skopeo", "copy", "--quiet", f"oci:{root}:v1", ref], check=True)
        return f"docker-archive:{archive}"

    def fetch(ref: str, *flags: str) -> str:
        return rkt.run("--insecure-options=image", "fetch", "--full", *flags, ref).stdout.strip()

    ref = tag(b"one\n")
    first = fetch(ref)
    assert fetch(ref) == first  # update (fetch's default): the source names the same image
    ref = tag(b"two\n")
    assert fetch(ref, "--pull-policy=new") == first  # new: what the store has under it
    second = fetch(ref)
    assert second != first
    assert fetch(ref, "--pull-policy=new") == second
