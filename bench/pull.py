"""Pull-to-runnable of a ~200 MB, 5-layer image from a local registry (issue 6, acceptance 6).

Side by side, interleaved (``harness.compare``), baseline (a):

- (a) ``skopeo copy docker://… oci:DIR`` + ``umoci unpack``: the two-step pull a podman-less
  runtime does (download and verify the blobs, then unpack every layer into a bundle);
- (b) ``rkt fetch docker://…`` into an empty store: manifest, config, then every layer downloaded,
  verified and extracted in one pass, layers in parallel; the image is runnable when it returns;
- (c) ``rkt fetch`` of a second image sharing the 4 lower layers, into a store that already holds
  the first (untimed): the cost of a pull with layer sharing (one small new layer).

The image is the fetch-render corpus (``corpus.generate_tree``: busybox plus a deterministic file
mix) cut into 5 gzip layers: the busybox base, two halves of ``usr/lib``, the large blobs, and a
top layer with whiteouts (every 16th file of one package, a whole package dir, an opaque dir).
It is built once into an OCI layout under the work directory and pushed with skopeo to Debian's
docker-registry, started here on 127.0.0.1 (plain http, a free port) and stopped by PID.
Every run gets fresh target directories, removed (and the filesystem flushed) after the run,
outside the timed region.

    .venv/bin/python bench/pull.py [--rounds N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from corpus import generate_tree
from harness import BenchError, Case, Comparison, Sample, compare

ROOT = Path(__file__).resolve().parent.parent
REPO = "bench/layered"
VERSION = 1


def _tar(src: Path, members: list[str], out: Path) -> bytes:
    argv = ["tar", "-C", str(src), "--sort=name", "--mtime=@1700000000", "--owner=0"]
    argv += ["--group=0", "--numeric-owner", "-cf", str(out), *members]
    subprocess.run(argv, check=True)
    return out.read_bytes()


def _layers(tree: Path, work: Path) -> dict[str, bytes]:
    """The 6 layer tars: base, lib-a, lib-b, blobs, top (whiteouts) and top2 (for image two)."""
    rootfs = tree / "rootfs"
    pkgs = sorted(p.name for p in (rootfs / "usr/lib").iterdir())
    base = [p.name for p in rootfs.iterdir() if p.name not in ("usr", "var")]
    tars = {"base": _tar(rootfs, base, work / "base.tar")}
    half = len(pkgs) // 2
    tars["lib-a"] = _tar(rootfs, [f"usr/lib/{p}" for p in pkgs[:half]], work / "lib-a.tar")
    tars["lib-b"] = _tar(rootfs, [f"usr/lib/{p}" for p in pkgs[half:]], work / "lib-b.tar")
    tars["blobs"] = _tar(rootfs, ["var/lib/blobs"], work / "blobs.tar")
    top = work / "top"
    files = sorted((rootfs / "usr/lib" / pkgs[0]).rglob("*.so"))
    for i, path in enumerate(files):
        if i % 16 == 5:
            rel = path.relative_to(rootfs)
            (top / rel.parent).mkdir(parents=True, exist_ok=True)
            (top / rel.parent / f".wh.{rel.name}").write_bytes(b"")
    (top / "usr/lib" / f".wh.{pkgs[1]}").write_bytes(b"")
    opaque = top / "usr/lib" / pkgs[half] / "sub0"
    opaque.mkdir(parents=True, exist_ok=True)
    (opaque / ".wh..wh..opq").write_bytes(b"")
    (opaque / "replaced.txt").write_text("the only file left here\n")
    tars["top"] = _tar(top, ["usr"], work / "top.tar")
    two = work / "top2"
    (two / "etc").mkdir(parents=True, exist_ok=True)
    (two / "etc" / "image-two").write_text("two\n")
    tars["top2"] = _tar(two, ["etc"], work / "top2.tar")
    return tars


def build_layout(workdir: Path, log: Callable[[str], None]) -> Path:
    """The OCI layout with tags ``one`` and ``two`` (built once, kept in ``workdir``)."""
    layout = workdir / f"pull-v{VERSION}" / "oci"
    if (layout / "index.json").is_file():
        return layout
    work = layout.parent
    shutil.rmtree(work, ignore_errors=True)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    log("pull: generating the ~200 MB image and its 5 gzip layers (once)")
    generate_tree(work / "tree", size_mb=200, small_files=3500, seed=7)
    tars = _layers(work / "tree", work)

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    gz = {
        n: blob(gzip.compress(t, 6, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
        for n, t in tars.items()
    }
    index = []
    for tag, names in (
        ("one", ["base", "lib-a", "lib-b", "blobs", "top"]),
        ("two", ["base", "lib-a", "lib-b", "blobs", "top2"]),
    ):
        diff_ids = ["sha256:" + hashlib.sha256(tars[n]).hexdigest() for n in names]
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin:/usr/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        cfg = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": [gz[n] for n in names],
        }
        desc = blob(json.dumps(manifest).encode(), str(manifest["mediaType"]))
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index.append(desc)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": index}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    shutil.rmtree(work / "tree")
    for path in work.glob("*.tar"):
        path.unlink()
    return layout


@contextmanager
def registry(workdir: Path) -> Iterator[str]:
    """docker-registry on 127.0.0.1 (free port), up once it logs "listening on"; stopped by PID."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = workdir / "pull-registry"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "config.yml").write_text(
        "version: 0.1\nlog: {level: info, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {root}/storage}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    up = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b"listening on" in line:
                up.set()
        up.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not up.wait(30) or proc.poll() is not None:
            raise BenchError("docker-registry did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _fresh(path: Path) -> Callable[[], None]:
    def reset() -> None:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)

    return reset


def _gone(*paths: Path) -> Callable[[], None]:
    def clean() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        os.sync()

    return clean


def _layers_in(store: Path, expect: int) -> Callable[[Sample], str | None]:
    def check(sample: Sample) -> str | None:
        layers = store / "cas" / "layers"
        count = len(list(layers.iterdir())) if layers.is_dir() else 0
        return None if count == expect else f"{count} layers in the store, expected {expect}"

    return check


def run(
    *, rkt: Path, workdir: Path, rounds: int, warmup: int, log: Callable[[str], None]
) -> list[Comparison]:
    for tool in ("docker-registry", "skopeo", "umoci"):
        if shutil.which(tool) is None:
            raise BenchError(f"pull: needs {tool} (run make setup)")
    workdir.mkdir(parents=True, exist_ok=True)
    layout = build_layout(workdir, log)
    runs = workdir / "pull-runs"
    with registry(workdir) as host:
        for tag in ("one", "two"):
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    f"oci:{layout}:{tag}",
                    f"docker://{host}/{REPO}:{tag}",
                ],
                check=True,
            )
        one, two = f"docker://{host}/{REPO}:one", f"docker://{host}/{REPO}:two"
        a, b, c = runs / "a", runs / "b", runs / "c"
        pull = [str(rkt), "--insecure-options=image,http", "fetch"]

        def prepare_c() -> None:
            _fresh(c)()
            subprocess.run(
                [*pull[:1], f"--dir={c}", *pull[1:], one], check=True, capture_output=True
            )
            os.sync()

        cases = [
            Case(
                "(a) skopeo copy + umoci unpack",
                lambda: [
                    "sh",
                    "-c",
                    f"skopeo copy --quiet --src-tls-verify=false {one} oci:{a}/oci:one"
                    f" && umoci unpack --image {a}/oci:one {a}/bundle >/dev/null",
                ],
                prepare=_fresh(a),
                cleanup=_gone(a),
                description="download + verify blobs into an OCI layout, then unpack the layers",
            ),
            Case(
                "(b) rkt fetch, empty store",
                lambda: [pull[0], f"--dir={b}", *pull[1:], one],
                prepare=_fresh(b),
                check=_layers_in(b, 5),
                cleanup=_gone(b),
                description="one pass per layer (download, sha256, gunzip, diff_id, extract)",
            ),
            Case(
                "(c) rkt fetch two, store holds one",
                lambda: [pull[0], f"--dir={c}", *pull[1:], two],
                prepare=prepare_c,
                check=_layers_in(c, 6),
                cleanup=_gone(c),
                description="4 shared layers reused; only the small new top layer is fetched",
            ),
        ]
        sizes = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        result = compare(
            f"pull to runnable: 5-layer image from a local registry ({sizes / 1e6:.0f} MB of"
            " blobs in the layout)",
            cases,
            rounds=rounds,
            warmup=warmup,
            baselines=["(a) skopeo copy + umoci unpack"],
            log=log,
        )
    shutil.rmtree(runs, ignore_errors=True)
    return [result]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/pull.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/rkt-bench"))
    parser.add_argument("--rkt", type=Path, default=ROOT / ".venv" / "bin" / "rkt")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        results = run(
            rkt=args.rkt, workdir=args.workdir, rounds=args.rounds, warmup=args.warmup, log=log
        )
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print("\n".join(r.markdown() for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
