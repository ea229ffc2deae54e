"""Pods on ``default`` leave nothing behind (issue 5, acceptance 4): no veth, no pinned netns, no
IPAM lease and no iptables rule, after many run + gc cycles and after ``rkt run`` is SIGKILLed,
also while it still prepares the pod with its networks already attached (stage0/headstart.py).
Runs inside a test-made namespace standing in for the host (see test_net_pods)."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_net_pods import (
    NetRkt,
    assert_no_leftovers,
    collect,
    pod_uuids,
    run_pod,
    select_wait,
    sh,
    start_pod,
)

pytest_plugins = ["tests.integration.test_net_pods"]


def _cycles(nrkt: NetRkt, image: Path, count: int) -> None:
    rules_before = nrkt.hostnet.nat_rules()
    seen: list[str] = []
    for _ in range(count):
        run_pod(nrkt, "--net=default", str(image))
        seen += pod_uuids(nrkt)
        collect(nrkt)
        assert not pod_uuids(nrkt)
    assert_no_leftovers(nrkt, seen)
    assert nrkt.hostnet.links() == ["lo"]
    assert _rules(nrkt.hostnet.nat_rules()) == _rules(rules_before)


def _rules(dump: str) -> list[str]:
    return [line for line in dump.splitlines() if line.startswith(("-A", ":CNI", ":RKT"))]


def test_run_gc_cycles_leave_nothing(nrkt: NetRkt, net_images: dict[str, Path]) -> None:
    _cycles(nrkt, net_images["bb"], 5)


@pytest.mark.slow
def test_200_run_gc_cycles_leave_nothing(nrkt: NetRkt, net_images: dict[str, Path]) -> None:
    _cycles(nrkt, net_images["bb"], 200)


@pytest.mark.parametrize("ports", [(), ("--port=http:18090",)])
def test_sigkilled_run_is_cleaned_by_gc(
    nrkt: NetRkt, net_images: dict[str, Path], ports: tuple[str, ...]
) -> None:
    proc, pod = start_pod(nrkt, *ports, str(net_images["httpd"]))
    assert pod in Path(f"/run/netns/rkt-{pod}").name
    os.kill(proc.pid, signal.SIGKILL)  # rkt run exec'd stage1 run: this is the pod's run process
    proc.wait(timeout=30)
    proc.communicate()
    lock_free = False
    for _ in range(200):  # the init dies by PDEATHSIG; gc skips a pod whose lock is still held
        collect(nrkt)
        if not pod_uuids(nrkt):
            lock_free = True
            break
    assert lock_free
    assert_no_leftovers(nrkt, [pod])
    assert not os.path.exists(f"/run/netns/rkt-{pod}")
    assert "CNI-DN" not in nrkt.hostnet.nat_rules() and "RKT-" not in nrkt.hostnet.nat_rules()


def test_run_of_a_missing_image_undoes_its_early_networks_at_once(
    nrkt: NetRkt, net_images: dict[str, Path], tmp_path: Path
) -> None:
    # the networks start before the image is looked for (stage0/headstart.py)
    run_pod(nrkt, "--net=none", str(net_images["bb"]))  # the stage1 and an image in the store
    collect(nrkt)
    missing = tmp_path / "missing.aci"
    proc = run_pod(nrkt, "--net=default", str(missing), check=False)
    assert proc.returncode == 254
    assert proc.stderr.strip().splitlines() == [f'rkt: image "{missing}": no such file']
    pods = pod_uuids(nrkt)
    assert len(pods) == 1 and (nrkt.dir / "pods" / "garbage" / pods[0]).is_dir()
    assert_no_leftovers(nrkt, pods)  # before gc: stage0 undid them itself
    assert not os.path.exists(f"/run/netns/rkt-{pods[0]}")
    assert "CNI-" not in nrkt.hostnet.nat_rules() and "RKT-" not in nrkt.hostnet.nat_rules()
    collect(nrkt)
    assert not pod_uuids(nrkt)


def test_run_failing_after_the_pod_is_prepared_undoes_its_early_networks(
    nrkt: NetRkt, net_images: dict[str, Path], tmp_path: Path
) -> None:
    # --uuid-file-save fails once the pod is prepared: its directory is a read-only mount
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(readonly)], check=True
    )
    save = readonly / "uuid"
    try:
        proc = run_pod(
            nrkt, "--net=default", f"--uuid-file-save={save}", str(net_images["bb"]), check=False
        )
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
    assert proc.returncode == 254, proc.stderr
    assert str(save) in proc.stderr and "Read-only file system" in proc.stderr
    pods = pod_uuids(nrkt)
    assert len(pods) == 1
    assert_no_leftovers(nrkt, pods)  # before gc
    assert not os.path.exists(f"/run/netns/rkt-{pods[0]}")


def _signalled_while_preparing(
    nrkt: NetRkt, image: Path, signum: int
) -> tuple[str, subprocess.Popen[bytes]]:
    """``rkt run --net=default IMAGE`` held at its next write to the store's index (this test
    holds the index's write lock) once its networks are up, then ``signum`` sent to all its
    processes (as a terminal's ^C or a service manager's stop does). Returns the pod and the
    ended process."""
    index = sqlite3.connect(nrkt.dir / "cas" / "db" / "index.sqlite", isolation_level=None)
    index.execute("BEGIN IMMEDIATE")  # rkt waits for it (busy timeout: 60 s)
    proc = subprocess.Popen(
        nrkt.argv("run", "--net=default", "--insecure-options=image", str(image)),
        env=nrkt.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # ^C as a terminal delivers it, whatever this suite was started from (a background job
        # of a non-interactive shell ignores SIGINT, exec keeps that, and so would rkt)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        attached: list[Path] = []
        while not attached and time.monotonic() < deadline:
            attached = list((nrkt.dir / "pods" / "prepare").glob("*/net-info.json"))
            if proc.poll() is not None:
                raise AssertionError(f"rkt run exited early: {proc.communicate()}")
            if not attached:
                select_wait(proc)  # a bounded poll of the pod's state, re-checked
        assert attached, "the pod's networks were never attached"
        # the attacher stays until the run process takes the networks over
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        attachers = [os.pidfd_open(int(pid)) for pid in children]
        assert len(attachers) == 1, children
        os.killpg(proc.pid, signum)  # stage0 and its attacher
        try:  # until the attacher has done what it does on that signal
            assert select.select(attachers, [], [], 60)[0], "the attacher did not end"
        finally:
            os.close(attachers[0])
    finally:
        # ^C: stage0 itself is still waiting in sqlite's busy loop, which no signal ends
        index.execute("ROLLBACK")
        index.close()
    proc.communicate(timeout=60)
    return attached[0].parent.name, proc


def _killed_while_preparing(nrkt: NetRkt, image: Path) -> str:
    """SIGKILLed while preparing: the pod is left in ``prepare``, its networks attached."""
    pod, _ = _signalled_while_preparing(nrkt, image, signal.SIGKILL)
    assert os.path.exists(f"/run/netns/rkt-{pod}")  # really left attached: gc has work to do
    return pod


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_interrupted_while_preparing_undoes_its_networks(
    nrkt: NetRkt, net_images: dict[str, Path], signum: int
) -> None:
    run_pod(nrkt, "--net=none", *sh(net_images["httpd"], "true"))  # the stage1 is in the store
    collect(nrkt)
    pod, proc = _signalled_while_preparing(nrkt, net_images["bb"], signum)
    assert proc.returncode != 0
    # nothing left attached, before any gc: the attacher, which stays until the run process
    # has taken the networks over, undid them (and stage0, for ^C, had nothing left to undo)
    assert not os.path.exists(f"/run/netns/rkt-{pod}")
    assert_no_leftovers(nrkt, [pod])
    assert all(not name.startswith("veth") for name in nrkt.hostnet.links())
    collect(nrkt)
    assert not pod_uuids(nrkt)


def _gc_undoes(nrkt: NetRkt, pod: str) -> None:
    rules = nrkt.hostnet.nat_rules()
    assert pod in rules  # the masquerade rule of the attached network
    collect(nrkt)
    assert not pod_uuids(nrkt)
    assert_no_leftovers(nrkt, [pod])
    assert not os.path.exists(f"/run/netns/rkt-{pod}")
    assert all(not name.startswith("veth") for name in nrkt.hostnet.links())


def test_run_killed_while_preparing_is_cleaned_by_gc(
    nrkt: NetRkt, net_images: dict[str, Path]
) -> None:
    run_pod(nrkt, "--net=none", *sh(net_images["httpd"], "true"))  # the stage1 is in the store
    collect(nrkt)
    pod = _killed_while_preparing(nrkt, net_images["bb"])  # held importing the new image
    assert (nrkt.dir / "pods" / "prepare" / pod / "stage1" / "manifest").is_file()
    _gc_undoes(nrkt, pod)  # through the pod's stage1 gc entrypoint


def test_run_killed_before_its_stage1_was_laid_out_is_cleaned_by_gc(
    nrkt: NetRkt, net_images: dict[str, Path]
) -> None:
    nrkt.run("--insecure-options=image", "fetch", str(net_images["httpd"]))  # no stage1 yet
    pod = _killed_while_preparing(nrkt, net_images["bb"])  # held importing the stage1
    assert not (nrkt.dir / "pods" / "prepare" / pod / "stage1" / "manifest").exists()
    _gc_undoes(nrkt, pod)  # through this installation's own gc (headstart.undo_orphaned)
