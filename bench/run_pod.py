"""``rkt run --net=none`` of ``/bin/true`` against ``crun run``, ``runc run`` and ``systemd-nspawn``
on the same busybox rootfs (issue 3, acceptance 7), and ``--private-users`` against the same pod
without it (issue 4, acceptance 4). The peer measurement is shared/peers/02-startup.sh.

Cases, interleaved round by round (``harness.compare``), baseline ``crun run``:

- ``crun run`` / ``runc run``: an OCI bundle (``crun spec``, ``/bin/true``, read-only absolute root)
  whose root is the busybox rootfs; each run is create+start+exit+delete.
- ``systemd-nspawn``: ``--register=no --keep-unit --quiet --read-only --private-network -D ROOTFS``.
- ``rkt run --net=none``: an ACI built from the same rootfs, already in the store; the exited pod
  is removed by ``rkt gc`` untimed after each run. The same command line runs every round, so
  after the first its pod is laid out from rkt run's memo (rkt.stage0.runmemo);
  ``(no memo)`` runs it with ``RKT_RUN_MEMO=0``, as a command line's first run.

Every case is started through ``nsenter --mount`` into one mount namespace made for the benchmark
(all pay the same ~1 ms): on a cgroup-v1 hybrid host whose cgroup2 mount has a controller, crun 1.8
refuses to run, so that namespace has ``/sys/fs/cgroup/unified`` replaced by an empty tmpfs (as
shared/peers/lib.sh ``in_bench_ns`` does); systemd-nspawn also gets a tmpfs on
``/run/systemd/nspawn`` when ``/run`` is not one. ``rkt run (host mount ns)`` runs rkt without it,
in the machine's own cgroup view, to show what the bench namespace changes for rkt.

The helpers here (the rootfs, the images, the bench namespace) are shared with ``list_pods`` and
``memory``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import BenchError, Case, Comparison, Sample, compare

IMAGE_TRUE = "example.com/bench-true"
IMAGE_SLEEP = "example.com/bench-sleep"
BASELINE = "crun run"

# A private mount namespace with the cgroup2 mount hidden (see the module docstring); prints
# "ready" once set up and then sleeps, so that cases can ``nsenter --mount`` into it.
NS_SCRIPT = r"""set -eu
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] && mountpoint -q /sys/fs/cgroup/unified \
   && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  umount /sys/fs/cgroup/unified
  mount -t tmpfs tmpfs /sys/fs/cgroup/unified
fi
if [ "$(stat -f -c %T /run)" != tmpfs ]; then
  mkdir -p /run/systemd/nspawn && mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
fi
echo ready
exec sleep infinity
"""


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if missing:
        raise BenchError(f"missing {', '.join(missing)} (run bench/setup.sh, or make bench)")


def make_rootfs(root: Path) -> Path:
    """The busybox-static rootfs with every applet linked (as shared/peers/01-rootfs.sh)."""
    if (root / "bin" / "busybox").exists():
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "run",
        "var",
    ):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, tmp / "bin" / "busybox")
    applets = subprocess.run(
        [str(tmp / "bin" / "busybox"), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = tmp / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (tmp / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp / "etc" / "group").write_text("root:x:0:\n")
    (tmp / "etc" / "hosts").write_text("")
    (tmp / "etc" / "resolv.conf").write_text("")
    tmp.rename(root)
    return root


def make_bundle(bundle: Path, rootfs: Path, args: Sequence[str]) -> Path:
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = list(args)
    spec["process"]["terminal"] = False
    spec["root"] = {"path": str(rootfs), "readonly": True}
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return bundle


def make_image(rkt: Path, work: Path, rootfs: Path, name: str, exec_: Sequence[str]) -> Path:
    """An ACI of ``rootfs`` running ``exec_`` (built once per work dir)."""
    aci = work / f"{name.rsplit('/', 1)[-1]}.aci"
    if aci.exists():
        return aci
    src = work / f"{aci.stem}-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    shutil.copytree(rootfs, src / "rootfs", symlinks=True)
    manifest = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": "1"},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "app": {"exec": list(exec_), "user": "0", "group": "0"},
    }
    (src / "manifest").write_text(json.dumps(manifest))
    subprocess.run(
        [str(rkt), "image", "build", "--overwrite", str(src), str(aci)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(src)
    return aci


def fetch_into(rkt: Path, data: Path, aci: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [str(rkt), f"--dir={data}", "--insecure-options=image", "fetch", str(aci)],
        check=True,
        capture_output=True,
        env=env,
    )


def rkt_env() -> dict[str, str]:
    """rkt as installed: bytecode used and written (a benchmark session may disable that)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_bytecode(rkt: Path) -> None:
    """``compileall`` the rkt package, as scripts/setup.sh does, so no run pays compilation."""
    python = rkt.parent / "python"
    src = subprocess.run(
        [str(python), "-c", "import rkt, os; print(os.path.dirname(rkt.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", src], check=True, env=rkt_env())


class BenchNamespace:
    """A mount namespace held open by a sleeping process; ``prefix`` enters it."""

    def __init__(self) -> None:
        need("unshare", "nsenter")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", NS_SCRIPT],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            self.close()
            raise BenchError("could not set up the benchmark mount namespace")
        self.prefix = ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> BenchNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ok(sample: Sample) -> str | None:
    return None if sample.returncode == 0 else sample.stderr.decode(errors="replace")[-300:]


def gc_pods(rkt: Path, data: Path, env: dict[str, str], prefix: Sequence[str] = ()) -> None:
    # The first pass moves exited pods to garbage, the second removes them.
    for _ in range(2):
        subprocess.run(
            [*prefix, str(rkt), f"--dir={data}", "gc", "--grace-period=0s"],
            check=False,
            capture_output=True,
            env=env,
        )


def run(
    *,
    rkt: Path,
    workdir: Path,
    rounds: int,
    warmup: int,
    log: Callable[[str], None],
    private_users: bool = True,
    others: Sequence[tuple[str, Path]] = (),
) -> list[Comparison]:
    """``others``: (label, src dir) of other rkt sources, each timed as one more
    ``rkt@LABEL run --net=none`` case (PYTHONPATH; an A/B of a change, in the same rounds)."""
    need("crun", "runc", "systemd-nspawn", "busybox")
    compile_bytecode(rkt)
    python = str(rkt.parent / "python")
    for _, src in others:
        subprocess.run([python, "-m", "compileall", "-q", str(src)], check=True, env=rkt_env())
    env = rkt_env()
    work = workdir / "run-pod"
    work.mkdir(parents=True, exist_ok=True)
    rootfs = make_rootfs(work / "rootfs")
    bundle = make_bundle(work / "bundle", rootfs, ["/bin/true"])
    data = work / "data"
    aci = make_image(rkt, work, rootfs, IMAGE_TRUE, ["/bin/true"])
    # each other source has a store of its own (an older rkt refuses a newer store's index)
    other_data = {label: work / f"data-{label}" for label, _ in others}
    # every store starts empty: one kept from earlier runs holds a built-in stage1 image per
    # rebuild of the native programs (image gc's to remove), which every cold start reads
    for store in (data, *other_data.values()):
        shutil.rmtree(store, ignore_errors=True)
    fetch_into(rkt, data, aci, env)
    for label, src in others:
        fetch_into(rkt, other_data[label], aci, {**env, "PYTHONPATH": str(src)})
    image = f"{IMAGE_TRUE}:1"
    rkt_run = [str(rkt), f"--dir={data}", "run", "--net=none", "--pull-policy=never"]
    tag = uuid.uuid4().hex[:6]
    counter = iter(range(1 << 30))
    results = []
    with BenchNamespace() as ns:
        enter = ns.prefix

        def gc() -> None:
            gc_pods(rkt, data, env, enter)

        uuid_: list[str] = []

        def prepare() -> None:
            out = subprocess.run(
                [*enter, str(rkt), f"--dir={data}", "prepare", "--quiet", image],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            uuid_[:] = [out.stdout.strip()]

        nspawn = ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "--read-only"]
        cases = [
            Case(
                BASELINE,
                lambda: [
                    *enter,
                    "crun",
                    "run",
                    "-b",
                    str(bundle),
                    f"rkt-bench-{tag}-{next(counter)}",
                ],
                check=ok,
                description="crun run -b BUNDLE ID (create, start, exit, delete)",
            ),
            Case(
                "runc run",
                lambda: [
                    *enter,
                    "runc",
                    "run",
                    "-b",
                    str(bundle),
                    f"rkt-bench-{tag}-{next(counter)}",
                ],
                check=ok,
                description="runc run -b BUNDLE ID",
            ),
            Case(
                "systemd-nspawn",
                lambda: [*enter, *nspawn, "--private-network", "-D", str(rootfs), "/bin/true"],
                check=ok,
                description=" ".join(nspawn) + " --private-network -D ROOTFS /bin/true",
            ),
            Case(
                "rkt run --net=none",
                lambda: [*enter, *rkt_run, image],
                cleanup=gc,
                check=ok,
                env=env,
                description=f"rkt --dir=DATA run --net=none --pull-policy=never {image}; "
                "rkt gc untimed",
            ),
            Case(
                "rkt run --net=none (no memo)",
                lambda: [*enter, *rkt_run, image],
                cleanup=gc,
                check=ok,
                env={**env, "RKT_RUN_MEMO": "0"},
                description="the same with RKT_RUN_MEMO=0: the pod prepared from its images and "
                "flags, as the first run of a command line is (docs/architecture.md, the run memo)",
            ),
            *(
                Case(
                    f"rkt@{label} run --net=none",
                    lambda d=other_data[label]: [
                        *enter,
                        str(rkt),
                        f"--dir={d}",
                        *rkt_run[2:],
                        image,
                    ],
                    cleanup=lambda d=other_data[label], e={**env, "PYTHONPATH": str(src)}: gc_pods(
                        rkt, d, e, enter
                    ),
                    check=ok,
                    env={**env, "PYTHONPATH": str(src)},
                    description=f"the same, rkt from {src} (PYTHONPATH), its own store",
                )
                for label, src in others
            ),
            Case(
                "rkt run-prepared --net=none",
                lambda: [*enter, str(rkt), f"--dir={data}", "run-prepared", "--net=none", *uuid_],
                prepare=prepare,
                cleanup=gc,
                check=ok,
                env=env,
                description="rkt run-prepared of a pod made by `rkt prepare --quiet IMAGE` "
                "untimed before each run; rkt gc untimed",
            ),
            Case(
                "rkt run (host mount ns)",
                lambda: [*rkt_run, image],
                cleanup=lambda: gc_pods(rkt, data, env),
                check=ok,
                env=env,
                description="the same, started without nsenter: the machine's own cgroup view",
            ),
        ]
        try:
            result = compare(
                "rkt run --net=none of /bin/true vs crun, runc and systemd-nspawn",
                cases,
                rounds=rounds,
                warmup=warmup,
                baselines=[BASELINE, "runc run"],  # the aim: within 2x crun, ahead of runc
                log=log,
            )
            result.notes.append(
                "every case but the last is started with `nsenter --mount=<bench ns> --`, a mount "
                "namespace where /sys/fs/cgroup/unified is an empty tmpfs (crun 1.8 refuses this "
                "host's hybrid cgroup layout otherwise)"
            )
            results.append(result)
            if private_users:
                results.append(_private_users(rkt_run, image, enter, gc, env, rounds, warmup, log))
        finally:
            gc()
    return results


def _private_users(
    rkt_run: list[str],
    image: str,
    enter: list[str],
    gc: Callable[[], None],
    env: dict[str, str],
    rounds: int,
    warmup: int,
    log: Callable[[str], None],
) -> Comparison:
    base = "rkt run --net=none"
    cases = [
        Case(base, lambda: [*enter, *rkt_run, image], cleanup=gc, check=ok, env=env),
        Case(
            "rkt run --net=none --private-users",
            lambda: [*enter, *rkt_run, "--private-users", image],
            cleanup=gc,
            check=ok,
            env=env,
            description="the same pod in a user namespace (idmapped mounts under the overlay)",
        ),
    ]
    result = compare(
        "rkt run --private-users vs the same pod without it (issue 4: within 1.2x)",
        cases,
        rounds=rounds * 2,
        warmup=warmup,
        baselines=[base],
        log=log,
    )
    result.notes.append("both started with `nsenter --mount=<bench ns> --`; rkt gc untimed")
    return result
