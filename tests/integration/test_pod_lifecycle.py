"""Pods without a daemon (issue 3): run, prepare, status, list, enter, stop, rm, gc, logs, export.

Every test runs twice: on the default stage1 (``rkt run`` without stage1 flags) and on the ABI test
stage1 (tests/abi_stage1, written only from docs/stage1-abi.md), so the pod commands are pinned to
the ABI rather than to one flavor. Pods are started with ``rkt prepare`` + ``rkt run-prepared`` so
the test knows the UUID at once, and ``rkt status --wait-ready`` / ``--wait`` are the only
synchronisation: no sleeps.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.abi_stage1.build import build_stage1_aci
from tests.conftest import require, require_root
from tests.integration.conftest import ImageFactory, Rkt

INSECURE = "--insecure-options=image"


def require_default_stage1() -> None:
    """The default flavor's modules (rkt.stage1.ns) are written in parallel with these tests."""
    found = importlib.util.find_spec("rkt.stage1.ns") is not None and all(
        importlib.util.find_spec(f"rkt.stage1.ns.{m}") is not None
        for m in ("run", "enter", "stop", "gc")
    )
    require(found, "needs the default stage1 (rkt.stage1.ns.{run,enter,stop,gc})")


def abi_stage1_aci(rkt: Rkt, workdir: Path, interface_version: str = "1") -> Path:
    def image_build(src: Path, out: Path) -> None:
        rkt.run("image", "build", "--overwrite", str(src), str(out))

    out = workdir / f"abi-stage1-v{interface_version}.aci"
    return build_stage1_aci(out, image_build, interface_version=interface_version)


@dataclass
class Pods:
    """Start pods with one stage1 and clean up whatever a failing test leaves running."""

    rkt: Rkt
    images: ImageFactory
    stage1: list[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def image(self, name: str = "example.com/busybox", **kwargs: object) -> Path:
        return self.images.build(name, **kwargs)  # type: ignore[arg-type]

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.rkt.run("run", INSECURE, "--net=host", *self.stage1, *args, check=check)

    def prepare(self, *args: str) -> str:
        out = self.rkt.run("prepare", "--quiet", INSECURE, *self.stage1, *args).stdout
        return out.strip()

    def start(self, *args: str) -> tuple[str, subprocess.Popen[bytes]]:
        """A running pod (every app started) and its ``rkt run-prepared`` process."""
        uuid = self.prepare(*args)
        proc = self.rkt.popen("run-prepared", "--net=host", uuid)
        self.procs.append(proc)
        ready = self.rkt.run("status", "--wait-ready=60s", uuid, check=False)
        if ready.returncode != 0:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"pod {uuid} never got ready: {ready.stderr}{err.decode()}")
        return uuid, proc

    def status(self, uuid: str) -> dict[str, str]:
        lines = self.rkt.run("status", uuid).stdout.splitlines()
        return dict(line.split("=", 1) for line in lines)

    def listing(self) -> dict[str, dict[str, object]]:
        pods = json.loads(self.rkt.run("list", "--format=json").stdout)
        return {p["name"]: p for p in pods}

    def cleanup(self) -> None:
        if self.rkt.dir.is_dir():
            for uuid, pod in self.listing().items():
                if pod["state"] == "running":
                    self.rkt.run("stop", "--force", uuid, check=False)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


@pytest.fixture(params=["default", "default-exec", "abi"])
def pods(request: pytest.FixtureRequest, rkt: Rkt, images: ImageFactory) -> Iterator[Pods]:
    """The default stage1 (run in-process by stage0), the same exec'd as the ABI says
    (``RKT_STAGE1_EXEC=1``: stage0/inprocess.py must not change what a pod does), and the
    ABI test stage1."""
    require_root()
    if request.param.startswith("default"):
        require_default_stage1()
        stage1: list[str] = []
        if request.param == "default-exec":
            rkt.env["RKT_STAGE1_EXEC"] = "1"
    else:
        stage1 = [f"--stage1-path={abi_stage1_aci(rkt, images.workdir)}"]
    helper = Pods(rkt, images, stage1)
    yield helper
    helper.cleanup()


def sh(script: str) -> list[str]:
    """App flags and args running ``script`` with the image's busybox sh."""
    return ["--exec=/bin/sh", "--", "-c", script, "---"]


# -- run, status, list ---------------------------------------------------------------------------


def test_run_returns_the_app_exit_status_and_status_shows_it(pods: Pods, tmp_path: Path) -> None:
    image = pods.image()
    uuid_file = tmp_path / "uuid"
    proc = pods.run(f"--uuid-file-save={uuid_file}", str(image), "--name=worker", *sh("exit 7"))
    assert proc.returncode == 7, proc.stderr
    uuid = uuid_file.read_text().strip()
    status = pods.status(uuid)
    assert status["state"] == "exited"
    assert status["exited"] == "true"
    assert status["app-worker"] == "7"
    for key in ("created", "started"):
        assert status[key].endswith("+0000 UTC"), status
    status_json = json.loads(pods.rkt.run("status", "--format=json", uuid).stdout)
    assert status_json["name"] == uuid and status_json["apps"][0]["exit_code"] == 7
    assert pods.rkt.run("status", f"--uuid-file={uuid_file}").stdout.startswith("state=exited")


def test_run_passes_app_output_and_zero_status(pods: Pods) -> None:
    proc = pods.run(str(pods.image()), *sh("echo out-line; echo err-line >&2"))
    assert proc.returncode == 0, proc.stderr
    assert "out-line" in proc.stdout
    assert "err-line" in proc.stderr


def test_first_failing_app_stops_the_pod_and_gives_its_status(pods: Pods) -> None:
    image = pods.image()
    proc = pods.run(
        str(image), "--name=fails", *sh("exit 3"), str(image), "--name=waits", *sh("sleep 600")
    )
    assert proc.returncode == 3


def test_list_shows_pods_in_rkt_columns(pods: Pods) -> None:
    image = pods.image()
    pods.run(str(image), "--name=one", *sh("true"), check=True)
    out = pods.rkt.run("list").stdout.splitlines()
    assert out[0].split() == [
        "UUID",
        "APP",
        "IMAGE",
        "NAME",
        "STATE",
        "CREATED",
        "STARTED",
        "NETWORKS",
    ]
    row = out[1].split("\t")
    cells = [c for c in row if c]
    assert len(cells[0]) == 8 and cells[1] == "one"
    assert cells[2] == "example.com/busybox:1.0.0" and cells[3] == "exited"
    assert "ago" in out[1] or "now" in out[1]
    full = pods.rkt.run("list", "--full", "--no-legend").stdout.splitlines()
    assert len(full) == 1 and len(full[0].split("\t")[0]) == 36
    listing = pods.listing()
    (pod,) = listing.values()
    assert pod["state"] == "exited" and pod["app_names"] == ["one"]
    pretty = pods.rkt.run("list", "--format=json-pretty").stdout
    assert json.loads(pretty) == json.loads(pods.rkt.run("list", "--format=json").stdout)


def test_prepare_then_run_prepared(pods: Pods) -> None:
    uuid = pods.prepare(str(pods.image()), *sh("exit 5"))
    assert len(uuid) == 36
    assert pods.listing()[uuid]["state"] == "prepared"
    assert pods.status(uuid)["state"] == "prepared"
    proc = pods.rkt.run("run-prepared", "--net=host", uuid, check=False)
    assert proc.returncode == 5, proc.stderr
    assert pods.status(uuid)["app-busybox"] == "5"
    again = pods.rkt.run("run-prepared", uuid, check=False)
    assert again.returncode == 254
    assert len(again.stderr.strip().splitlines()) == 1


def test_cat_manifest(pods: Pods) -> None:
    uuid = pods.prepare(str(pods.image()), "--name=web")
    pretty = pods.rkt.run("cat-manifest", uuid[:8]).stdout
    doc = json.loads(pretty)
    assert doc["acKind"] == "PodManifest" and doc["apps"][0]["name"] == "web"
    assert "\n\t" in pretty
    compact = pods.rkt.run("cat-manifest", "--pretty-print=false", uuid).stdout
    assert compact.count("\n") == 1 and json.loads(compact) == doc


def test_a_usage_error_leaves_no_pod_behind(pods: Pods) -> None:
    """What the flags alone get wrong is refused (exit 2, one line) before ``rkt run`` creates
    its pod, and ``run-prepared`` leaves a prepared pod prepared."""
    image = str(pods.image())
    for flags in (
        [image, "--mount=volume=nope,target=/x"],
        ["--volume=v,kind=host", image],
        ["--volume=v,kind=empty,mode=77777", image],
        ["--volume=v,kind=empty", "--volume=v,kind=empty", image],
        [image, "--name=a", image, "--name=a"],
        [image, "--name=Not_An_AC_Name"],
        [image, "--working-dir=relative"],
        ["--hostname=bad host", image],
        ["--set-env=A=\udcff", image],  # a byte that is not UTF-8: no pod manifest can hold it
    ):
        proc = pods.run(*flags)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (flags, proc.stderr)
    assert pods.listing() == {}
    uuid = pods.prepare(image, *sh("true"))
    proc = pods.rkt.run("run-prepared", "--hostname=bad host", uuid, check=False)
    assert proc.returncode == 2 and "not a valid hostname" in proc.stderr
    assert pods.listing()[uuid]["state"] == "prepared"


def test_how_a_prepared_pod_runs_is_given_to_run_prepared(pods: Pods) -> None:
    """rkt's split: ``prepare`` makes the pod, ``run-prepared`` chooses how it runs. prepare
    refuses the run-time flags (it would not keep them) and leaves nothing behind; run-prepared
    takes them, ``--private-users`` included (stage1 interface 2: not the ABI test stage1's)."""
    image = str(pods.image())
    for flag in ("--net=host", "--dns=192.0.2.1", "--hostname=x", "--private-users", "--port=p:80"):
        proc = pods.rkt.run("prepare", INSECURE, flag, image, check=False)
        name = flag.split("=")[0]
        want = f"rkt: {name} is a flag of rkt run-prepared: a prepared pod does not keep it\n"
        assert (proc.returncode, proc.stderr) == (2, want)
    assert pods.listing() == {}
    uuid = pods.prepare(image, *sh("cat /proc/self/uid_map; hostname"))
    private = [] if pods.stage1 else ["--private-users"]
    proc = pods.rkt.run("run-prepared", "--net=host", *private, "--hostname=later", uuid)
    inside, shift, count, hostname = proc.stdout.split()
    assert (inside, hostname) == ("0", "later")
    if private:  # a range of its own, not the host's ids
        assert int(shift) >= 65536 and count == "65536"
    assert pods.status(uuid)["app-busybox"] == "0"


def test_a_pod_manifest_without_apps_is_refused_on_one_line(pods: Pods, tmp_path: Path) -> None:
    """Not an internal error (KeyError) for a missing or null ``apps``."""
    for doc in (
        '{"acKind":"PodManifest","acVersion":"0.8.11"}',
        '{"acKind":"PodManifest","acVersion":"0.8.11","apps":null}',
    ):
        manifest = tmp_path / "pod.json"
        manifest.write_text(doc)
        proc = pods.rkt.run(
            "prepare", INSECURE, f"--pod-manifest={manifest}", *pods.stage1, check=False
        )
        assert proc.returncode == 254, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("rkt: warning:")]
        assert errors == [f'rkt: --pod-manifest "{manifest}": has no apps']


def test_a_missing_host_volume_source_is_named(pods: Pods, tmp_path: Path) -> None:
    """Not "mount /mnt: no such file or directory" from deep in the app's start."""
    missing = tmp_path / "missing"
    proc = pods.run(
        f"--volume=v,kind=host,source={missing}", str(pods.image()), "--mount=volume=v,target=/mnt"
    )
    assert proc.returncode == 254, proc.stderr
    if not pods.stage1:  # the built-in stage1's message (the ABI test stage1 has its own)
        assert f'source "{missing}" does not exist' in proc.stderr, proc.stderr
        # refused after the stage1 had spawned pod-init (start.SpawnedInit): it said nothing,
        # and neither it nor a process of the pod outlived rkt run
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("rkt: warning:")]
        assert len(errors) == 1, proc.stderr
        assert processes_under(pods.rkt.dir) == []


def processes_under(directory: Path) -> list[int]:
    """Pids of the processes whose working directory is under ``directory`` (a pod's are in
    its pod directory, from the stage1 on)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("exec_stage1", [False, True])
def test_a_caller_that_ignores_sigchld_still_gets_the_apps_status(
    rkt: Rkt, images: ImageFactory, exec_stage1: bool
) -> None:
    """An ignored SIGCHLD survives execve: a caller that ignores it (some daemons and shells
    do) used to leave the pod's waiter and supervisor without any child ever reported, and an
    exec'd stage1 never ended. They take the default back, as a fresh program expects."""
    require_root()
    require_default_stage1()
    env = {**os.environ, **rkt.env, **({"RKT_STAGE1_EXEC": "1"} if exec_stage1 else {})}
    proc = subprocess.run(
        rkt.argv(
            "run", INSECURE, "--net=none", str(images.build("example.com/busybox")),
            "--exec=/bin/sh", "--", "-c", "exit 7",
        ),
        env=env, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr


def test_unknown_pod_is_one_line_error(pods: Pods) -> None:
    for command in (["status"], ["stop"], ["rm"], ["cat-manifest"], ["enter"], ["logs"]):
        proc = pods.rkt.run(*command, "deadbeef", check=False)
        assert proc.returncode == 254, command
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], command
        assert "deadbeef" in proc.stderr


# -- stop, kill, gc, rm --------------------------------------------------------------------------


def test_stop_ends_a_running_pod_within_ten_seconds(pods: Pods) -> None:
    uuid, proc = pods.start(str(pods.image()), *sh("sleep 600"))
    assert pods.listing()[uuid]["state"] == "running"
    begin = time.monotonic()
    out = pods.rkt.run("stop", uuid).stdout
    assert time.monotonic() - begin < 10
    assert out.strip() == f'"{uuid}"'
    proc.communicate(timeout=30)
    assert pods.status(uuid)["state"] == "exited"
    again = pods.rkt.run("stop", uuid)
    assert "already stopped" in again.stdout


def test_stop_force_kills_at_once(pods: Pods, tmp_path: Path) -> None:
    uuid, proc = pods.start(str(pods.image()), *sh("trap '' TERM; sleep 600"))
    uuid_file = tmp_path / "uuid"
    uuid_file.write_text(uuid)
    begin = time.monotonic()
    pods.rkt.run("stop", "--force", f"--uuid-file={uuid_file}")
    assert time.monotonic() - begin < 5
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert pods.status(uuid)["state"] == "exited"


@pytest.mark.slow
def test_stop_waits_for_the_kill_of_an_app_that_ignores_sigterm(
    rkt: Rkt, images: ImageFactory
) -> None:
    """SIGTERM, then SIGKILL 10 s later (docs/stage1-abi.md): ``rkt stop`` reports the pod
    stopped, not "still running", when the kill is what ends it (the default stage1)."""
    require_root()
    require_default_stage1()
    pods = Pods(rkt, images, [])
    try:
        uuid, proc = pods.start(str(pods.image()), *sh("trap '' TERM; while :; do sleep 1; done"))
        begin = time.monotonic()
        stop = pods.rkt.run("stop", uuid, check=False)
        took = time.monotonic() - begin
        assert (stop.returncode, stop.stdout.strip()) == (0, f'"{uuid}"'), stop.stderr
        assert 9 < took < 15
        proc.communicate(timeout=30)
        assert pods.status(uuid)["state"] == "exited"
    finally:
        pods.cleanup()


def test_status_wait_returns_when_the_pod_exits(pods: Pods) -> None:
    uuid, proc = pods.start(str(pods.image()), *sh("sleep 600"))
    waiter = subprocess.Popen(
        pods.rkt.argv("status", "--wait=60s", uuid), stdout=subprocess.PIPE, text=True
    )
    pods.rkt.run("stop", uuid)
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and "exited=true" in out
    proc.communicate(timeout=30)
    timeout = pods.rkt.run("status", "--wait=0.2s", uuid)  # exited: returns at once
    assert timeout.returncode == 0


def test_killed_rkt_run_leaves_an_exited_pod_that_gc_removes(pods: Pods) -> None:
    uuid, proc = pods.start(str(pods.image()), *sh("sleep 600"))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    pods.rkt.run("status", "--wait=30s", uuid)  # the pod dies with its run process
    assert pods.listing()[uuid]["state"] == "exited"
    assert not _processes_mentioning(uuid)
    gc = pods.rkt.run("gc", "--grace-period=0s")
    assert f'Garbage collecting pod "{uuid}"' in gc.stdout
    assert f'moving pod "{uuid}" to garbage' in gc.stderr
    assert uuid not in pods.listing()
    assert not any((pods.rkt.dir / "pods").glob(f"*/{uuid}"))


def test_gc_respects_grace_period_and_mark_only(pods: Pods) -> None:
    pods.run(str(pods.image()), *sh("true"), check=True)
    (uuid,) = pods.listing()
    pods.rkt.run("gc", "--mark-only")
    assert pods.listing()[uuid]["state"] == "exited garbage"
    kept = pods.rkt.run("gc")  # default grace period 30m
    assert "Garbage collecting" not in kept.stdout
    pods.rkt.run("gc", "--grace-period=0s")
    assert pods.listing() == {}


def _age_every_image(data_dir: Path, seconds: float) -> None:
    """Every image of the store last used ``seconds`` earlier, as in a long-lived store: the
    index says so, and the name files (a cache of its rows) are removed for readers to rebuild."""
    import sqlite3

    with sqlite3.connect(data_dir / "cas" / "db" / "index.sqlite") as conn:
        conn.execute("UPDATE images SET last_used = last_used - ?", (seconds,))
    for rows in (data_dir / "cas" / "db" / "names").glob("*.rows"):
        rows.unlink()


def test_image_gc_keeps_the_stage1_a_pod_starts_with(pods: Pods) -> None:
    """Starting a pod counts as a use of its stage1 image, as of its apps' images (rkt's
    LastUsed): in a store unused for two days, the images of a pod that just started survive
    ``image gc --grace-period=24h`` (a built-in stage1 would otherwise be made again by the next
    run, a fetched one fetched again)."""
    image = str(pods.image())
    pods.run(image, *sh("true"), check=True)
    used = {img["id"] for img in pods.rkt.image_list()}
    assert len(used) == 2  # the app's image and the stage1's
    _age_every_image(pods.rkt.dir, 2 * 86400)
    pods.run(image, *sh("true"), check=True)
    pods.rkt.run("gc", "--grace-period=0s")  # no pod left to hold an image: only its last use
    pods.rkt.run("image", "gc", "--grace-period=24h")
    assert {img["id"] for img in pods.rkt.image_list()} == used


def test_image_rm_refuses_the_image_of_a_prepared_or_running_pod(pods: Pods) -> None:
    """Their app roots are overlays on the image's tree: ``image rm`` says which pod holds it
    (one line, 254) and removes nothing; once the pod has exited, the image may go (as in rkt;
    list, status and gc still work)."""
    image = str(pods.image())
    prepared = pods.prepare(image, *sh("true"))
    (image_id,) = [str(i["id"]) for i in pods.rkt.image_list() if "busybox" in str(i["name"])]
    refused = pods.rkt.run("image", "rm", image_id, check=False)
    assert refused.returncode == 254 and refused.stderr.count("\n") == 1
    assert f'used by prepared pod "{prepared}"' in refused.stderr
    pods.rkt.run("rm", prepared)
    uuid, proc = pods.start(image, *sh("sleep 600"))
    refused = pods.rkt.run("image", "rm", image_id, check=False)
    assert refused.returncode == 254 and f'used by running pod "{uuid}"' in refused.stderr
    pods.rkt.run("enter", uuid, "/bin/true")  # its root is whole
    pods.rkt.run("stop", uuid)
    proc.communicate(timeout=30)
    pods.rkt.run("image", "rm", image_id)
    assert pods.status(uuid)["state"] == "exited"
    pods.rkt.run("gc", "--grace-period=0s")
    assert pods.listing() == {}


def test_gc_removes_expired_prepared_pods(pods: Pods) -> None:
    uuid = pods.prepare(str(pods.image()))
    pods.rkt.run("gc", "--grace-period=0s")
    assert uuid in pods.listing()
    pods.rkt.run("gc", "--grace-period=0s", "--expire-prepared=0s")
    assert uuid not in pods.listing()


def test_rm_removes_exited_pods_and_refuses_running_ones(pods: Pods) -> None:
    image = pods.image()
    pods.run(str(image), *sh("true"), check=True)
    (exited,) = pods.listing()
    running, proc = pods.start(str(image), *sh("sleep 600"))
    refused = pods.rkt.run("rm", running, check=False)
    assert refused.returncode == 254 and "running" in refused.stderr
    removed = pods.rkt.run("rm", exited)
    assert removed.stdout.strip() == f'"{exited}"'
    assert set(pods.listing()) == {running}
    pods.rkt.run("stop", running)
    proc.communicate(timeout=30)


# -- enter, logs, export -------------------------------------------------------------------------


def test_enter_runs_a_command_in_the_app(pods: Pods) -> None:
    image = pods.images.build("example.com/marked", extra_files={"marker-a": b"a\n"})
    uuid, _ = pods.start(str(image), "--name=marked", *sh("sleep 600"))
    out = pods.rkt.run("enter", uuid, "/bin/cat", "/marker-a").stdout
    assert out == "a\n"
    shell = subprocess.run(
        pods.rkt.argv("enter", "--app=marked", uuid),
        input="echo from-default-shell\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shell.returncode == 0 and "from-default-shell" in shell.stdout
    status = pods.rkt.run("enter", uuid, "/bin/sh", "-c", "exit 9", check=False)
    assert status.returncode == 9


def test_logs_prints_each_apps_output(pods: Pods) -> None:
    image = pods.image()
    uuid_file = pods.rkt.root / "uuid"
    proc = pods.run(
        f"--uuid-file-save={uuid_file}",
        str(image),
        "--name=one",
        *sh("echo first; echo second; echo oops >&2"),
        str(image),
        "--name=two",
        *sh("echo from-two"),
    )
    assert proc.returncode == 0, proc.stderr
    uuid = uuid_file.read_text().strip()
    one = pods.rkt.run("logs", "--app=one", uuid)
    assert one.stdout == "first\nsecond\n" and one.stderr == "oops\n"
    both = pods.rkt.run("logs", uuid)
    assert "one: first\n" in both.stdout and "two: from-two\n" in both.stdout
    tail = pods.rkt.run("logs", "--app=one", "--tail=1", uuid)
    assert tail.stdout + tail.stderr in ("second\n", "oops\n")


def test_logs_follow_until_the_pod_exits(pods: Pods) -> None:
    uuid, proc = pods.start(str(pods.image()), *sh("echo hello-follow; sleep 600"))
    follower = subprocess.Popen(
        pods.rkt.argv("logs", "--follow", uuid), stdout=subprocess.PIPE, text=True
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == "hello-follow\n"
    pods.rkt.run("stop", uuid)
    rest, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0 and rest == ""
    proc.communicate(timeout=30)


def test_export_round_trip(pods: Pods, tmp_path: Path) -> None:
    image = pods.image()
    script = "echo exported > /hello.txt; rm /bin/false; mkdir -p /made/deep"
    assert pods.run(str(image), "--name=app", *sh(script)).returncode == 0
    (uuid,) = pods.listing()
    out = tmp_path / "exported.aci"
    pods.rkt.run("export", uuid, str(out))
    exists = pods.rkt.run("export", uuid, str(out), check=False)
    assert exists.returncode != 0 and "exists" in exists.stderr
    pods.rkt.run("export", "--overwrite", uuid, str(out))
    check = "cat /hello.txt; test ! -e /bin/false && test -d /made/deep && echo whiteout-ok"
    proc = pods.run(str(out), *sh(check))
    assert proc.returncode == 0, proc.stderr
    assert "exported\nwhiteout-ok\n" in proc.stdout


def test_export_refuses_a_running_pod(pods: Pods, tmp_path: Path) -> None:
    uuid, _ = pods.start(str(pods.image()), *sh("sleep 600"))
    proc = pods.rkt.run("export", uuid, str(tmp_path / "x.aci"), check=False)
    assert proc.returncode == 254 and "only exited pods" in proc.stderr


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(entry))
    return found
