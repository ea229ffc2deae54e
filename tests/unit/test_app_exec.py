"""The ns flavor's native app launcher (src/rkt/stage1/native/app-exec.c), driven directly.

The pod tests run it through `rkt run` and `rkt enter`; these pin down its own contract: the
plan encoding, the exec step (working directory, environment, PATH lookup, exit codes, nothing
inherited but stdio, signals reset), mount targets resolved inside the root, credentials and the
seccomp filter (the same BPF as an independent binding compiles).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from rkt.stage0.stage1_image import NATIVE_DIR
from rkt.stage1.common.seccomp import DEFAULT_POLICY, SeccompPolicy, policy_from_set
from rkt.stage1.ns import prebuilt
from rkt.stage1.ns.launch import LaunchPlan
from tests.conftest import require, require_root, require_tool

APP_EXEC = NATIVE_DIR / "app-exec"
LABEL = 'stage1: app "t"'


@pytest.fixture(autouse=True)
def _built() -> None:
    require(APP_EXEC.exists(), "native programs not built (make setup)")


def _run(
    data: LaunchPlan | bytes,
    *,
    wrap: tuple[str, ...] = (),
    extra_fds: tuple[int, ...] = (),
    **kw: object,
) -> subprocess.CompletedProcess[str]:
    raw = data.encode() if isinstance(data, LaunchPlan) else data
    r, w = os.pipe()
    os.write(w, raw)  # small plans: they fit the pipe
    os.close(w)
    try:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [*wrap, str(APP_EXEC), str(r)],
            pass_fds=(r, *extra_fds),
            capture_output=True,
            text=True,
            timeout=30,
            **kw,
        )
    finally:
        os.close(r)


def _plan(*steps: tuple[str | int, ...]) -> LaunchPlan:
    plan = LaunchPlan(LABEL)
    for keyword, *args in steps:
        plan.step(str(keyword), *args)
    return plan


def _exec(argv: list[str], env: list[str], cwd: str = "/") -> tuple[str | int, ...]:
    return ("exec", cwd, len(argv), *argv, len(env), *env)


# -- exec -----------------------------------------------------------------------------------


def test_exec_with_working_dir_environment_and_path_lookup(tmp_path: Path) -> None:
    env = ["PATH=/nonexistent::/usr/bin:/bin", "FOO=bar baz"]
    proc = _run(_plan(_exec(["sh", "-c", 'pwd; echo "$FOO"; echo $#'], env, str(tmp_path))))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path}\nbar baz\n0\n"


def test_exec_failures_exit_127_and_126_as_shells_do(tmp_path: Path) -> None:
    proc = _run(_plan(_exec(["no-such-tool"], ["PATH=/bin"])))
    assert proc.returncode == 127
    assert proc.stderr == f"{LABEL}: no-such-tool: executable not found in PATH\n"
    assert _run(_plan(_exec([str(tmp_path / "missing")], []))).returncode == 127
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    proc = _run(_plan(_exec([str(plain)], [])))
    assert proc.returncode == 126 and "permission denied" in proc.stderr.lower()


class _KernelSigaction(ctypes.Structure):
    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("restorer", ctypes.c_void_p),
        ("mask", ctypes.c_ulong),
    ]


def _ignore_reserved_signal_32() -> None:
    """SIG_IGN for signal 32 (libc's wrappers refuse it; the raw rt_sigaction, x86_64's 13)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ignore = _KernelSigaction(1, 0, None, 0)  # SIG_IGN
    assert libc.syscall(13, 32, ctypes.byref(ignore), None, 8) == 0


def test_only_stdio_is_inherited_and_signals_are_reset() -> None:
    # As the pod init forks an app: its stop signals blocked; Python also ignores SIGPIPE; and
    # an "ignored" on a signal libc reserves (seen in CI: inherited from the environment).
    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGCHLD})
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        _ignore_reserved_signal_32()

    extra = os.open("/dev/null", os.O_RDONLY)
    try:
        script = "ls /proc/$$/fd; exec grep -E '^Sig(Blk|Ign)' /proc/self/status"
        proc = _run(
            _plan(_exec(["/bin/sh", "-c", script], [])),
            preexec_fn=preexec,
            extra_fds=(extra,),
        )
    finally:
        os.close(extra)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[:3] == ["0", "1", "2"] and str(extra) not in lines[3:-4]
    assert "SigBlk:\t0000000000000000" in proc.stdout
    assert "SigIgn:\t0000000000000000" in proc.stdout


# -- the plan -------------------------------------------------------------------------------


def test_a_failed_step_names_the_label_and_exits_254() -> None:
    proc = _run(_plan(("write", "/nonexistent/knob", "0"), _exec(["true"], ["PATH=/bin"])))
    assert proc.returncode == 254
    assert proc.stderr == f"{LABEL}: open /nonexistent/knob: no such file or directory\n"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"label\0x\0exec\0/\0", "ends in the middle of a step"),
        (b"label\0x\0frobnicate\0", 'unknown launch step "frobnicate"'),
        (b"label\0x\0", "has no exec step"),
        (b"label\0x\0exec\0/\0one\0", 'has "one" where a number belongs'),
        (b"label\0x", "does not end with a NUL"),
    ],
)
def test_a_malformed_plan_is_refused(raw: bytes, message: str) -> None:
    proc = _run(raw)
    assert proc.returncode == 254 and message in proc.stderr, proc.stderr


# -- mounts inside the root (root: a private mount namespace of its own) ---------------------


def test_mount_targets_resolve_inside_the_root_and_are_created(tmp_path: Path) -> None:
    require_root()
    unshare = require_tool("unshare")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    (root / "dotdot").symlink_to("../../../../../../../etc")
    (tmp_path / "host-file").write_text("bound\n")
    check = f"cat {root}/data/file; ls {root}/etc/new/dir; ls {root}/etc/deep"
    plan = _plan(
        ("root", str(root)),
        ("mount", "/escape/new/dir", "tmpfs", "tmpfs", 0, "", "dir"),
        ("mount", "/dotdot/deep", "tmpfs", "tmpfs", 0, "size=1k", "dir"),
        ("mount", "/data/file", str(tmp_path / "host-file"), "", 4096, "", "file"),  # MS_BIND
        ("symlink", "/etc/link", "/nowhere"),
        _exec(["/bin/sh", "-c", check], []),
    )
    proc = _run(plan, wrap=(unshare, "--mount", "--propagation", "private"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "bound\n"  # both tmpfs mounts are empty: ls prints nothing
    assert (root / "etc/new/dir").is_dir() and (root / "etc/deep").is_dir()
    assert (root / "data/file").is_file() and os.readlink(root / "etc/link") == "/nowhere"
    assert not Path("/etc/new").exists() and not Path("/etc/deep").exists()


def test_a_missing_target_without_create_fails(tmp_path: Path) -> None:
    require_root()
    unshare = require_tool("unshare")
    (tmp_path / "root").mkdir()
    plan = _plan(
        ("root", str(tmp_path / "root")),
        ("mount", "/missing", "tmpfs", "tmpfs", 0, "", ""),
        _exec(["true"], ["PATH=/bin"]),
    )
    proc = _run(plan, wrap=(unshare, "--mount", "--propagation", "private"))
    assert proc.returncode == 254
    assert proc.stderr == f"{LABEL}: mount /missing: no such file or directory\n"


def test_an_optional_bind_is_made_only_if_its_source_exists(tmp_path: Path) -> None:
    require_root()
    unshare = require_tool("unshare")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "present").write_text("from the network\n")
    plan = _plan(
        ("root", str(root)),
        ("mount", "/etc/a", str(tmp_path / "present"), "", 4096, "", "file-if-source"),
        ("mount", "/etc/b", str(tmp_path / "absent"), "", 4096, "", "file-if-source"),
        _exec(["/bin/sh", "-c", f"cat {root}/etc/a; ls {root}/etc"], []),
    )
    proc = _run(plan, wrap=(unshare, "--mount", "--propagation", "private"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from the network\na\n"  # no /etc/b: not even created


# -- await: the pod's network barrier ---------------------------------------------------------


def _await_plan(fd: int) -> LaunchPlan:
    return _plan(("await", fd), _exec(["/bin/echo", "went on"], []))


def test_await_goes_on_once_the_network_is_up_and_leaves_the_byte_to_others() -> None:
    r, w = os.pipe()
    os.write(w, b"1")
    os.close(w)
    try:
        for _ in range(3):  # every app of the pod waits on the same pipe
            proc = _run(_await_plan(r), extra_fds=(r,))
            assert (proc.returncode, proc.stdout, proc.stderr) == (0, "went on\n", "")
    finally:
        os.close(r)


def test_await_stops_quietly_when_the_network_failed() -> None:
    r, w = os.pipe()
    os.close(w)  # the attacher exited without writing
    try:
        proc = _run(_await_plan(r), extra_fds=(r,))
    finally:
        os.close(r)
    assert (proc.returncode, proc.stdout, proc.stderr) == (254, "", "")  # the init reports


def test_await_blocks_until_the_attacher_is_done() -> None:
    require(platform.machine() == "x86_64", "reads x86_64 system call numbers")
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            [str(APP_EXEC), "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(r,),
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_await_plan(r).encode().decode())
        proc.stdin.close()
        # it reaches the wait and stays there (x86_64 poll is system call 7; read from /proc,
        # no sleeping) until "1" is written
        deadline = time.monotonic() + 30
        while Path(f"/proc/{proc.pid}/syscall").read_text().split()[0] != "7":
            assert proc.poll() is None and time.monotonic() < deadline
        assert proc.poll() is None
        os.write(w, b"1")
        assert proc.stdout.read() == "went on\n" and proc.wait(timeout=30) == 0
    finally:
        os.close(r)
        os.close(w)


# -- credentials and seccomp ----------------------------------------------------------------


def _status(plan: LaunchPlan) -> dict[str, str]:
    proc = _run(plan)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(":\t", 1) for line in proc.stdout.splitlines() if ":\t" in line)


def test_credentials_bounding_set_ids_and_caps() -> None:
    require_root()
    kill = 1 << 5  # CAP_KILL
    plan = _plan(
        ("bounding", kill),
        ("nnp",),
        ("ids", 1000, 1001, 2, 5, 7),
        ("caps", kill),
        _exec(["/bin/cat", "/proc/self/status"], []),
    )
    status = _status(plan)
    assert status["Uid"].split() == ["1000"] * 4 and status["Gid"].split() == ["1001"] * 4
    assert status["Groups"].split() == ["5", "7"]
    assert int(status["CapBnd"], 16) == kill
    assert int(status["CapEff"], 16) == 0  # a non-root program gets no effective set
    assert status["NoNewPrivs"] == "1"


def test_ambient_capabilities_survive_exec_for_a_non_root_app() -> None:
    require_root()
    bind = 1 << 10  # CAP_NET_BIND_SERVICE
    plan = _plan(
        ("bounding", bind),
        ("keepcaps",),
        ("ids", 1000, 1000, 0),
        ("caps", bind),
        ("ambient", bind),
        _exec(["/bin/cat", "/proc/self/status"], []),
    )
    status = _status(plan)
    assert int(status["CapAmb"], 16) == bind and int(status["CapEff"], 16) == bind


def _seccomp(policy: SeccompPolicy) -> tuple[str | int, ...]:
    names = sorted(set(policy.syscalls))
    return ("seccomp", int(policy.mode == "retain"), policy.errno, len(names), *names)


def test_seccomp_filter_refuses_with_its_errno() -> None:
    require_root()
    unshare = require_tool("unshare")
    plan = _plan(("nnp",), _seccomp(DEFAULT_POLICY), _exec([unshare, "--mount", "true"], []))
    proc = _run(plan)
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    # and without the filter, the same command works (we are root)
    assert _run(_plan(_exec([unshare, "--mount", "true"], []))).returncode == 0


def _export_bpf(policy: SeccompPolicy) -> bytes:
    proc = _export_plan(_seccomp(policy))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# one instruction, "return SECCOMP_RET_ALLOW": told apart from anything libseccomp compiles
ALLOW_ALL = struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)


def _export_plan(*steps: tuple[str | int, ...]) -> subprocess.CompletedProcess[bytes]:
    r, w = os.pipe()
    os.write(w, _plan(*steps).encode())
    os.close(w)
    try:
        return subprocess.run(
            [str(APP_EXEC), "--export-bpf", str(r)], pass_fds=(r,), capture_output=True
        )
    finally:
        os.close(r)


@pytest.mark.parametrize("retain", [1, 0])
def test_a_filter_naming_an_unknown_system_call_is_refused(retain: int) -> None:
    """A typo cannot silently allow (remove) or block (retain) nothing: refused, nothing run."""
    names = sorted({*DEFAULT_POLICY.syscalls, "nosuchsyscall"})
    plan = _plan(("seccomp", retain, errno.EPERM, len(names), *names), _exec(["/bin/true"], []))
    proc = _run(plan)
    assert proc.returncode == 254
    assert 'seccomp: unknown system call "nosuchsyscall"' in proc.stderr


@pytest.mark.parametrize(
    "rules", [(1, "write"), (1, "exit_group"), (0, "execve"), (0, "mkdir", "execve")]
)
def test_a_filter_that_blocks_execve_is_refused(rules: tuple[str | int, ...]) -> None:
    """The app could never start: said on one line (it used to die of SIGSEGV, silently)."""
    retain, *names = rules
    plan = _plan(("seccomp", retain, errno.EPERM, len(names), *names), _exec(["/bin/true"], []))
    proc = _run(plan)
    assert proc.returncode == 254
    assert "seccomp: the filter blocks execve, which starts the app" in proc.stderr


@pytest.mark.parametrize("retain", [1, 0])
def test_a_filter_never_blocks_ending(retain: int) -> None:
    """exit and exit_group run whatever the rules say, so the app ends with its own status
    (denied both, glibc's _exit falls through to a crash)."""
    require_root()
    ends = {"exit", "exit_group"}
    names = sorted(set(DEFAULT_POLICY.syscalls) - ends) if retain else sorted(ends)
    plan = _plan(
        ("nnp",),
        ("seccomp", retain, errno.EPERM, len(names), *names),
        _exec(["/bin/sh", "-c", "exit 3"], []),
    )
    assert _run(plan).returncode == 3


def test_a_filter_compiled_beforehand_is_loaded_as_given() -> None:
    """seccomp-bpf HEX (rkt's default, compiled at make setup): those instructions, as is."""
    proc = _export_plan(("seccomp-bpf", (ALLOW_ALL * 2).hex()))
    assert proc.returncode == 0 and proc.stdout == ALLOW_ALL * 2
    for bad in ("", ALLOW_ALL.hex()[:-2], "zz" * 8):
        proc = _export_plan(("seccomp-bpf", bad))
        assert proc.returncode == 254 and b"seccomp-bpf: not" in proc.stderr


def test_a_prebuilt_filter_is_enforced() -> None:
    require_root()
    unshare = require_tool("unshare")
    bpf = (NATIVE_DIR / prebuilt.PREBUILT).read_bytes()[len(prebuilt.step_bytes()) :]
    plan = _plan(("nnp",), ("seccomp-bpf", bpf.hex()), _exec([unshare, "--mount", "true"], []))
    proc = _run(plan)
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr


def test_the_shipped_prebuilt_filter_is_what_app_exec_compiles() -> None:
    shipped = (NATIVE_DIR / prebuilt.PREBUILT).read_bytes()
    step = prebuilt.step_bytes()
    assert shipped.startswith(step)
    assert shipped[len(step) :] == _export_bpf(DEFAULT_POLICY)


CLONE_NEW_FLAGS = (
    *(0x80, 0x20000, 0x2000000, 0x4000000),  # CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS
    *(0x8000000, 0x10000000, 0x20000000, 0x40000000),  # CLONE_NEWIPC, NEWUSER, NEWPID, NEWNET
)


@pytest.mark.parametrize("kind", ["default", "remove"])
def test_filter_matches_an_independent_binding(kind: str) -> None:
    """app-exec compiles the same BPF as pyseccomp given the same rules (build_filter's)."""
    import pyseccomp  # a dev dependency, for this comparison only

    if kind == "default":
        policy = DEFAULT_POLICY
    else:
        policy = policy_from_set("remove", ["@rkt/default-blacklist"], None)
    retain = policy.mode == "retain"
    blocked = pyseccomp.ERRNO(policy.errno)
    theirs = pyseccomp.SyscallFilter(blocked if retain else pyseccomp.ALLOW)
    theirs.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    theirs.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    theirs.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)  # a binary tree of syscall numbers
    for name in sorted(set(policy.syscalls)):
        if name in ("clone", "clone3"):
            continue
        try:
            theirs.add_rule(pyseccomp.ALLOW if retain else blocked, name)
        except ValueError:  # a name this architecture's table does not have: skipped
            continue
    if retain:
        arg = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, sum(CLONE_NEW_FLAGS), 0)
        theirs.add_rule(pyseccomp.ALLOW, "clone", arg)
    else:
        for flag in CLONE_NEW_FLAGS:
            theirs.add_rule(blocked, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    theirs.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    with open(os.memfd_create("theirs"), "w+b") as out:
        theirs.export_bpf(out)
        expected = os.pread(out.fileno(), os.fstat(out.fileno()).st_size, 0)
    assert _export_bpf(policy) == expected
