"""Issue 4 policy resolution (pure, no root): seccomp groups and filters, capabilities, masks,
resource limits, the app flags that become isolators, and the order credentials are applied."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from rkt.cli.isolator_flags import isolator_flags, parse_seccomp_flag
from rkt.errors import PodError, UsageError
from rkt.host.api import MS_BIND
from rkt.schema.isolators import CAPABILITIES, CapabilitySet, Isolator, SeccompSet, parse_isolator
from rkt.stage1.common.appspec import AppSpec
from rkt.stage1.common.caps import resolve_capabilities
from rkt.stage1.common.masks import plan_masks
from rkt.stage1.common.resources import DEFAULT_PIDS_LIMIT, AppLimits, resolve_limits
from rkt.stage1.common.seccomp import (
    DEFAULT_BLACKLIST,
    DEFAULT_POLICY,
    DEFAULT_WHITELIST,
    SeccompPolicy,
    expand_syscalls,
    policy_from_set,
    resolve_seccomp,
)
from rkt.stage1.ns.launch import (
    PREBUILT,
    app_plan,
    encode_args,
    enter_plan,
    mask_ops,
    read_prebuilt,
    seccomp_args,
)

DEFAULT_MASK = 0xA80425FB


def test_default_policy_retains_whitelist_and_blocks_the_blacklist() -> None:
    assert DEFAULT_POLICY.mode == "retain" and DEFAULT_POLICY.errno == errno.EPERM
    for name in DEFAULT_BLACKLIST:
        assert DEFAULT_POLICY.blocks(name), name
    for name in ("read", "execve", "openat", "clone", "chroot"):
        assert not DEFAULT_POLICY.blocks(name)
    assert not set(DEFAULT_BLACKLIST) & set(DEFAULT_WHITELIST)


def test_groups_and_siblings_expand() -> None:
    names = expand_syscalls(["mount", "mkdir", "@rkt/default-blacklist"])
    assert names is not None
    for sibling in ("move_mount", "fsmount", "open_tree", "mount_setattr", "mkdirat", "umount2"):
        assert sibling in names
    assert expand_syscalls(["read", "@appc.io/all"]) is None
    assert expand_syscalls(["@appc.io/empty"]) == ()
    with pytest.raises(PodError, match="unknown syscall group"):
        expand_syscalls(["@rkt/nope"])


def test_appc_all_and_errno_names() -> None:
    assert policy_from_set("retain", ["@appc.io/all"], None) == SeccompPolicy("remove", ())
    blocked_all = policy_from_set("remove", ["@appc.io/all"], "ENOSYS")
    assert blocked_all.mode == "retain" and blocked_all.errno == errno.ENOSYS
    with pytest.raises(PodError, match="errno"):
        policy_from_set("remove", ["read"], "ENOPE")


def test_resolve_seccomp_isolator_and_insecure() -> None:
    iso = SeccompSet("remove", ("keyctl",), "EACCES")
    policy = resolve_seccomp([iso], frozenset())
    assert policy == SeccompPolicy("remove", ("add_key", "keyctl", "request_key"), errno.EACCES)
    assert resolve_seccomp([], frozenset()) == DEFAULT_POLICY
    assert resolve_seccomp([iso], frozenset({"seccomp"})) is None
    assert SeccompPolicy.from_json_obj(policy.to_json_obj()) == policy


def test_capabilities_default_retain_remove_and_ambient() -> None:
    default = resolve_capabilities([], 0, frozenset())
    assert sum(1 << c for c in default.bounding or ()) == DEFAULT_MASK and default.ambient == ()
    remove = resolve_capabilities([CapabilitySet("remove", ("CAP_NET_RAW",))], 0, frozenset())
    assert CAPABILITIES["CAP_NET_RAW"] not in (remove.bounding or ())
    retain = CapabilitySet("retain", ("CAP_NET_BIND_SERVICE",))
    assert resolve_capabilities([retain], 0, frozenset()).ambient == ()
    assert resolve_capabilities([retain], 1000, frozenset()).ambient == (10,)
    assert resolve_capabilities([retain], 0, frozenset({"capabilities"})).bounding is None


def test_masks_follow_rkt_lists_and_paths_option() -> None:
    masks = dict(plan_masks(frozenset()))
    assert masks["/proc/kcore"] == masks["/proc/kallsyms"] == "null-file"
    assert masks["/sys/firmware"] == "empty-dir" and masks["/proc/sysrq-trigger"] == "read-only"
    assert plan_masks(frozenset({"paths"})) == []
    ops = mask_ops(plan_masks(frozenset()), lambda p: p != "/proc/kcore")
    assert not [op for op in ops if op.target == "/proc/kcore"]
    assert [op.source for op in ops if op.target == "/proc/kallsyms"] == ["/dev/null"]


def test_limits_from_isolators() -> None:
    typed = [
        parse_isolator(Isolator("resource/memory", {"limit": "64Mi"})),
        parse_isolator(Isolator("resource/cpu", {"limit": "250m"})),
        parse_isolator(Isolator("os/linux/cpu-shares", 512)),
        parse_isolator(Isolator("os/linux/oom-score-adj", 100)),
    ]
    limits = resolve_limits(typed, [Isolator("os/linux/pids-limit", {"limit": 64})])
    assert limits == AppLimits(64 * 1024 * 1024, 250, 512, 64, 100)
    assert resolve_limits([], []).pids == DEFAULT_PIDS_LIMIT
    assert resolve_limits([], [Isolator("os/linux/pids-limit", {"limit": "max"})]).pids is None
    with pytest.raises(PodError):
        resolve_limits([], [Isolator("os/linux/pids-limit", {"limit": 0})])


def test_isolator_flags() -> None:
    isos = isolator_flags(
        {
            "--cpu": ["500m", "250m"],
            "--memory": ["128Mi"],
            "--cpu-shares": ["512"],
            "--oom-score-adj": ["10"],
            "--caps-remove": ["net_raw,CAP_MKNOD"],
            "--seccomp": ["mode=remove,errno=ENOSYS,@rkt/default-blacklist,keyctl"],
        }
    )
    by_name = {i["name"]: i["value"] for i in isos}
    assert by_name["resource/cpu"] == {"limit": "250m"}
    assert by_name["resource/memory"] == {"limit": "128Mi"}
    assert by_name["os/linux/cpu-shares"] == 512 and by_name["os/linux/oom-score-adj"] == 10
    assert by_name["os/linux/capabilities-remove-set"] == {"set": ["CAP_NET_RAW", "CAP_MKNOD"]}
    assert by_name["os/linux/seccomp-remove-set"] == {
        "set": ["@rkt/default-blacklist", "keyctl"],
        "errno": "ENOSYS",
    }
    assert isolator_flags({}) == ()
    with pytest.raises(UsageError, match="together"):
        isolator_flags({"--caps-retain": ["CAP_KILL"], "--caps-remove": ["CAP_KILL"]})
    for bad in ({"--cpu": ["lots"]}, {"--caps-retain": ["CAP_FLY"]}, {"--oom-score-adj": ["x"]}):
        with pytest.raises(UsageError):
            isolator_flags(bad)
    with pytest.raises(UsageError, match="mode"):
        parse_seccomp_flag("read,write")


def _spec(**kwargs: object) -> AppSpec:
    base: dict[str, object] = dict(
        name="a", exec=("/bin/true",), env=(), uid=1000, gid=1000, supplementary_gids=(),
        working_dir="/", capabilities=(10,), no_new_privs=True, read_only_rootfs=False,
        lower_rootfs="/x", ambient=(10,), seccomp=DEFAULT_POLICY,
        limits=AppLimits(oom_score_adj=5),
    )  # fmt: skip
    base.update(kwargs)
    return AppSpec(**base)  # type: ignore[arg-type]


def test_credentials_order_ambient_last_seccomp_compiled_first() -> None:
    plan = app_plan(_spec(), "/root")
    kw = plan.keywords()
    creds = ["bounding", "keepcaps", "nnp", "ids", "caps", "ambient", "exec"]
    assert kw[kw.index("pivot") + 1 :] == creds
    # the filter is compiled first (app-exec loads it at exec, after everything else)
    assert kw[:2] == ["label", "seccomp"] and kw.count("seccomp") == 1
    seccomp = plan.steps[kw.index("seccomp")]
    assert seccomp[1:3] == ("1", str(errno.EPERM))  # retain, EPERM
    assert list(seccomp[4:]) == sorted(set(DEFAULT_POLICY.syscalls))
    assert int(seccomp[3]) == len(seccomp) - 4
    # enter: the same credentials, no filesystem steps
    enter = enter_plan(_spec(), ("/bin/sh",)).keywords()
    assert enter == ["label", "seccomp", "oom-score-adj", *creds]


def test_an_interactive_apps_terminal_is_bound_at_dev_console() -> None:
    """``--interactive``: the caller's terminal (the app's stdio) gets a name in the app's
    /dev, bound over /dev/console after the other mounts and before the pivot; no terminal, no
    such mount."""
    plan = app_plan(_spec(), "/root", console="/dev/pts/7")
    kw = plan.keywords()
    console = [s for s in plan.steps if s[:2] == ("mount", "/dev/console")]
    assert console == [("mount", "/dev/console", "/dev/pts/7", "", str(MS_BIND), "", "file")]
    assert kw.index("pivot") == plan.steps.index(console[0]) + 1
    assert not [s for s in app_plan(_spec(), "/root").steps if "/dev/console" in s]


def test_the_default_filter_goes_to_app_exec_compiled_when_the_stage1_ships_it(
    tmp_path: Path,
) -> None:
    bpf = bytes(range(16))  # two instructions' worth: only the planner's choice is tested
    shipped = encode_args(seccomp_args(DEFAULT_POLICY)) + bpf
    (tmp_path / PREBUILT).write_bytes(shipped)
    prebuilt = read_prebuilt(str(tmp_path))
    assert prebuilt == shipped and read_prebuilt(str(tmp_path / "none")) is None
    for plan in (
        app_plan(_spec(), "/root", prebuilt=prebuilt),
        enter_plan(_spec(), ("sh",), prebuilt),
    ):
        assert plan.steps[1] == ("seccomp-bpf", bpf.hex()) and "seccomp" not in plan.keywords()
    # other rules, or a torn file: app-exec compiles them
    other = policy_from_set("remove", ["@rkt/default-blacklist"], None)
    for spec, blob in ((_spec(seccomp=other), shipped), (_spec(), shipped[:-3])):
        step = app_plan(spec, "/root", prebuilt=blob).steps[1]
        assert spec.seccomp is not None
        assert step == ("seccomp", *(str(a) for a in seccomp_args(spec.seccomp)))
    assert "seccomp-bpf" not in app_plan(_spec(seccomp=None), "/root", prebuilt=shipped).keywords()


def test_app_plan_moves_into_the_cgroup_then_sets_oom_score() -> None:
    plan = app_plan(_spec(), "/root", ("/cg/memory/app-a", "/cg/pids/app-a"))
    assert plan.steps[1][0] == "seccomp"  # compiled first, loaded at exec
    assert plan.steps[2:5] == [
        ("write", "/cg/memory/app-a/cgroup.procs", "0"),
        ("write", "/cg/pids/app-a/cgroup.procs", "0"),
        ("oom-score-adj", "5"),
    ]


def test_app_spec_json_round_trip_keeps_security_fields() -> None:
    spec = _spec(mask_paths=True)
    assert AppSpec.from_json(spec.to_json()) == spec
