"""rkt's own IP masquerade (``rkt.net.masquerade``) against a fake ``iptables``/``iptables-restore``
pair that keeps a nat table in a file and applies each transaction atomically, as the nft
backend does: the rules, the chain name, removal of whatever is left, CHECK, error messages, and
how the CNI runner and the journal carry it. No root, no network (the real rules are exercised
by tests/integration/test_net_pods.py)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from rkt.net import cni, config, masquerade
from rkt.net.config import Attachment, NetworkConfig
from rkt.net.state import Entry, NetJournal

# argv[0] decides: iptables-restore applies stdin, iptables -t nat -S lists. Every call is
# logged; a file "fail" holding "n,m" makes the n-th and m-th restore fail (1-based), as a broken
# iptables would; a chain still jumped to cannot be deleted, as in the kernel.
FAKE = r"""#!{python}
import json, os, shlex, sys
here = os.path.dirname(sys.argv[0])
state = os.path.join(here, "nat.json")
table = json.load(open(state)) if os.path.exists(state) else {{"POSTROUTING": []}}
data = sys.stdin.read() if sys.argv[0].endswith("restore") else ""
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps({{"argv": sys.argv, "stdin": data}}) + "\n")
if sys.argv[0].endswith("restore"):
    n = sum(1 for line in open(os.path.join(here, "calls.jsonl")) if "restore" in line)
    fail = os.path.join(here, "fail")
    if os.path.exists(fail) and str(n) in open(fail).read().split(","):
        sys.stderr.write("iptables-restore: line 2 failed\n")
        sys.exit(4)
    assert sys.argv[1:] == ["-w", "--noflush"], sys.argv
    new = {{k: list(v) for k, v in table.items()}}
    for line in data.splitlines():
        if line in ("*nat", "COMMIT"):
            continue
        if line.startswith(":"):
            new[line[1:].split()[0]] = []
            continue
        words = shlex.split(line)
        op, chain, rule = words[0], words[1], words[2:]
        if chain not in new:
            sys.stderr.write(f"Chain '{{chain}}' does not exist\n")
            sys.exit(1)
        if op == "-A":
            new[chain].append(rule)
        elif op == "-D":
            if rule not in new[chain]:
                sys.stderr.write("Bad rule (does a matching rule exist in that chain?)\n")
                sys.exit(1)
            new[chain].remove(rule)
        elif op == "-F":
            new[chain] = []
        elif op == "-X":
            if any(r[-2:] == ["-j", chain] for rules in new.values() for r in rules):
                sys.stderr.write("iptables-restore: line 4 failed: Device or resource busy\n")
                sys.exit(1)
            del new[chain]
    json.dump(new, open(state, "w"))
else:
    assert sys.argv[1:] == ["-w", "-t", "nat", "-S"], sys.argv
    print("-P POSTROUTING ACCEPT")
    for chain in table:
        if chain != "POSTROUTING":
            print("-N " + chain)
    for chain, rules in table.items():
        for rule in rules:
            print(" ".join(["-A", chain] + [f'"{{w}}"' if " " in w else w for w in rule]))
"""

RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
    "ips": [{"address": "172.16.28.5/24", "gateway": "172.16.28.1", "interface": 1}],
}
POD = "1d3279c8-d88d-44f8-bbbf-d9358e84a30e"


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("iptables", "iptables-restore"):
        path = tmp_path / name
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    return tmp_path


def table(tools: Path) -> dict[str, list[str]]:
    """The fake's nat table: each rule as ``iptables -S`` prints it, without ``-A CHAIN``."""
    state = tools / "nat.json"
    raw = json.loads(state.read_text()) if state.exists() else {"POSTROUTING": []}
    quote = lambda w: f'"{w}"' if " " in w else w  # noqa: E731
    return {chain: [" ".join(map(quote, rule)) for rule in rules] for chain, rules in raw.items()}


def set_table(tools: Path, rules: dict[str, list[str]]) -> None:
    split = {
        chain: [shlex.split(rule) for rule in chain_rules] for chain, chain_rules in rules.items()
    }
    (tools / "nat.json").write_text(json.dumps(split))


def calls(tools: Path) -> list[dict[str, object]]:
    log = tools / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def restores(tools: Path) -> int:
    return sum(1 for c in calls(tools) if str(c["argv"][0]).endswith("restore"))  # type: ignore[index]


def test_chain_name_is_per_pod_and_network_and_fits_iptables() -> None:
    name = masquerade.chain_name("default", POD)
    assert name == masquerade.chain_name("default", POD)
    assert name.startswith("RKT-") and len(name) == 28 and name[4:].isalnum()
    assert name != masquerade.chain_name("default", POD[:-1] + "f")
    assert name != masquerade.chain_name("other", POD)


def test_add_installs_ptps_rules_in_one_transaction(tools: Path) -> None:
    masquerade.add_rules("default", POD, RESULT, "eth0")
    chain = masquerade.chain_name("default", POD)
    note = f'"rkt network default pod {POD}"'
    assert table(tools) == {
        "POSTROUTING": [f"-s 172.16.28.5/32 -m comment --comment {note} -j {chain}"],
        chain: [
            f"-d 172.16.28.0/24 -m comment --comment {note} -j ACCEPT",
            f"! -d 224.0.0.0/4 -m comment --comment {note} -j MASQUERADE",
        ],
    }
    assert len(calls(tools)) == restores(tools) == 1
    # run by path, found on the PATH the plugins get (posix_spawnp would search rkt's own)
    assert calls(tools)[0]["argv"][0] == str(tools / "iptables-restore")  # type: ignore[index]
    masquerade.check_rules("default", POD, RESULT, "eth0")


def test_remove_takes_one_transaction_and_leaves_nothing(tools: Path) -> None:
    masquerade.add_rules("default", POD, RESULT, "eth0")
    masquerade.remove_rules("default", POD, RESULT, "eth0")
    assert table(tools) == {"POSTROUTING": []}
    assert len(calls(tools)) == 2  # the add, the removal: no listing


def test_remove_finds_whatever_is_left(tools: Path) -> None:
    other = "2e0c4b5e-0000-4000-8000-000000000000"
    masquerade.add_rules("default", other, {**RESULT, "ips": [{"address": "172.16.28.6/24"}]}, "x")
    masquerade.add_rules("default", POD, RESULT, "eth0")
    state = table(tools)
    chain = masquerade.chain_name("default", POD)
    state["POSTROUTING"] += [r for r in state["POSTROUTING"] if r.endswith(chain)]  # twice
    set_table(tools, state)
    masquerade.remove_rules("default", POD, RESULT, "eth0")
    left = table(tools)
    assert chain not in left and not any(chain in r for r in left["POSTROUTING"])
    assert masquerade.chain_name("default", other) in left  # another pod's rules stay
    assert len(left["POSTROUTING"]) == 1


def test_remove_after_an_add_cut_short(tools: Path) -> None:
    # no result (the ADD never completed): the table is listed, and nothing there is no error
    masquerade.remove_rules("default", POD, None, "eth0")
    assert restores(tools) == 0
    # the chain made but the jump not (by hand, or by an older rkt): removed all the same
    chain = masquerade.chain_name("default", POD)
    set_table(tools, {"POSTROUTING": [], chain: ["-j MASQUERADE"]})
    masquerade.remove_rules("default", POD, RESULT, "eth0")
    assert table(tools) == {"POSTROUTING": []}


def test_check_names_a_missing_rule(tools: Path) -> None:
    masquerade.add_rules("default", POD, RESULT, "eth0")
    state = table(tools)
    state["POSTROUTING"] = []
    set_table(tools, state)
    with pytest.raises(
        cni.CniError,
        match=r'network "default": IP masquerade: rule missing: '
        r"-A POSTROUTING -s 172\.16\.28\.5/32",
    ):
        masquerade.check_rules("default", POD, RESULT, "eth0")


def test_failures_are_one_line_naming_the_network(
    tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tools / "fail").write_text("1")
    with pytest.raises(cni.CniError) as info:
        masquerade.add_rules("default", POD, RESULT, "eth0")
    assert info.value.message == (
        'network "default": IP masquerade: adding rules: iptables-restore: line 2 failed'
    )
    with pytest.raises(cni.CniError, match="the result has no IPv4 address"):
        masquerade.add_rules("default", POD, {"ips": [{"address": "fd00::5/64"}]}, "eth0")
    with pytest.raises(cni.CniError, match='container ID "a b" is not a plain name'):
        masquerade.add_rules("default", "a b", RESULT, "eth0")
    monkeypatch.setenv("PATH", str(tools / "nowhere"))
    with pytest.raises(cni.CniError, match=r"IP masquerade: listing rules: .*cannot run"):
        masquerade.remove_rules("default", POD, None, "eth0")


# --- the CNI runner and the journal ----------------------------------------------------------

PLUGIN = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
with open(os.path.join(os.path.dirname(sys.argv[0]), "plugin.jsonl"), "a") as f:
    f.write(json.dumps([os.environ["CNI_COMMAND"], conf.get("ipMasq")]) + "\\n")
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps({result}))
"""


@pytest.fixture
def plugin(tools: Path) -> Path:
    path = tools / "fakeptp"
    path.write_text(PLUGIN.format(python=sys.executable, result=repr(RESULT)))
    path.chmod(0o755)
    return tools


def plugin_calls(tools: Path) -> list[list[object]]:
    return [json.loads(line) for line in (tools / "plugin.jsonl").read_text().splitlines()]


def masq_net() -> NetworkConfig:
    return NetworkConfig(
        "default", "1.0.0", ({"type": "fakeptp", "ipMasq": False},), masquerade=True
    )


def invocation(tools: Path) -> cni.Invocation:
    return cni.Invocation(POD, "/run/netns/x", "eth0", plugin_dirs=(str(tools),))


def test_cni_adds_the_rules_after_the_chain_and_removes_them_before_its_del(plugin: Path) -> None:
    result = cni.add_network(masq_net(), invocation(plugin))
    chain = masquerade.chain_name("default", POD)
    assert chain in table(plugin)
    cni.check_network(masq_net(), invocation(plugin), result)
    cni.del_network(masq_net(), invocation(plugin), result)
    assert table(plugin) == {"POSTROUTING": []}
    assert plugin_calls(plugin) == [["ADD", False], ["CHECK", False], ["DEL", False]]


def test_cni_del_still_runs_the_plugins_when_the_rules_cannot_go(plugin: Path) -> None:
    result = cni.add_network(masq_net(), invocation(plugin))
    (plugin / "fail").write_text("2,3")  # the exact removal, then the one after listing
    with pytest.raises(cni.CniError, match="IP masquerade: removing rules"):
        cni.del_network(masq_net(), invocation(plugin), result)
    assert plugin_calls(plugin)[-1] == ["DEL", False]


def test_journal_keeps_rkts_masquerade(tmp_path: Path) -> None:
    journal = NetJournal(POD, "/run/netns/rkt-x")
    builtin = config.builtin_networks()["default"]
    journal.entries.append(Entry(Attachment(builtin, "eth0"), {}, RESULT))
    path = tmp_path / "net.json"
    journal.save(path)
    loaded = NetJournal.load(path)
    assert loaded is not None
    assert loaded.entries[0].attachment.network.masquerade
    # a journal written before rkt masqueraded itself: ptp's ipMasq, undone by ptp's DEL
    doc = json.loads(path.read_bytes())
    del doc["networks"][0]["masquerade"]
    path.write_text(json.dumps(doc))
    old = NetJournal.load(path)
    assert old is not None and not old.entries[0].attachment.network.masquerade


def test_builtin_default_masquerades_through_rkt_not_ptp(tmp_path: Path) -> None:
    default = config.builtin_networks()["default"]
    assert default.masquerade and default.ip_masq
    assert default.plugins[0]["ipMasq"] is False
    assert not config.builtin_networks()["default-restricted"].ip_masq
    (tmp_path / "net.d").mkdir()
    conf = {"name": "default", "type": "ptp", "ipMasq": True}
    (tmp_path / "net.d" / "default.conf").write_text(json.dumps(conf))
    user = config.load_user_networks(tmp_path)["default"]
    assert not user.masquerade and user.ip_masq  # a user's network is passed as written
    assert default.with_plugin({"type": "portmap"}).masquerade
