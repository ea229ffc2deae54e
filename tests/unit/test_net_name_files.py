"""resolv.conf and /etc/hosts in the app: which file is bound where, and in which order relative
to the volumes (docs/networking.md "DNS and /etc/hosts"; rkt: CLI > CNI > volume > image for
resolv.conf, CLI > volume > image > fallback for hosts)."""

from __future__ import annotations

import json
from typing import Any

from rkt.host.flags import MS_BIND, MS_RDONLY, MS_REMOUNT
from rkt.net import dns
from rkt.stage1.common.appspec import AppSpec, NameFile, VolumeMount
from rkt.stage1.ns.launch import FsOp, plan_filesystem
from rkt.stage1.ns.network import HOST_HOSTS, HOST_RESOLV_CONF, plan_name_files

FILES = "/pod/stage1/rootfs/rkt/private/name-files"


def _spec(**kw: object) -> AppSpec:
    base: dict[str, object] = dict(
        name="web",
        exec=("/bin/web",),
        env=(),
        uid=0,
        gid=0,
        supplementary_gids=(),
        working_dir="/",
        capabilities=None,
        no_new_privs=False,
        read_only_rootfs=False,
        lower_rootfs="/tree",
    )
    base.update(kw)
    return AppSpec(**base)  # type: ignore[arg-type]


def _plan(
    *dns_flags: str, hosts: tuple[str, ...] = (), cni: list[dict[str, Any]] | None = None
) -> list[tuple[NameFile, str | None, bool]]:
    opts = dns.parse_dns_options(dns_flags, hosts_entries=hosts)
    return plan_name_files(opts, list(cni or []), "web", "10.0.0.2", FILES)


def _index(ops: list[FsOp], target: str, source: str | None) -> int:
    return next(i for i, op in enumerate(ops) if op.target == target and op.source == source)


def test_host_mode_binds_the_host_files_read_only_over_the_volumes() -> None:
    plan = _plan("host", hosts=("host",))
    assert [(m, text, fallback) for m, text, fallback in plan] == [
        (NameFile(HOST_RESOLV_CONF, "/etc/resolv.conf", True, True), None, False),
        (NameFile(HOST_HOSTS, "/etc/hosts", True, True), None, False),
    ]


def test_flags_generate_files_bound_over_the_volumes() -> None:
    plan = _plan("10.1.1.1", hosts=("10.2.2.2=db",))
    (resolv, resolv_text, _), (hosts, hosts_text, fallback) = plan
    assert resolv == NameFile(f"{FILES}/resolv.conf", "/etc/resolv.conf", False, True)
    assert resolv_text is not None and "nameserver 10.1.1.1" in resolv_text
    assert hosts == NameFile(f"{FILES}/hosts", "/etc/hosts", False, True)
    assert hosts_text is not None and "10.2.2.2\tdb" in hosts_text and not fallback


def test_cni_dns_beats_a_volume_and_none_or_nothing_keeps_the_image_file() -> None:
    cni: list[dict[str, Any]] = [{"nameservers": ["9.9.9.9"]}]
    (resolv, text, _), _hosts = _plan(cni=cni)
    assert resolv.over_volumes and text is not None and "9.9.9.9" in text
    for plan in (_plan("none", cni=cni), _plan()):
        assert [m.target for m, _, _ in plan] == ["/etc/hosts"]


def test_fallback_hosts_goes_under_the_volumes_only_for_images_without_one() -> None:
    ((hosts, text, fallback),) = _plan()
    assert fallback and not hosts.over_volumes and not hosts.read_only
    assert hosts.source == f"{FILES}/hosts-fallback"
    assert text is not None and "10.0.0.2\tweb" in text


def test_plan_orders_fallback_before_volumes_and_flags_after_them() -> None:
    vol = VolumeMount("/host/etc-hosts", "/etc/hosts", read_only=True, recursive=False)
    resolv_vol = VolumeMount("/host/resolv", "/etc/resolv.conf", read_only=False, recursive=False)
    spec = _spec(
        mounts=(vol, resolv_vol),
        read_only_rootfs=True,
        name_files=(
            NameFile("/gen/resolv.conf", "/etc/resolv.conf", False, True),
            NameFile("/gen/hosts-fallback", "/etc/hosts", False, False),
            NameFile("/etc/hosts", "/etc/hosts", True, True),
        ),
    )
    ops = plan_filesystem(spec, is_file=lambda p: True)
    fallback = _index(ops, "/etc/hosts", "/gen/hosts-fallback")
    volume = _index(ops, "/etc/hosts", "/host/etc-hosts")
    resolv_volume = _index(ops, "/etc/resolv.conf", "/host/resolv")
    generated = _index(ops, "/etc/resolv.conf", "/gen/resolv.conf")
    host_hosts = _index(ops, "/etc/hosts", "/etc/hosts")
    assert _index(ops, "/tmp", "tmpfs") < fallback < volume < resolv_volume
    assert resolv_volume < generated and volume + 1 < host_hosts  # after the volume's ro remount
    for i in (fallback, generated, host_hosts):
        assert ops[i].flags == MS_BIND and ops[i].create == "file"
    # only the host file is remounted read-only, right after its bind; the root's remount is last
    ro = ops[host_hosts + 1]
    assert (ro.target, ro.source, ro.create) == ("/etc/hosts", None, None)
    assert ro.flags & MS_REMOUNT and ro.flags & MS_RDONLY
    assert not (ops[generated + 1].flags & MS_REMOUNT)  # a generated file stays writable
    assert ops[-1].target == "/" and ops[-1].flags & MS_RDONLY


def test_name_files_survive_the_saved_spec() -> None:
    spec = _spec(name_files=(NameFile("/etc/hosts", "/etc/hosts", True, True),))
    again = AppSpec.from_json(spec.to_json())
    assert again.name_files == spec.name_files
    legacy = json.loads(spec.to_json())
    del legacy["name_files"]
    assert AppSpec.from_json(json.dumps(legacy).encode()).name_files == ()
