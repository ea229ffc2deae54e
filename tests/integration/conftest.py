"""Fixtures for integration tests: each test gets its own --dir and config dirs and drives the
installed ``rkt`` as a subprocess; images are built from Debian's busybox-static."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import RKT, require, require_root


@dataclass
class Rkt:
    """The rkt CLI bound to one test's data and config directories."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.root / "data"

    @property
    def local_config(self) -> Path:
        return self.root / "etc-rkt"

    @property
    def system_config(self) -> Path:
        return self.root / "usr-lib-rkt"

    def argv(self, *args: str) -> list[str]:
        return [
            str(RKT),
            f"--dir={self.dir}",
            f"--local-config={self.local_config}",
            f"--system-config={self.system_config}",
            *_isolated_network(args),
        ]

    def run(
        self,
        *args: str,
        check: bool = True,
        input: bytes | None = None,
        user: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        env = {**os.environ, **self.env}
        proc = subprocess.run(
            argv,
            input=input.decode() if input else None,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"rkt {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                f"stderr: {proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **self.env},
        )

    def image_list(self) -> list[dict[str, object]]:
        return list(json.loads(self.run("image", "list", "--format=json").stdout))


def _isolated_network(args: Sequence[str]) -> list[str]:
    """Pods of tests that do not choose a network get ``--net=none``: rkt's default network
    would wire veths and NAT rules into the machine's own namespace. The networking tests choose
    their networks explicitly, inside namespaces they create."""
    out = list(args)
    if (
        out
        and out[0] in ("run", "run-prepared")
        and not any(a == "--net" or a.startswith("--net=") for a in out)
    ):
        out.insert(1, "--net=none")
    return out


@pytest.fixture
def rkt(tmp_path: Path) -> Iterator[Rkt]:
    """rkt bound to this test's dirs; every pod it left behind is stopped and collected."""
    root = tmp_path / "rkt"
    root.mkdir()
    bound = Rkt(root)
    yield bound
    collect_pods(bound)


def collect_pods(bound: Rkt) -> None:
    """Stop running pods and gc everything, so no test leaks processes, cgroups or networks."""
    pods = bound.dir / "pods"
    if not pods.is_dir():
        return
    running = pods / "run"
    for pod in running.iterdir() if running.is_dir() else []:
        bound.run("stop", "--force", pod.name, check=False, timeout=60)
    for _ in range(2):  # pass 1 marks exited pods, pass 2 deletes them
        bound.run("gc", "--grace-period=0s", "--expire-prepared=0s", check=False, timeout=120)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal rootfs: Debian's static busybox and a few applet links."""
    busybox = Path("/bin/busybox")
    require(busybox.is_file(), "needs busybox-static")
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "echo", "true", "false", "sleep", "hostname", "ps", "id"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


def image_manifest(
    name: str,
    version: str = "1.0.0",
    *,
    exec_: Sequence[str] = ("/bin/true",),
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    doc: dict[str, object] = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": version},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "app": {"exec": list(exec_), "user": "0", "group": "0"},
    }
    doc.update(extra or {})
    return doc


@dataclass
class ImageFactory:
    rootfs: Path
    workdir: Path
    rkt: Rkt

    def build(
        self,
        name: str,
        version: str = "1.0.0",
        *,
        compression: str = "none",
        extra_files: dict[str, bytes] | None = None,
        with_busybox: bool = True,
        manifest_extra: dict[str, object] | None = None,
        out: Path | None = None,
    ) -> Path:
        """Build an ACI with ``rkt image build``; returns its path."""
        src = self.workdir / f"src-{name.replace('/', '_')}-{version}-{compression}"
        if src.exists():
            shutil.rmtree(src)
        src.mkdir(parents=True)
        if with_busybox:
            shutil.copytree(self.rootfs, src / "rootfs", symlinks=True)
        else:
            (src / "rootfs").mkdir()
        for rel, data in (extra_files or {}).items():
            target = src / "rootfs" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (src / "manifest").write_text(
            json.dumps(image_manifest(name, version, extra=manifest_extra))
        )
        out = out or self.workdir / f"{name.replace('/', '_')}-{version}.aci"
        self.rkt.run(
            "image", "build", "--overwrite", f"--compression={compression}", str(src), str(out)
        )
        return out


@pytest.fixture
def images(busybox_rootfs: Path, tmp_path: Path, rkt: Rkt) -> ImageFactory:
    work = tmp_path / "images"
    work.mkdir()
    return ImageFactory(busybox_rootfs, work, rkt)


@pytest.fixture
def as_root() -> Iterator[None]:
    require_root()
    yield
