"""The ns flavor's logic with the recording fake Host: no root, no kernel state touched."""

from __future__ import annotations

import json
import os
import select
import signal
from pathlib import Path

import pytest

from rkt import abi
from rkt.host.flags import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MS_BIND,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from rkt.stage1.common.appspec import AppSpec, VolumeMount
from rkt.stage1.common.args import parse_run
from rkt.stage1.common.poddir import CGROUP_STATE, PodDir
from rkt.stage1.ns import ENTRYPOINTS
from rkt.stage1.ns import run as run_entry
from rkt.stage1.ns._pod import load_pod_cgroup
from rkt.stage1.ns.launch import app_plan, enter_plan, plan_filesystem
from rkt.stage1.ns.start import overlay_options

UUID = "0a1b2c3d-0000-4000-8000-000000000001"


def _spec(**kw: object) -> AppSpec:
    base: dict[str, object] = dict(
        name="web",
        exec=("/bin/web",),
        env=(("PATH", "/bin"),),
        uid=1000,
        gid=1001,
        supplementary_gids=(5,),
        working_dir="/",
        capabilities=(0, 5),
        no_new_privs=False,
        read_only_rootfs=False,
        lower_rootfs="/tree",
        mounts=(),
    )
    base.update(kw)
    return AppSpec(**base)  # type: ignore[arg-type]


def test_entrypoints_table_names_importable_modules() -> None:
    import importlib

    assert set(ENTRYPOINTS) == {"run", "enter", "stop", "gc"}
    for module in ENTRYPOINTS.values():
        assert callable(importlib.import_module(module).main)


def test_minimal_dev_has_no_other_host_devices() -> None:
    ops = plan_filesystem(_spec())
    binds = [op.source for op in ops if op.flags & MS_BIND and op.source]
    assert binds == [f"/dev/{n}" for n in ("null", "zero", "full", "random", "urandom", "tty")]
    by_target = {op.target: op for op in ops if op.fstype not in (None, "symlink")}
    assert by_target["/proc"].fstype == "proc"
    assert by_target["/dev"].fstype == "tmpfs"
    assert "newinstance" in str(by_target["/dev/pts"].data)
    assert by_target["/sys"].flags & MS_RDONLY
    assert by_target["/tmp"].fstype == "tmpfs"
    assert by_target["/dev/shm"].fstype == "tmpfs"
    # /dev comes before anything mounted inside it
    targets = [op.target for op in ops]
    assert targets.index("/dev") < targets.index("/dev/null") < targets.index("/dev/pts")


def test_volumes_and_readonly_rootfs_plan() -> None:
    spec = _spec(
        read_only_rootfs=True,
        mounts=(
            VolumeMount("/srv", "/data", True, True),
            VolumeMount("/f", "/etc/f", False, False),
        ),
    )
    ops = plan_filesystem(spec, is_file=lambda p: p == "/f")
    vol = [op for op in ops if op.target in ("/data", "/etc/f")]
    assert [(op.target, op.flags, op.create) for op in vol] == [
        ("/data", MS_BIND | MS_REC, "dir"),
        ("/data", MS_REMOUNT | MS_BIND | MS_RDONLY, None),
        ("/etc/f", MS_BIND, "file"),
    ]
    assert ops[-1].target == "/" and ops[-1].flags & MS_RDONLY  # last, after every mount


def test_app_plan_mounts_inside_the_root_then_pivots_then_masks() -> None:
    plan = app_plan(_spec(mask_paths=True), "/pod/rootfs", ("/cg/pids/app-web",))
    kw = plan.keywords()
    assert kw[:5] == ["label", "write", "unshare", "root", "mount"]
    assert plan.steps[1] == ("write", "/cg/pids/app-web/cgroup.procs", "0")  # cgroup first
    assert plan.steps[2] == ("unshare", str(CLONE_NEWNS))
    assert plan.steps[3] == ("root", "/pod/rootfs")
    pivot = kw.index("pivot")
    # every mount and symlink resolves inside the root, before pivot_root; masks after it
    assert set(kw[4:pivot]) == {"mount", "symlink"}
    assert ("symlink", "/dev/ptmx", "pts/ptmx") in plan.steps
    assert kw[pivot + 1] == "mask" and "mount" not in kw[pivot:]
    assert kw[-1] == "exec"


def _masked(plan_steps: list[tuple[str, ...]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for step in plan_steps:
        if step[0] == "mask":
            out[step[1]] = out.get(step[1], 0) + 1
    return out


def test_app_plan_leaves_the_read_only_sysfs_alone_and_masks_the_rest() -> None:
    """/sys is a read-only sysfs mount: rkt's read-only /sys paths need no binds of their own;
    the /proc ones and the inaccessible /sys ones are still masked."""
    masked = _masked(app_plan(_spec(mask_paths=True), "/r", own_sysfs=True).steps)
    assert not any(p in masked for p in ("/sys/kernel", "/sys/devices", "/sys/block"))
    assert masked["/proc/sys/kernel/core_pattern"] == 2  # a bind, then read-only
    assert masked["/sys/firmware"] == 1 and masked["/proc/kcore"] == 1
    fs = plan_filesystem(_spec())
    assert any(op.target == "/sys" and op.fstype == "sysfs" and op.flags & MS_RDONLY for op in fs)


@pytest.mark.parametrize("target", ["/sys", "/sys/kernel/debug", "/sys/../sys/fs/x"])
def test_app_plan_masks_read_only_sys_paths_under_a_volume_at_sys(target: str) -> None:
    spec = _spec(mask_paths=True, mounts=(VolumeMount("/host", target, False, False),))
    masked = _masked(app_plan(spec, "/r", own_sysfs=True).steps)
    assert masked["/sys/kernel"] == 2 and masked["/sys/devices"] == 2


def test_app_plan_masks_read_only_sys_paths_when_sys_may_be_a_bind() -> None:
    """In a user namespace app-exec may bind the current /sys instead (app-exec.c): such
    plans keep every mask."""
    masked = _masked(app_plan(_spec(mask_paths=True), "/r").steps)
    assert masked["/sys/kernel"] == 2 and masked["/sys/block"] == 2


@pytest.mark.parametrize("private_users", [False, True])
def test_only_private_users_pods_keep_the_read_only_sys_masks(
    tmp_path: Path, private_users: bool
) -> None:
    """A --private-users pod's /sys may be a bind of the current one (its network namespace
    is not its user namespace's with --net=host or CNI): its apps' plans keep the read-only
    /sys masks; an ordinary pod's apps get a sysfs of their own and skip them."""
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns.start import pod_plan, userns_pod_plan

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    spec = _spec(mask_paths=True)
    if private_users:
        args = parse_run(["--net=host", "--private-users=65536:65536", UUID])
        userns_pod_plan(pod, args, [spec], run_entry.namespace_flags(args), None, {}, 7, 9)
    else:
        args = parse_run(["--net=host", UUID])
        pod_plan(pod, args, [spec], run_entry.namespace_flags(args), None, None)
    tokens = app_spec_path(pod, "web").with_suffix(".plan").read_bytes().split(b"\0")
    masked: dict[str, int] = {}
    for i, token in enumerate(tokens[:-1]):
        if token == b"mask":
            path = tokens[i + 1].decode()
            masked[path] = masked.get(path, 0) + 1
    assert ("/sys/block" in masked) is private_users
    assert masked["/proc/sys/kernel/core_pattern"] == 2


def test_app_plan_without_masks_or_cgroup() -> None:
    kw = app_plan(_spec(), "/r").keywords()
    assert "mask" not in kw and "write" not in kw


def test_credentials_order_bounding_set_first_then_ids() -> None:
    kw = app_plan(_spec(no_new_privs=True), "/r").keywords()
    assert kw[kw.index("pivot") + 1 :] == ["bounding", "nnp", "ids", "caps", "exec"]
    steps = {step[0]: step[1:] for step in app_plan(_spec(), "/r").steps}
    assert steps["bounding"] == steps["caps"] == (str(1 << 0 | 1 << 5),)
    assert steps["ids"] == ("1000", "1001", "1", "5")
    assert steps["exec"] == ("/", "1", "/bin/web", "1", "PATH=/bin")


def test_credentials_insecure_capabilities_keeps_sets() -> None:
    kw = enter_plan(_spec(capabilities=None), ("/bin/sh",)).keywords()
    assert kw == ["label", "ids", "exec"]


def test_plan_refuses_a_nul_byte() -> None:
    plan = app_plan(_spec(env=(("A", "x\0y"),)), "/r")
    with pytest.raises(ValueError, match="NUL"):
        plan.encode()
    encoded = app_plan(_spec(), "/r").encode()
    assert encoded.endswith(b"\0") and encoded.startswith(b'label\0stage1: app "web"\0')


def test_namespace_flags_per_net_mode() -> None:
    base = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID
    assert run_entry.namespace_flags(parse_run(["--net=host", UUID])) == base
    assert run_entry.namespace_flags(parse_run(["--net=none", UUID])) == base | CLONE_NEWNET


def test_run_refuses_unknown_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_entry.main(["--frobnicate", UUID]) == 254
    assert "unknown or malformed flag" in capsys.readouterr().err


def test_overlay_options_escape_separators() -> None:
    assert overlay_options("/a,b", "/u:1", "/w\\") == (
        "lowerdir=/a\\,b,upperdir=/u\\:1,workdir=/w\\\\"
    )


def test_gc_only_trusts_cgroup_dirs_named_for_the_pod(tmp_path: Path) -> None:
    pod = PodDir(tmp_path, UUID)
    (tmp_path / CGROUP_STATE).parent.mkdir(parents=True)
    cg_root = tmp_path / "cg"
    (cg_root / "cpu" / f"rkt-{UUID}").mkdir(parents=True)
    (tmp_path / CGROUP_STATE).write_text(
        json.dumps(
            {
                "relative": f"/rkt-{UUID}",
                "dirs": [
                    str(cg_root / "cpu" / f"rkt-{UUID}"),
                    str(cg_root / "cpu" / "victim"),
                    f"/etc/rkt-{UUID}",
                ],
            }
        )
    )
    mountinfo = f"40 31 0:29 / {cg_root / 'cpu'} rw - cgroup cgroup rw,cpu\n"
    cg = load_pod_cgroup(pod, mountinfo)
    assert cg is not None and cg.dirs == (cg_root / "cpu" / f"rkt-{UUID}",)


def test_pod_plan_for_pod_init(tmp_path: Path) -> None:
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns.start import pod_plan

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    args = parse_run(["--net=none", "--hostname=box", UUID])
    specs = [_spec(), _spec(name="db")]
    plan = pod_plan(pod, args, specs, run_entry.namespace_flags(args), None, None)
    kw = plan.keywords()
    fork = kw.index("fork")
    # namespaces and lo before the fork; the init's steps after it, in this order
    assert kw[1:fork] == ["unshare", "private", "unpin", "loopback"]
    assert kw[fork + 1 :] == [
        "pdeathsig", "hostname", "overlay", "overlay", "wait", "app", "app", "start", "ready",
        "supervise",
    ]  # fmt: skip
    steps = plan.steps
    assert steps[fork][1] == str(tmp_path / "pid") and steps[fork][3:] == ("1", "run-waiter")
    assert ("hostname", "box") in steps
    root, data = steps[kw.index("overlay")][1:]
    assert root == str(tmp_path / abi.stage2_rootfs("web"))
    assert data.startswith("lowerdir=/tree,upperdir=")
    app = steps[kw.index("app")]
    assert app[1] == "web" and app[2].endswith("/stage1/rootfs/app-exec")
    assert Path(app[3]).read_bytes() == app_plan(_spec(), root).encode()  # the app's plan file
    assert app[6].endswith("/web.log") and app[7] == ""  # log; no cgroup: no OOM counter
    assert app[8] == root  # what a mutable pod's rm unmounts
    # --interactive: no log (the app has the terminal), and the waiter leaves ^C to the app
    plan = pod_plan(pod, parse_run(["--interactive", UUID]), specs[:1], 0, None, None)
    steps = plan.steps
    assert steps[plan.keywords().index("fork")][3:] == ("2", "run-waiter", "--interactive")
    assert steps[plan.keywords().index("app")][6] == ""
    assert steps[plan.keywords().index("start")] == ("start", "1")


def test_a_spawned_pod_init_gets_its_namespace_steps_first_and_the_rest_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start.SpawnedInit: pod-init is spawned with the namespace steps (after "parent": it dies
    with the run process) before the apps are resolved; the pod plan then goes on from the
    init's fork ("fork-sibling": the init is the run process's child, its pid to run-waiter
    through the pipe pod-init holds), and the run process becomes run-waiter --spawned."""
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns import start as start_module
    from rkt.stage1.ns.start import SpawnedInit, pod_plan

    spawned: list[tuple[str, list[str], int]] = []

    def fake_spawn(path: str, argv: list[str], env: dict[str, str]) -> int:
        spawned.append((path, argv, os.dup(int(argv[-1]))))  # the plan's read end, kept
        return 4242

    ended: list[tuple[str, int, int]] = []

    def fake_kill(pid: int, sig: int) -> None:
        # killed while its plan's pipe is still open: a plan cut short is an error to pod-init
        assert select.select([plan_r], [], [], 0)[0] == []  # (its first steps read): no EOF
        ended.append(("kill", pid, sig))

    monkeypatch.setattr(start_module.os, "posix_spawn", fake_spawn)
    monkeypatch.setattr(start_module.os, "kill", fake_kill)
    monkeypatch.setattr(start_module.os, "waitpid", lambda pid, o: ended.append(("wait", pid, o)))
    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    args = parse_run(["--net=none", UUID])
    flags = run_entry.namespace_flags(args)
    init = SpawnedInit(pod.path, None, flags)
    [(path, argv, plan_r)] = spawned
    assert path == str(tmp_path / abi.STAGE1_ROOTFS / "pod-init")
    assert argv[:3] == ["pod-init", "--parent", str(os.getpid())]
    assert init.pid == 4242
    first = os.read(plan_r, 65536).split(b"\0")[:-1]
    assert first == [
        b"label", b"stage1: pod init",
        b"unshare", str(flags).encode(), b"private", b"unpin", b"/run/netns", b"loopback",
    ]  # fmt: skip
    plan = pod_plan(pod, args, [_spec()], flags, None, None, spawned=init)
    kw = plan.keywords()
    assert kw[:3] == ["label", "fork-sibling", "pdeathsig"] and "unshare" not in kw
    assert plan.steps[1] == ("fork-sibling", str(tmp_path / "pid"), str(init.pid_fd))
    init.abort()
    assert ended == [("kill", 4242, signal.SIGKILL), ("wait", 4242, 0)]
    assert os.read(plan_r, 10) == b""  # the pipe closed
    os.close(plan_r)


def test_a_cni_pods_init_joins_its_namespace_first(tmp_path: Path) -> None:
    """The run process stays in the host's namespace (no ctypes): pod-init joins the pod's
    through the descriptor, brings lo up, then unshares the rest."""
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns.start import pod_plan

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    args = parse_run(["--net=default", UUID])
    flags = run_entry.namespace_flags(args)
    assert not flags & CLONE_NEWNET
    plan = pod_plan(pod, args, [_spec()], flags, None, None, (5, "/err"), 9)
    assert plan.steps[1:5] == [
        ("netns", "9"),
        ("loopback",),
        ("unshare", str(flags)),
        ("private",),
    ]
    assert ("network", "5", "/err") in plan.steps


def test_mutable_pod_plan_hands_the_control_socket_to_the_supervisor(tmp_path: Path) -> None:
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns.start import pod_plan

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    plan = pod_plan(pod, parse_run(["--mutable", UUID]), [], 0, None, None)
    kw = plan.keywords()
    assert kw[kw.index("wait") :] == ["wait", "start", "listen", "ready", "supervise"]
    listen = plan.steps[kw.index("listen")]
    assert listen[1:] == (
        "stage1/rootfs/rkt/private/control.sock",
        str(app_spec_path(pod, "x").parent),
    )
    assert "listen" not in pod_plan(pod, parse_run([UUID]), [], 0, None, None).keywords()


def test_an_added_app_gets_a_record_the_supervisor_mounts_and_starts_it_from(
    tmp_path: Path,
) -> None:
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns.start import forget_removed_app, prepare_added_app

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    spec = _spec()
    prepare_added_app(pod, spec)
    record = app_spec_path(pod, "web").with_suffix(".add").read_bytes().split(b"\0")[:-1]
    root = str(tmp_path / abi.stage2_rootfs("web"))
    assert record[:3] == [b"label", b'app "web"', b"overlay"] and record[3] == root.encode()
    assert record[4].startswith(b"lowerdir=/tree,upperdir=")
    assert record[5:8] == [b"app", b"web", str(tmp_path / "stage1/rootfs/app-exec").encode()]
    plan_file = app_spec_path(pod, "web").with_suffix(".plan")
    assert record[8] == str(plan_file).encode() and record[-1] == root.encode()
    assert plan_file.read_bytes() == app_plan(spec, root).encode()
    forget_removed_app(pod, "web")
    assert not plan_file.exists() and not plan_file.with_suffix(".add").exists()


def test_copy_up_volumes_are_found() -> None:
    from rkt.stage1.ns.start import has_copy_up

    vol = VolumeMount("/v", "/data", False, False, copy_up="/marker")
    assert has_copy_up([_spec(), _spec(mounts=(vol,))]) and not has_copy_up([_spec()])


def test_userns_pod_plan_uses_relative_paths_and_the_run_process_fds(tmp_path: Path) -> None:
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns.start import userns_pod_plan

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    args = parse_run(["--net=none", "--private-users=65536:65536", UUID])
    flags = run_entry.namespace_flags(args)
    plan = userns_pod_plan(pod, args, [_spec()], flags, None, {}, 7, 9)
    kw = plan.keywords()
    # no cgroup join (the helper joined as host root) and no overlay (mounted idmapped already):
    # the premounted root is bound onto itself, unlocked for pivot_root
    assert kw[1:] == [
        "unshare", "private", "loopback", "fork-fds", "pdeathsig", "hostname", "bind", "wait",
        "app", "start", "ready", "supervise",
    ]  # fmt: skip
    steps = plan.steps
    fork = steps[kw.index("fork-fds")]
    assert fork[1:3] == ("7", "9") and fork[4:] == ("2", "run-waiter", "--ignore-signals")
    assert fork[3] == "stage1/rootfs/run-waiter"  # relative: the pod dir's parents may be closed
    assert steps[kw.index("bind")] == ("bind", abi.stage2_rootfs("web"))
    app = steps[kw.index("app")]
    assert not any(str(field).startswith("/") for field in app[1:7])


def test_limits_without_a_writable_cgroup_are_refused_for_userns_pods_too() -> None:
    """A --private-users pod's app cgroups are made before the namespace: a limit that has no
    cgroup to go to fails the start, as for any pod, rather than being dropped."""
    from rkt.stage1.common.resources import AppLimits
    from rkt.stage1.ns.userns import _prepare_app_cgroups

    assert _prepare_app_cgroups(None, None, [_spec()], 65536) == {}
    limited = _spec(limits=AppLimits(memory_bytes=1 << 26))
    with pytest.raises(OSError, match="resource limits need a writable cgroup"):
        _prepare_app_cgroups(None, None, [limited], 65536)


def test_userns_pod_is_one_pod_init_plan_the_helper_resumes_after_our_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --private-users pod without copy-up: the run process execs pod-init once. Its own
    steps (netns, mount namespace, the helper, idmapped binds, overlay, publish) come first; the
    "userns" step says how many strings the helper skips to reach its own (userns_pod_plan)."""
    from rkt.stage1.common.appspec import app_spec_path
    from rkt.stage1.ns import start as start_module
    from rkt.stage1.ns.userns import exec_userns_pod

    pod = PodDir(tmp_path, UUID)
    app_spec_path(pod, "web").parent.mkdir(parents=True)
    for rel in (abi.STATUS_DIR, abi.LOGS_DIR, abi.app_overlay("web") + "/upper"):
        pod.file(rel).mkdir(parents=True, exist_ok=True)
    plans: list[object] = []

    def captured(pod_dir: PodDir, plan: object) -> None:
        plans.append(plan)
        raise SystemExit(0)

    monkeypatch.setattr(start_module, "exec_pod_init", captured)
    args = parse_run(["--net=default", "--private-users=65536:65536", UUID])
    vol = VolumeMount("/srv/data", "/data", False, False)
    with pytest.raises(SystemExit):
        exec_userns_pod(pod, args, [_spec(mounts=(vol,))], None, None, netns=11)
    (plan,) = plans
    steps = plan.steps  # type: ignore[attr-defined]
    kw = [s[0] for s in steps]
    assert kw[:6] == ["label", "netns", "loopback", "unshare", "private", "unpin"]
    assert steps[1] == ("netns", "11") and steps[3] == ("unshare", str(CLONE_NEWNS))
    userns = steps[6]
    assert userns[0] == "userns" and userns[1:3] == ("65536", "65536")
    assert userns[-1] == "0"  # no pod cgroup to join here
    marker = kw.index("userns-child")
    ours = steps[7 : marker + 1]
    assert [s[0] for s in ours] == ["idmap", "idmap", "overlay", "userns-go", "userns-child"]
    assert int(userns[7]) == sum(len(s) for s in ours)  # what the helper skips
    assert ours[0] == (
        "idmap",
        "/tree",
        str(tmp_path / "stage1/rootfs/rkt/private/idmap/web/lower0"),
    )
    assert ours[1][1] == "/srv/data" and ours[1][2].endswith("idmap/web/volume0")
    assert ours[2][1] == str(tmp_path / abi.stage2_rootfs("web"))
    assert ours[2][2].startswith("lowerdir=" + str(tmp_path / "stage1/rootfs/rkt/private/idmap"))
    go = ours[3]
    assert go[1] == str(pod.file(abi.PID_FILE)) and go[3:] == ("1", "run-waiter")
    # the helper's: userns_pod_plan's, from its label on, with the pipes' other ends
    assert steps[marker + 1] == ("label", "stage1: pod init")
    fork = steps[kw.index("fork-fds")]
    assert (fork[1], fork[2]) == (userns[4], userns[5])
    assert kw[marker + 2 :][:2] == ["unshare", "private"]
