"""``rkt run`` starts a pod's CNI networks before preparing it (stage0/headstart.py): when it may,
what it hands the stage1, how the run entrypoint adopts it, and how every way out undoes it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rkt import __version__, abi
from rkt.paths import Path as RktPath
from rkt.pod.pod import Pod, PodLock, create_embryo, ensure_pods_root
from rkt.stage0 import headstart, inprocess, pods
from rkt.stage0.layout import link_tree
from rkt.stage0.request import AppRequest, PodRequest
from rkt.stage0.run import RunOptions, start_run
from rkt.stage0.stage1_image import Stage1Choice, builtin_flavor_chosen
from rkt.stage1.common.args import parse_run
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.ns import network

UUID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


@pytest.fixture(autouse=True)
def _single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``rkt`` is: other tests of the session may leave threads (a registry, a server)
    behind, and a process with threads neither runs nor forks an entrypoint in-process."""
    monkeypatch.setattr(inprocess, "_other_threads", lambda: False)


DEFAULT = "coreos.com/rkt/stage1-default"


def _request(**kw: object) -> PodRequest:
    return PodRequest(apps=(AppRequest("example.com/app"),), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("choice", "configured", "flavor"),
    [
        (Stage1Choice(), {}, "default"),
        (Stage1Choice(name=DEFAULT), {}, "default"),
        (Stage1Choice(name="coreos.com/rkt/stage1-fly"), {}, None),  # not a built-in one
        (Stage1Choice(name="example.com/my-stage1"), {}, None),
        (Stage1Choice(path=RktPath("/s1.aci")), {}, None),
        (Stage1Choice(hash="sha512-abc"), {}, None),
        (Stage1Choice(), {"name": DEFAULT, "version": __version__}, "default"),
        # another version of the name is an image like any other (the store, then discovery)
        (Stage1Choice(), {"name": DEFAULT, "version": "1.30.0"}, None),
        (Stage1Choice(name=f"{DEFAULT}:{__version__}"), {}, "default"),
        (Stage1Choice(name=f"{DEFAULT},version={__version__},os=linux"), {}, "default"),
        (Stage1Choice(name=f"{DEFAULT}:9.9.9"), {}, None),
        (Stage1Choice(name=f"{DEFAULT},os=linux,version=9.9.9"), {}, None),
        (Stage1Choice(), {"name": "example.com/my-stage1"}, None),
        (Stage1Choice(url="https://x/s1.aci", name=DEFAULT), {}, None),  # refused later
    ],
)
def test_the_builtin_flavor_is_known_without_the_store(
    choice: Stage1Choice, configured: dict[str, str], flavor: str | None
) -> None:
    assert builtin_flavor_chosen(choice, configured) == flavor


@pytest.mark.parametrize(
    ("options", "request_kw", "config", "eligible"),
    [
        (RunOptions(net="default"), {}, {}, True),
        (RunOptions(net="default-restricted,mynet:IP=10.1.2.3"), {}, {}, True),
        (RunOptions(net="none"), {}, {}, False),
        (RunOptions(net="host"), {}, {}, False),
        (RunOptions(net="default", ports=("http:8080",)), {}, {}, False),
        (RunOptions(net="default"), {"pod_manifest": RktPath("/pm.json")}, {}, False),
        (RunOptions(net="default"), {"stage1": Stage1Choice(name="example.com/s1")}, {}, False),
        (RunOptions(net="default"), {}, {"name": "coreos.com/rkt/stage1-fly"}, False),
    ],
)
def test_networks_start_early_only_for_the_builtin_default_flavor_in_process(
    options: RunOptions, request_kw: dict[str, object], config: dict[str, str], eligible: bool
) -> None:
    head = headstart.HeadStart(options)
    head.decide(_request(**request_kw), config)
    assert head.eligible is eligible


def test_no_early_start_when_the_stage1_will_be_execd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(inprocess.FORCE_EXEC_ENV, "1")
    head = headstart.HeadStart(RunOptions(net="default"))
    head.decide(_request(), {})
    assert not head.eligible


def test_an_ineligible_run_just_gets_its_pod(tmp_path: Path) -> None:
    head = headstart.HeadStart(RunOptions(net="none"))
    head.decide(_request(), {})
    pod, lock = head.create_pod(RktPath(tmp_path))
    assert pod.phase == "prepare" and pod.path.is_dir() and pod.is_locked()
    assert head.network is None and head.fds() == ()
    head.abort()  # nothing to undo
    head.abandon(pod, lock)
    assert pod.phase == "garbage" and not pod.is_locked()


class FakeNetwork:
    def __init__(self, pod: PodDir) -> None:
        self.pod = pod
        self.aborted_at: RktPath | None = None

    def fds(self) -> tuple[int, ...]:
        return (7, 8)

    def abort(self) -> None:
        self.aborted_at = self.pod.path


def test_the_early_start_gets_the_run_entrypoints_arguments_and_is_undone_where_the_pod_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[RktPath, object]] = []

    def fake_head_start(pod_path: RktPath, args: object, pin_helper: str) -> FakeNetwork:
        assert pin_helper.endswith("/stage1/native/bin/pod-init")  # the built-in flavor's
        started.append((pod_path, args))
        net = FakeNetwork(PodDir(pod_path, args.uuid))  # type: ignore[attr-defined]
        network._head_started.append((network._head_key(args), net))  # type: ignore[arg-type]
        return net

    monkeypatch.setattr(network, "head_start", fake_head_start)
    options = RunOptions(net="default", hostname="web", dns=("10.0.0.1",), local_config="/lc")
    head = headstart.HeadStart(options)
    head.decide(_request(), {})
    pod, lock = head.create_pod(RktPath(tmp_path))
    ((pod_path, args),) = started
    assert pod_path == pod.path
    assert args == parse_run([*options.stage1_flags(abi.INTERFACE_VERSION), pod.uuid])
    assert head.fds() == (7, 8)
    net: Any = head.network
    assert isinstance(net, FakeNetwork)
    pod.move_to("prepared")  # the pod moves on; the undo follows it
    head.abort()
    assert net.aborted_at == pod.path and not network._head_started
    assert head.network is None
    lock.close()


def test_the_run_entrypoint_adopts_only_a_network_started_for_its_own_arguments(
    tmp_path: Path,
) -> None:
    args = parse_run(["--net=default", UUID])
    pod = PodDir(RktPath(tmp_path), UUID)
    net: Any = FakeNetwork(PodDir(RktPath("/elsewhere"), UUID))
    network._head_started.append((network._head_key(args), net))
    # --private-users is added by stage0 only when it starts the run: still the same networks
    adopted: Any = network._adopt_head_start(pod, args._replace(private_users=(65536, 65536)))
    assert adopted is net and net.pod is pod and not network._head_started

    net = FakeNetwork(PodDir(RktPath("/elsewhere"), UUID))
    network._head_started.append((network._head_key(args), net))
    assert network._adopt_head_start(pod, args._replace(net=("default", "other"))) is None
    assert net.aborted_at == pod.path and not network._head_started  # undone, where it is now


@pytest.mark.parametrize(
    "argv",
    [
        ["--net=none"],
        ["--net=host"],
        ["--net=default", "--port=http:8080"],  # ports need the pod manifest
        ["--net=nosuchnet"],  # refused by the run entrypoint itself, as without a head start
        ["--net=default", "--dns=not-an-address"],
    ],
)
def test_nothing_starts_early_that_the_run_entrypoint_would_refuse_or_needs_more_for(
    tmp_path: Path, argv: list[str]
) -> None:
    args = parse_run([*argv, f"--local-config={tmp_path}", UUID])
    assert network.head_start(RktPath(tmp_path), args, "/no/helper") is None
    assert list(tmp_path.iterdir()) == [] and not network._head_started


def test_the_stage1_tree_is_merged_into_the_early_journals_directory(tmp_path: Path) -> None:
    source = tmp_path / "stage1"
    (source / "rkt").mkdir(parents=True)
    (source / "run").write_text("#!/bin/sh\n")
    (source / "rkt" / "README").write_text("x")
    target = tmp_path / "pod" / "stage1" / "rootfs"
    (target / "rkt" / "private").mkdir(parents=True)
    (target / "rkt" / "private" / "net.json").write_text("{}")
    link_tree(str(source), str(target))
    assert (target / "run").read_text() == "#!/bin/sh\n"
    assert (target / "rkt" / "README").read_text() == "x"
    assert (target / "rkt" / "private" / "net.json").read_text() == "{}"


def _stage1_manifest(pod_path: RktPath) -> None:
    (pod_path / "stage1").mkdir(parents=True, exist_ok=True)
    annotations = [
        {"name": abi.ANN_INTERFACE_VERSION, "value": str(abi.INTERFACE_VERSION)},
        {"name": abi.ANN_RUN, "value": "/run"},
    ]
    (pod_path / abi.STAGE1_MANIFEST).write_text(json.dumps({"annotations": annotations}))


def test_run_keeps_the_lock_it_created_the_pod_with(tmp_path: Path) -> None:
    pod, lock = create_embryo(ensure_pods_root(RktPath(tmp_path)))
    _stage1_manifest(pod.path)
    pod.move_to("prepared")
    held, argv, env = start_run(pod, RunOptions(net="none"), lock)
    assert held is lock and pod.phase == "run"
    assert env[abi.ENV_LOCK_FD] == str(lock.fd) and argv[-1] == pod.uuid
    other = PodLock(pod.path)
    assert not other.try_exclusive()  # the lock was never let go between prepare and run
    other.close()
    lock.close()


def test_run_refusing_a_pod_releases_the_lock_it_was_given(tmp_path: Path) -> None:
    pod, lock = create_embryo(ensure_pods_root(RktPath(tmp_path)))
    with pytest.raises(Exception, match="not prepared"):
        start_run(pod, RunOptions(net="none"), lock)
    assert lock.fd == -1 and not pod.is_locked()


def _garbage_pod(tmp_path: Path) -> Pod:
    pod, lock = create_embryo(ensure_pods_root(RktPath(tmp_path)))
    pod.move_to("garbage")
    lock.close()
    return pod


def test_gc_calls_the_stage1_gc_of_an_aborted_pod_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = _garbage_pod(tmp_path)
    _stage1_manifest(pod.path)
    called: list[str] = []

    def fake_call(p: Pod, annotation: str, args: list[str]) -> int:
        called.append(annotation)
        return 0

    monkeypatch.setattr("rkt.stage0.run.call_entrypoint", fake_call)
    pods.delete_pod(pod)
    assert called == [abi.ANN_GC] and not pod.path.exists()


def test_gc_undoes_early_networks_of_a_pod_killed_before_its_stage1_was_laid_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = _garbage_pod(tmp_path)
    journal = pod.file(headstart.EARLY_JOURNAL)
    journal.parent.mkdir(parents=True)
    journal.write_text("{}")
    seen: list[tuple[list[str], str, tuple[str, str] | None]] = []

    def fake_forked(
        argv: list[str], cwd: str, env: object, timeout: object, target: object = None
    ) -> tuple[int, str]:
        seen.append((argv, cwd, target))  # type: ignore[arg-type]
        assert os.path.isdir(cwd)
        return 0, ""

    monkeypatch.setattr(inprocess, "call_builtin_forked", fake_forked)
    pods.delete_pod(pod)
    assert seen == [(["gc", pod.uuid], str(pod.path), headstart.GC_TARGET)]
    assert not pod.path.exists()


def test_gc_undoes_an_orphan_even_when_stage1_entrypoints_are_execd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # RKT_STAGE1_EXEC=1 asks for the stage1's entrypoints to be exec'd; an orphan has none
    monkeypatch.setenv(inprocess.FORCE_EXEC_ENV, "1")
    pod = _garbage_pod(tmp_path)
    journal = pod.file(headstart.EARLY_JOURNAL)
    journal.parent.mkdir(parents=True)
    doc = {"containerID": pod.uuid, "netns": "/nonexistent", "networks": []}
    journal.write_text(json.dumps(doc))
    pods.delete_pod(pod)  # the real built-in gc, forked: nothing attached, nothing to undo
    assert not pod.path.exists()
    assert "warning" not in capfd.readouterr().err


def test_gc_of_an_orphan_from_a_threaded_process_says_it_cannot_undo_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(inprocess, "_other_threads", lambda: True)
    pod = _garbage_pod(tmp_path)
    journal = pod.file(headstart.EARLY_JOURNAL)
    journal.parent.mkdir(parents=True)
    journal.write_text("{}")
    pods.delete_pod(pod)
    assert "cannot undo its networks from a threaded process" in capfd.readouterr().err


def test_gc_warns_and_still_deletes_when_undoing_an_orphan_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    pod = _garbage_pod(tmp_path)
    journal = pod.file(headstart.EARLY_JOURNAL)
    journal.parent.mkdir(parents=True)
    journal.write_text("{}")
    monkeypatch.setattr(
        inprocess, "call_builtin_forked", lambda *a, **k: (254, "stage1: gc: ptp DEL failed\n")
    )
    pods.delete_pod(pod)
    assert "ptp DEL failed" in capfd.readouterr().err
    assert not pod.path.exists()


def test_the_run_process_releases_an_attacher_that_already_failed(tmp_path: Path) -> None:
    # the attacher writes "1" and waits for "a" on the hold pipe; one whose ADD failed is gone
    net = network.PendingNetwork(PodDir(RktPath(tmp_path), UUID))
    read_end, net._hold = os.pipe()
    os.close(read_end)
    net._release()  # no BrokenPipeError: the barrier tells the pod about the failure
    assert net._hold == -1 and net.fds() == ()
    read_end, net._hold = os.pipe()
    net._release()
    assert os.read(read_end, 1) == b"a" and os.read(read_end, 1) == b""  # then closed
    os.close(read_end)
