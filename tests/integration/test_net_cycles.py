"""Pods on ``default`` leave nothing behind (issue 5, acceptance 4): no veth, no pinned netns, no
IPAM lease and no iptables rule, after many run + gc cycles and after ``rkt run`` is SIGKILLed.
Runs inside a test-made namespace standing in for the host (see test_net_pods)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.test_net_pods import (
    NetRkt,
    assert_no_leftovers,
    collect,
    pod_uuids,
    run_pod,
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
    return [line for line in dump.splitlines() if line.startswith(("-A", ":CNI"))]


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
    assert "CNI-DN" not in nrkt.hostnet.nat_rules()
