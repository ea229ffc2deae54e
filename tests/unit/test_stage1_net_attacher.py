"""The network attacher (rkt.stage1.ns.network) follows its pod directory through renames.

A head-started attacher is forked while stage0 still lays the pod out, and stage0 renames the
pod's directory (prepare -> prepared -> run) whenever it is ready, possibly before the forked
child has run at all. The attacher must work in the directory it was forked for, not in the
path that named it then (it used to ``chdir`` to that path: ~2% of ``rkt run --net=default``
failed with "the network attacher died"). Here the plugins are faked and the rename always
happens first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rkt.stage1.common.args import parse_run
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.ns import network

UUID = "6f0c7a37-2b1f-4e3a-9d5c-1f2e3d4c5b6a"


def test_the_attacher_works_in_its_pod_directory_after_a_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rkt.net.cni
    import rkt.net.state

    prepare = tmp_path / "pods" / "prepare" / UUID
    prepared = tmp_path / "pods" / "prepared" / UUID
    prepare.mkdir(parents=True)
    prepared.parent.mkdir(parents=True)
    netns = tmp_path / "netns"

    def fake_pin(path: object, helper: str) -> None:
        netns.write_text("")

    def fake_add(net: Any, invocation: Any) -> dict[str, Any]:
        Path("added").write_text("here")  # relative: the attacher's working directory
        return {"cniVersion": "1.0.0"}

    real_fork = os.fork

    def fork_after_the_rename() -> int:
        prepare.rename(prepared)  # stage0 moved the pod on before the child ran
        return real_fork()

    monkeypatch.setattr(network, "netns_path", lambda uuid: netns)
    monkeypatch.setattr(network, "pin_netns", fake_pin)
    monkeypatch.setattr(rkt.net.cni, "add_network", fake_add)
    monkeypatch.setattr(rkt.net.state, "net_info", lambda journal: {})
    monkeypatch.setattr(network, "write_name_file_texts", lambda pod, args, results: None)
    monkeypatch.setattr(network, "_undo", lambda journal, journal_file: None)
    monkeypatch.setattr(network.os, "fork", fork_after_the_rename)
    attachment: Any = type("Attachment", (), {"network": None})()
    monkeypatch.setattr(network, "_invocation", lambda journal, entry: None)
    monkeypatch.setattr(
        rkt.net.state, "Entry", lambda att, runtime: type("E", (), {"result": None})()
    )
    monkeypatch.setattr(rkt.net.state.NetJournal, "save", lambda self, path: None)

    net = network.PendingNetwork._attach(
        PodDir(prepare, UUID), parse_run(["--net=default", UUID]), [(attachment, {})], "/x"
    )
    net._close_hold()  # not adopted: once up, the attacher undoes (faked) and exits
    try:
        assert net._wait()  # it wrote "1": up, not dead
    finally:
        net._close_netns()
    assert (prepared / "added").read_text() == "here"
