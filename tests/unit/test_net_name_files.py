"""resolv.conf and /etc/hosts in the app: which file is bound where, and in which order relative
to the volumes (docs/networking.md "DNS and /etc/hosts"; rkt: CLI > CNI > volume > image for
resolv.conf, CLI > volume > image > fallback for hosts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rkt.host.flags import MS_BIND, MS_RDONLY, MS_REMOUNT
from rkt.net import dns
from rkt.stage1.common.appspec import AppSpec, NameFile, VolumeMount
from rkt.stage1.common.poddir import PodDir
from rkt.stage1.common.seccomp import DEFAULT_POLICY
from rkt.stage1.ns.launch import FsOp, app_plan, enter_plan, plan_filesystem
from rkt.stage1.ns.namefiles import (
    HOST_HOSTS,
    HOST_RESOLV_CONF,
    NAME_FILES_DIR,
    NAME_FILES_PLAN,
    name_file_mounts,
    name_file_texts,
    plan_name_files,
)

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


def _plan(*dns_flags: str, hosts: tuple[str, ...] = (), cni: bool = True) -> list[NameFile]:
    opts = dns.parse_dns_options(dns_flags, hosts_entries=hosts)
    return [mount for mount, _ in plan_name_files(opts, cni, FILES)]


def _texts(
    *dns_flags: str, hosts: tuple[str, ...] = (), cni: list[dict[str, Any]] | None = None
) -> dict[str, str]:
    opts = dns.parse_dns_options(dns_flags, hosts_entries=hosts)
    return name_file_texts(opts, list(cni or []), "web", "10.0.0.2")


def _index(ops: list[FsOp], target: str, source: str | None) -> int:
    return next(i for i, op in enumerate(ops) if op.target == target and op.source == source)


def test_host_mode_binds_the_host_files_read_only_over_the_volumes() -> None:
    assert _plan("host", hosts=("host",)) == [
        NameFile(HOST_RESOLV_CONF, "/etc/resolv.conf", True, True),
        NameFile(HOST_HOSTS, "/etc/hosts", True, True),
    ]
    assert _texts("host", hosts=("host",)) == {}  # nothing generated


def test_flags_generate_files_bound_over_the_volumes() -> None:
    for cni in (True, False):
        resolv, hosts = _plan("10.1.1.1", hosts=("10.2.2.2=db",), cni=cni)
        assert resolv == NameFile(f"{FILES}/resolv.conf", "/etc/resolv.conf", False, True)
        assert hosts == NameFile(f"{FILES}/hosts", "/etc/hosts", False, True)
    texts = _texts("10.1.1.1", hosts=("10.2.2.2=db",))
    assert "nameserver 10.1.1.1" in texts["resolv.conf"]
    assert "10.2.2.2\tdb" in texts["hosts"] and "hosts-fallback" not in texts


def test_cni_dns_beats_a_volume_and_none_or_nothing_keeps_the_image_file() -> None:
    # Known before any result: a CNI pod without --dns binds resolv.conf only if a result has
    # DNS (optional: app-exec binds it only if the attacher wrote it).
    resolv, _hosts = _plan()
    assert resolv.over_volumes and resolv.optional and resolv.source == f"{FILES}/resolv.conf"
    cni: list[dict[str, Any]] = [{"nameservers": ["9.9.9.9"]}]
    assert "9.9.9.9" in _texts(cni=cni)["resolv.conf"]
    assert "resolv.conf" not in _texts(cni=[{}])  # no DNS in the result: not written
    assert "resolv.conf" not in _texts("none", cni=cni)
    for plan in (_plan("none"), _plan(cni=False)):
        assert [m.target for m in plan] == ["/etc/hosts"]


def test_fallback_hosts_goes_under_the_volumes_only_for_images_without_one() -> None:
    (hosts,) = _plan(cni=False)
    opts = dns.parse_dns_options(())
    ((_, fallback),) = plan_name_files(opts, False, FILES)
    assert fallback and not hosts.over_volumes and not hosts.read_only
    assert hosts.source == f"{FILES}/hosts-fallback"
    assert "10.0.0.2\tweb" in _texts()["hosts-fallback"]


def test_an_optional_name_file_is_bound_only_if_its_source_exists() -> None:
    spec = _spec(name_files=(NameFile("/gen/resolv.conf", "/etc/resolv.conf", False, True, True),))
    ops = plan_filesystem(spec, is_file=lambda p: True)
    op = ops[_index(ops, "/etc/resolv.conf", "/gen/resolv.conf")]
    assert (op.flags, op.create) == (MS_BIND, "file-if-source")


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


def test_apps_wait_for_the_network_before_their_first_name_file_bind() -> None:
    spec = _spec(
        mounts=(VolumeMount("/host/data", "/data", read_only=False, recursive=False),),
        name_files=(
            NameFile("/gen/hosts-fallback", "/etc/hosts", False, False),
            NameFile("/gen/resolv.conf", "/etc/resolv.conf", False, True, True),
        ),
    )
    steps = app_plan(spec, "/root", network_fd=7).steps
    keywords = [s[0] for s in steps]
    at = keywords.index("await")
    assert keywords.count("await") == 1 and steps[at] == ("await", "7")
    # every mount before it is the app's own (/proc, /dev, /sys, /tmp), the binds follow
    assert steps[at + 1][:3] == ("mount", "/etc/hosts", "/gen/hosts-fallback")
    assert all(s[1] not in ("/etc/hosts", "/etc/resolv.conf", "/data") for s in steps[:at])
    assert ("mount", "/etc/resolv.conf", "/gen/resolv.conf") in [s[:3] for s in steps[at:]]
    # without name files the wait is still there, before pivot_root; without a barrier, none
    bare = [s[0] for s in app_plan(_spec(), "/root", network_fd=7).steps]
    assert bare[bare.index("await") + 1] == "pivot"
    assert "await" not in app_plan(spec, "/root").keywords()


def test_apps_compile_their_seccomp_filter_while_they_wait_for_the_network() -> None:
    spec = _spec()._replace(seccomp=DEFAULT_POLICY)
    keywords = app_plan(spec, "/root", network_fd=7).keywords()
    assert keywords[:2] == ["label", "seccomp"] and keywords.count("seccomp") == 1
    assert keywords.index("seccomp") < keywords.index("await") < keywords.index("exec")
    assert enter_plan(spec, ("/bin/sh",)).keywords()[:2] == ["label", "seccomp"]


def test_an_optional_bind_is_decided_once_the_network_is_settled(tmp_path: Path) -> None:
    pod = PodDir(tmp_path, "11111111-2222-3333-4444-555555555555")
    files = pod.file(NAME_FILES_DIR)
    files.mkdir(parents=True)
    resolv = NameFile(str(files / "resolv.conf"), "/etc/resolv.conf", False, True, True)
    plan = [{"mount": resolv._asdict(), "fallback": False}]
    pod.file(NAME_FILES_PLAN).write_text(json.dumps(plan))
    assert name_file_mounts(pod, "web", settled=False) == (resolv,)  # app-exec decides
    assert name_file_mounts(pod, "web") == ()  # settled, and no result had DNS
    (files / "resolv.conf").write_text("nameserver 9.9.9.9\n")
    assert name_file_mounts(pod, "web") == (resolv._replace(optional=False),)
