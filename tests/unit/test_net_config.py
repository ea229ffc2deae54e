"""Network configs, the --net grammar, port and DNS flags: pure functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rkt.errors import ConfigError, UsageError
from rkt.net import config, dns, ports


def test_builtin_networks_are_rkts() -> None:
    nets = config.builtin_networks()
    default, restricted = nets["default"], nets["default-restricted"]
    assert default.plugins[0]["type"] == "ptp" and default.ip_masq
    assert default.plugins[0]["ipam"]["ranges"] == [[{"subnet": "172.16.28.0/24"}]]
    assert default.plugins[0]["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert not restricted.ip_masq and "routes" not in restricted.plugins[0]["ipam"]
    assert restricted.plugins[0]["ipam"]["ranges"] == [[{"subnet": "172.31.0.0/16"}]]


def test_parse_net_flag() -> None:
    assert config.parse_net_flag("") == (config.NetRequest("default"),)
    reqs = config.parse_net_flag("default,br:IP=10.0.0.5;K=V")
    assert reqs[1].name == "br" and reqs[1].cni_args == "IP=10.0.0.5;K=V"
    assert config.net_mode(config.parse_net_flag("host")) == "host"
    assert config.net_mode(config.parse_net_flag("none")) == "none"
    assert config.net_mode(reqs) == "cni"
    for bad in ("host,default", "a:K", "a,a", "none:K=V", "bad name"):
        with pytest.raises(UsageError):
            config.parse_net_flag(bad)


def write(dir_: Path, name: str, doc: object) -> None:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / name).write_text(json.dumps(doc))


def test_user_networks_lexical_order_first_wins_and_override_default(tmp_path: Path) -> None:
    net_d = tmp_path / "net.d"
    write(net_d, "20-b.conf", {"name": "b", "type": "bridge"})
    write(
        net_d,
        "10-a.conflist",
        {"name": "a", "cniVersion": "1.0.0", "plugins": [{"type": "ptp"}, {"type": "tuning"}]},
    )
    write(net_d, "30-dup.conf", {"name": "a", "type": "macvlan"})
    write(net_d, "40-default.conf", {"name": "default", "type": "ptp", "ipMasq": True})
    (net_d / "README").write_text("ignored")
    nets = config.load_user_networks(tmp_path)
    assert list(nets) == ["a", "b", "default"]
    assert [p["type"] for p in nets["a"].plugins] == ["ptp", "tuning"]
    selected = config.select_networks(config.parse_net_flag("default"), nets)
    assert [(a.network.source, a.ifname) for a in selected] == [
        (str(net_d / "40-default.conf"), "eth0")
    ]
    assert config.load_user_networks(tmp_path / "nowhere") == {}


def test_select_adds_default_restricted_without_default() -> None:
    user = {"b": config.NetworkConfig("b", "1.0.0", ({"type": "bridge"},))}
    got = config.select_networks(config.parse_net_flag("b:IP=1.2.3.4"), user)
    assert [(a.network.name, a.ifname, a.cni_args) for a in got] == [
        ("b", "eth0", "IP=1.2.3.4"),
        ("default-restricted", "eth1", ""),
    ]
    assert [a.network.name for a in config.select_networks(config.parse_net_flag("all"), user)] == [
        "b",
        "default-restricted",
    ]
    with pytest.raises(ConfigError, match='network "nope" not found'):
        config.select_networks(config.parse_net_flag("nope"), user)


def test_bad_configs_are_config_errors() -> None:
    for doc in (
        b"{",
        b"[]",
        b'{"name": "host", "type": "ptp"}',
        b'{"name": "x"}',
        b'{"name": "x", "plugins": []}',
    ):
        with pytest.raises(ConfigError):
            config.parse_network_config(doc, "f")


def test_forwarding_network_prefers_ip_masq_then_last_non_restricted() -> None:
    builtin = config.builtin_networks()
    plain = config.NetworkConfig("b", "1.0.0", ({"type": "bridge"},))
    atts = [
        config.Attachment(plain, "eth0"),
        config.Attachment(builtin["default-restricted"], "eth1"),
    ]
    assert config.forwarding_network(atts) == 0
    atts.append(config.Attachment(builtin["default"], "eth2"))
    assert config.forwarding_network(atts) == 2
    assert config.forwarding_network([]) is None


def test_ports() -> None:
    assert ports.parse_port_flag("http:8080") == ports.PortRequest("http", 8080)
    assert ports.parse_port_flag("http:127.0.0.1:8080").host_ip == "127.0.0.1"
    for bad in ("http", "http:0", "http:x:80", "HTTP:80", "http:1.2.3.4:99999"):
        with pytest.raises(UsageError):
            ports.parse_port_flag(bad)
    maps = ports.resolve_ports([ports.PortRequest("http", 8080)], [("http", "tcp", 80, 2)])
    assert [m.to_json() for m in maps] == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8081, "containerPort": 81, "protocol": "tcp"},
    ]
    with pytest.raises(ConfigError, match='port "dns"'):
        ports.resolve_ports([ports.PortRequest("dns", 53)], [])
    net = config.builtin_networks()["default"]
    with_pm = ports.with_portmap(net)
    assert with_pm.plugins[-1]["type"] == "portmap" and ports.with_portmap(with_pm) == with_pm


def test_dns_flags_and_files() -> None:
    opts = dns.parse_dns_options(
        ["8.8.8.8,1.1.1.1"], ["a.com"], ["ndots:1"], "pod.local", ["10.0.0.1=db", "10.0.0.1=db2,db"]
    )
    assert opts.mode == "ip"
    resolv = dns.pod_resolv_conf(opts, [{"nameservers": ["9.9.9.9"]}])
    assert resolv is not None
    assert (
        "domain pod.local\nsearch a.com\nnameserver 8.8.8.8\nnameserver 1.1.1.1\noptions ndots:1"
        in resolv
    )
    assert opts.hosts_entries == (("10.0.0.1", ("db", "db2")),)
    hosts = dns.pod_hosts(opts, "web", "172.16.28.2", image_has_hosts=True)
    assert hosts is not None and "172.16.28.2\tweb" in hosts and "10.0.0.1\tdb db2" in hosts
    # CNI's DNS when no --dns; --dns=none ignores it; the image's hosts stays without entries
    plain = dns.parse_dns_options([])
    cni_resolv = dns.pod_resolv_conf(plain, [{}, {"nameservers": ["9.9.9.9"], "search": ["s"]}])
    assert (
        cni_resolv is not None and "nameserver 9.9.9.9" in cni_resolv and "search s" in cni_resolv
    )
    assert (
        dns.pod_resolv_conf(dns.parse_dns_options(["none"]), [{"nameservers": ["9.9.9.9"]}]) is None
    )
    assert dns.pod_hosts(plain, "web", None, image_has_hosts=True) is None
    fallback = dns.pod_hosts(plain, "web", None, image_has_hosts=False)
    assert fallback is not None and "127.0.0.1\tweb" in fallback and "localhost" in fallback
    assert dns.parse_dns_options([], hosts_entries=["host"]).hosts_from_host
    for args in (
        (["host", "1.1.1.1"],),
        (["nope"],),
        ([], [], [], "bad domain!"),
        ([], [], [], "", ["x=y"]),
    ):
        with pytest.raises(UsageError):
            dns.parse_dns_options(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (([], ["a.com"]), "--dns-search"),
        ((["host"], [], ["ndots:1"]), "--dns-opt"),
        ((["none"], [], [], "pod.local"), "--dns-domain"),
    ],
)
def test_resolv_conf_flags_without_dns_ip_are_refused(args: tuple[object, ...], flag: str) -> None:
    """They only go into a resolv.conf rkt writes (--dns=IP): not ignored without one."""
    with pytest.raises(UsageError, match=f"^{flag} needs --dns=IP"):
        dns.parse_dns_options(*args)  # type: ignore[arg-type]
