"""The CNI runner against fake plugins (scripts that record what they were given): chain order,
prevResult, runtimeConfig by capability, CNI_ARGS, error decoding, DEL after a partial ADD, and
the pod journal. No root, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rkt.net import cni
from rkt.net.config import Attachment, NetworkConfig, parse_network_config
from rkt.net.state import Entry, NetJournal, net_info

FAKE = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
log = os.path.join(os.path.dirname(sys.argv[0]), "calls.jsonl")
with open(log, "a") as f:
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    f.write(json.dumps({{"type": conf["type"], "env": env, "conf": conf}}) + "\\n")
if conf.get("fail") == os.environ["CNI_COMMAND"]:
    print(json.dumps({{"cniVersion": "1.0.0", "code": 7, "msg": "boom", "details": "why"}}))
    sys.exit(1)
if conf.get("crash") == os.environ["CNI_COMMAND"]:
    sys.stderr.write("panic: something\\n")
    sys.exit(2)
if os.environ["CNI_COMMAND"] == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": "1.0.0", "interfaces": [], "ips": []}}
    if conf["type"] == "fakeptp":
        prev = {{
            "cniVersion": "1.0.0",
            "interfaces": [{{"name": "veth1"}}, {{"name": "eth0", "sandbox": "/x"}}],
            "ips": [{{"address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 1}}],
            "dns": {{"nameservers": ["10.9.0.53"]}},
        }}
    print(json.dumps(prev))
"""


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    for name in ("fakeptp", "fakeportmap", "fakeother"):
        path = tmp_path / name
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
    return tmp_path


def calls(plugins: Path) -> list[dict[str, object]]:
    log = plugins / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def net(*plugins: dict[str, object]) -> NetworkConfig:
    return NetworkConfig("n1", "1.0.0", tuple(plugins))


def inv(plugins: Path, **kw: object) -> cni.Invocation:
    return cni.Invocation("pod-1", "/run/netns/x", "eth0", plugin_dirs=(str(plugins),), **kw)  # type: ignore[arg-type]


def test_add_runs_the_chain_in_order_with_prev_result(plugins: Path) -> None:
    result = cni.add_network(net({"type": "fakeptp"}, {"type": "fakeother"}), inv(plugins))
    seen = calls(plugins)
    assert [c["type"] for c in seen] == ["fakeptp", "fakeother"]
    first, second = (c["conf"] for c in seen)
    assert isinstance(first, dict) and isinstance(second, dict)
    assert "prevResult" not in first
    assert second["prevResult"]["ips"][0]["address"] == "10.9.0.5/24"
    assert first["name"] == "n1" and first["cniVersion"] == "1.0.0"
    env = seen[0]["env"]
    assert isinstance(env, dict)
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "pod-1"
    assert env["CNI_NETNS"] == "/run/netns/x" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_PATH"] == str(plugins)
    ip = cni.result_ip(result, "eth0")
    assert ip is not None and (ip.ip, ip.prefix, ip.gateway, ip.mask) == (
        "10.9.0.5",
        24,
        "10.9.0.1",
        "255.255.255.0",
    )
    assert cni.result_dns(result) == {"nameservers": ["10.9.0.53"]}


def test_runtime_config_only_for_declared_capabilities(plugins: Path) -> None:
    mappings = {"portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}]}
    cni.add_network(
        net({"type": "fakeptp"}, {"type": "fakeportmap", "capabilities": {"portMappings": True}}),
        inv(plugins, runtime_config=mappings),
    )
    ptp, portmap = (c["conf"] for c in calls(plugins))
    assert isinstance(ptp, dict) and isinstance(portmap, dict)
    assert "runtimeConfig" not in ptp
    assert portmap["runtimeConfig"] == mappings


def test_cni_args_get_ignore_unknown(plugins: Path) -> None:
    cni.add_network(net({"type": "fakeptp"}), inv(plugins, cni_args="IP=10.9.0.9"))
    env = calls(plugins)[0]["env"]
    assert isinstance(env, dict)
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;IP=10.9.0.9"


def test_plugin_error_carries_code_and_message(plugins: Path) -> None:
    with pytest.raises(cni.CniError) as info:
        cni.add_network(net({"type": "fakeptp", "fail": "ADD"}), inv(plugins))
    assert info.value.code == 7
    assert 'network "n1": plugin "fakeptp" ADD: error 7: boom (why)' in info.value.message


def test_plugin_crash_reports_stderr_tail(plugins: Path) -> None:
    with pytest.raises(cni.CniError, match="exited 2: panic: something"):
        cni.add_network(net({"type": "fakeptp", "crash": "ADD"}), inv(plugins))


def test_missing_plugin_and_bad_type(plugins: Path) -> None:
    with pytest.raises(cni.CniError, match='plugin "nosuch" not found'):
        cni.add_network(net({"type": "nosuch"}), inv(plugins))
    with pytest.raises(cni.CniError, match="not a plain name"):
        cni.find_plugin("../fakeptp", (str(plugins),))


def test_del_runs_in_reverse_with_cached_result_and_tries_every_plugin(plugins: Path) -> None:
    cached = {"cniVersion": "1.0.0", "ips": []}
    chain = net({"type": "fakeptp"}, {"type": "fakeother", "fail": "DEL"})
    with pytest.raises(cni.CniError, match="fakeother"):
        cni.del_network(chain, inv(plugins), cached)
    seen = calls(plugins)
    assert [c["type"] for c in seen] == ["fakeother", "fakeptp"]  # the failure did not stop it
    assert all(isinstance(c["conf"], dict) and c["conf"]["prevResult"] == cached for c in seen)


def test_del_without_result_has_no_prev_result(plugins: Path) -> None:
    cni.del_network(net({"type": "fakeptp"}), inv(plugins), None)
    conf = calls(plugins)[0]["conf"]
    assert isinstance(conf, dict) and "prevResult" not in conf


def test_check_skipped_when_disabled(plugins: Path) -> None:
    disabled = NetworkConfig("n1", "1.0.0", ({"type": "fakeptp"},), disable_check=True)
    cni.check_network(disabled, inv(plugins), {})
    assert calls(plugins) == []
    cni.check_network(net({"type": "fakeptp"}), inv(plugins), {"ips": []})
    assert calls(plugins)[0]["env"]["CNI_COMMAND"] == "CHECK"  # type: ignore[index]


def test_start_add_runs_the_chain_but_its_last_plugin_before_returning(plugins: Path) -> None:
    chain = net({"type": "fakeptp"}, {"type": "fakeother"})
    pending = cni.start_add(chain, inv(plugins))
    # Everything before the last plugin is done: the caller may now leave the host's namespace.
    assert [c["type"] for c in calls(plugins)][:1] == ["fakeptp"]
    result = pending.wait()
    seen = calls(plugins)
    assert [c["type"] for c in seen] == ["fakeptp", "fakeother"]
    assert seen[1]["conf"]["prevResult"]["ips"][0]["address"] == "10.9.0.5/24"  # type: ignore[index]
    assert result["ips"][0]["address"] == "10.9.0.5/24"
    with pytest.raises(cni.CniError, match="already waited"):
        pending.wait()


def test_start_add_failures(plugins: Path) -> None:
    with pytest.raises(cni.CniError, match='plugin "fakeptp" ADD: error 7'):
        cni.start_add(net({"type": "fakeptp", "fail": "ADD"}, {"type": "fakeother"}), inv(plugins))
    pending = cni.start_add(
        net({"type": "fakeptp"}, {"type": "fakeother", "fail": "ADD"}), inv(plugins)
    )
    with pytest.raises(cni.CniError, match='plugin "fakeother" ADD: error 7'):
        pending.wait()
    settled = cni.start_add(net({"type": "fakeptp", "fail": "ADD"}), inv(plugins))
    settled.settle()  # the outcome is dropped: the caller DELs next
    assert calls(plugins)[-1]["type"] == "fakeptp"


def test_journal_round_trip_and_net_info(tmp_path: Path) -> None:
    conf = parse_network_config(json.dumps({"name": "n1", "type": "ptp"}).encode(), "x")
    journal = NetJournal("pod-1", "/run/netns/rkt-pod-1")
    result = {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.1.2.3/16", "interface": 0}]}
    journal.entries.append(Entry(Attachment(conf, "eth0", "K=V"), {}, result))
    journal.entries.append(Entry(Attachment(conf, "eth1"), {}, None))  # ADD never finished
    path = tmp_path / "net.json"
    journal.save(path)
    loaded = NetJournal.load(path)
    assert loaded is not None
    assert loaded.entries[0].result == result and loaded.entries[1].result is None
    assert net_info(loaded) == [
        {
            "netName": "n1",
            "ifName": "eth0",
            "ip": "10.1.2.3",
            "mask": "255.255.0.0",
            "gateway": "",
            "args": "K=V",
        },
        {"netName": "n1", "ifName": "eth1", "ip": "", "mask": "", "gateway": "", "args": ""},
    ]
    assert NetJournal.load(tmp_path / "missing") is None
