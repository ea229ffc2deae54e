"""Test plumbing for Docker/OCI images: layouts built from tar layers, and a docker-registry.

``LayoutWriter`` writes OCI image layouts (image-spec image-layout.md) from layer trees given as
{path: bytes | None (directory) | str (symlink target)}; whiteouts are plain ``.wh.*`` files, as in
any layer. ``Registry`` runs Debian's docker-registry on 127.0.0.1 (a free port), optionally with
TLS (a CA made by trustme) and htpasswd auth (bcrypt through libcrypt), stopped by PID.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Tree = dict[str, "bytes | str | None"]


def busybox_tree(extra: Tree | None = None) -> Tree:
    """A busybox rootfs as a layer tree (applets as symlinks, passwd with a user)."""
    tree: Tree = {
        "bin": None,
        "bin/busybox": Path("/bin/busybox").read_bytes(),
        "etc": None,
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nweb:x:1234:4321:web:/home/web:/bin/sh\n",
        "etc/group": b"root:x:0:\nweb:x:4321:\n",
        "tmp": None,
    }
    for applet in ("sh", "ls", "cat", "echo", "test", "wget", "httpd", "sleep", "id", "uname"):
        tree[f"bin/{applet}"] = "busybox"
    tree.update(extra or {})
    return tree


def layer_tar(tree: Tree) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(tree):
            value = tree[name]
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if value is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(value, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(value), 0o755 if name.startswith("bin/") else 0o644
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def compress(data: bytes, how: str) -> tuple[bytes, str]:
    base = "application/vnd.oci.image.layer.v1.tar"
    if how == "gzip":
        return gzip.compress(data, mtime=0), base + "+gzip"
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data), base + "+zstd"
    return data, base


@dataclass
class LayoutWriter:
    root: Path
    index: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(
        self,
        layers: list[tuple[Tree, str]],
        config: dict[str, Any],
        *,
        arch: str = "amd64",
    ) -> dict[str, Any]:
        """Write config, layers and manifest; returns the manifest's descriptor."""
        descs, diff_ids = [], []
        for tree, how in layers:
            raw = layer_tar(tree)
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            data, media_type = compress(raw, how)
            descs.append(self.blob(data, media_type))
        cfg = {
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        cfg_desc = self.blob(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg_desc,
            "layers": descs,
        }
        desc = self.blob(json.dumps(manifest).encode(), manifest["mediaType"])
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def tag(self, name: str, desc: dict[str, Any]) -> None:
        entry = {**desc, "annotations": {"org.opencontainers.image.ref.name": name}}
        self.index = [e for e in self.index if e["annotations"] != entry["annotations"]]
        self.index.append(entry)
        doc = {"schemaVersion": 2, "manifests": self.index}
        (self.root / "index.json").write_text(json.dumps(doc))

    def image_index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }
        return self.blob(json.dumps(doc).encode(), doc["mediaType"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


@dataclass
class Registry:
    """Debian's docker-registry 2.8 on 127.0.0.1; ``stop`` kills it by PID."""

    root: Path
    tls: tuple[Path, Path] | None = None  # (cert chain, key)
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def start(self) -> Registry:
        self.port = free_port()
        lines = [
            "version: 0.1",
            "log: {level: info, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}}}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if self.tls:
            lines.append(f"  tls: {{certificate: {self.tls[0]}, key: {self.tls[1]}}}")
        if self.users:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in self.users.items()))
            lines.append(f"auth: {{htpasswd: {{realm: rkt-test, path: {htpasswd}}}}}")
        config = self.root / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        listening = threading.Event()
        log = self.root / "registry.log"

        def pump() -> None:  # the registry logs "listening on" once its socket is bound
            assert self.proc is not None and self.proc.stdout is not None
            with open(log, "wb") as out:
                for line in self.proc.stdout:
                    out.write(line)
                    out.flush()
                    if b"listening on" in line:
                        listening.set()
            listening.set()

        threading.Thread(target=pump, daemon=True).start()
        if not listening.wait(30) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"docker-registry did not start: {log.read_text()}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def push(self, layout: Path, tag: str, repo: str, *, all_platforms: bool = False) -> None:
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if self.users:
            user, password = next(iter(self.users.items()))
            argv.append(f"--dest-creds={user}:{password}")
        if all_platforms:
            argv.append("--all")
        argv += ["--preserve-digests", f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}"]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def blob_data(self, digest: str) -> Path:
        hexdigest = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
