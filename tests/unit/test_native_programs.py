"""The ns flavor's native resident programs (src/rkt/stage1/native), driven directly.

``run-waiter`` and ``pod-supervisor`` are what a running pod keeps resident; the pod tests drive
them through ``rkt run``, these pin down their contract (argv, signals, files) on their own,
without root: the supervisor works as any parent (PID 1 of a pod only adds orphan reaping).
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rkt.errors import PodError
from rkt.stage0.stage1_image import NATIVE_DIR
from rkt.stage1.common.control import ControlRequest, call_pod_init
from rkt.stage1.common.poddir import CONTROL_SOCKET
from tests.conftest import require, require_root

WAITER = NATIVE_DIR / "run-waiter"
SUPERVISOR = NATIVE_DIR / "pod-supervisor"


@pytest.fixture(autouse=True)
def _built() -> None:
    require(WAITER.exists() and SUPERVISOR.exists(), "native programs not built (make setup)")


def _blocked(*signals: int) -> object:
    """preexec_fn: start with ``signals`` blocked, as the Python entrypoints hand over."""
    return lambda: signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))


# -- run-waiter -------------------------------------------------------------------------------


def test_waiter_exits_with_the_child_status() -> None:
    proc = subprocess.run(["sh", "-c", f'(exit 7) & exec "{WAITER}" $!'], timeout=10)
    assert proc.returncode == 7


def test_waiter_reaps_its_other_children(tmp_path: Path) -> None:
    """A CNI pod's network attacher is the run process's child too: reaped as it exits, while
    the waiter goes on waiting for the init."""
    go = tmp_path / "go"
    os.mkfifo(go)
    script = f'true & echo $!; head -c1 "{go}" >/dev/null & exec "{WAITER}" $!'
    proc = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.PIPE, text=True, preexec_fn=_blocked(signal.SIGCHLD)
    )
    assert proc.stdout is not None
    other = Path(f"/proc/{proc.stdout.readline().strip()}")
    deadline = time.monotonic() + 30
    while other.exists():  # a zombie until the waiter reaps it (polled in /proc, no sleeping)
        assert proc.poll() is None and time.monotonic() < deadline
    with open(go, "w") as f:  # now the waited-for child ends
        f.write("x")
    assert proc.wait(timeout=30) == 0


def test_waiter_forwards_sigterm() -> None:
    # The signal is blocked (as the run entrypoint blocks it before forking the init) and
    # arrives before the exec: it stays pending and the waiter reads it.
    # (The child inherits the blocked SIGTERM, as sh cannot unblock it; its trap does.)
    child = "sh -c 'trap \"exit 9\" TERM; while :; do sleep 0.05; done'"
    script = f'{child} & kill -TERM $$; exec "{WAITER}" $!'
    proc = subprocess.Popen(["sh", "-c", script], preexec_fn=_blocked(signal.SIGTERM))
    assert proc.wait(timeout=10) == 9


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_waiter_forwards_hup_and_int_as_sigterm(signum: int) -> None:
    # the child dies of the SIGTERM: 128+15, as a shell reports it
    script = f'sleep 30 & kill -{signum} $$; exec "{WAITER}" $!'
    proc = subprocess.Popen(["sh", "-c", script], preexec_fn=_blocked(signum))
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM


def test_waiter_interactive_leaves_sigint_to_the_app() -> None:
    # Forwarded, the SIGTERM would end the child (143); left alone, it exits 4 by itself.
    script = f'(sleep 2; exit 4) & kill -INT $$; exec "{WAITER}" --interactive $!'
    proc = subprocess.Popen(["sh", "-c", script], preexec_fn=_blocked(signal.SIGINT))
    assert proc.wait(timeout=10) == 4


def test_waiter_sends_stop_requests_to_the_signal_pid(tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    # WAIT_PID is a child that exits 5 once SIGNAL_PID (another child) got SIGTERM.
    script = textwrap.dedent(
        f"""
        sh -c 'trap "touch {marker}; exit 0" TERM; while :; do sleep 0.05; done' & target=$!
        sh -c 'while [ ! -e {marker} ]; do sleep 0.05; done; exit 5' & waited=$!
        kill -TERM $$
        exec "{WAITER}" "$waited" "$target"
        """
    )
    proc = subprocess.Popen(["sh", "-c", script], preexec_fn=_blocked(signal.SIGTERM))
    assert proc.wait(timeout=10) == 5


def test_waiter_ignore_signals_only_relays() -> None:
    script = f'(sleep 0.3; exit 4) & kill -TERM $$; exec "{WAITER}" --ignore-signals $!'
    proc = subprocess.Popen(["sh", "-c", script], preexec_fn=_blocked(signal.SIGTERM))
    assert proc.wait(timeout=10) == 4


def test_waiter_refuses_a_bad_command_line() -> None:
    proc = subprocess.run([str(WAITER)], capture_output=True, timeout=10)
    assert proc.returncode == 254
    assert b"usage" in proc.stderr


# -- pod-supervisor ---------------------------------------------------------------------------

# Forks the "apps" given as shell commands, each with its own stdout/stderr pipes and session,
# then execs the supervisor with them (as rkt.stage1.ns.init does).
LAUNCHER = textwrap.dedent(
    """
    import os, signal, sys, json
    sup, interactive, pod, oom = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[5]
    apps = json.loads(sys.argv[4])
    presignal = int(sys.argv[6])
    args = [sup] + (["--interactive"] if interactive else []) + ["--"]
    for name, cmd in apps:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            os.setsid()
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.execv("/bin/sh", ["sh", "-c", cmd])
        os.close(out_w)
        os.close(err_w)
        for fd in (out_r, err_r):
            os.set_inheritable(fd, True)
        args += [name, str(pid), str(out_r), str(err_r), f"{pod}/{name}.log",
                 f"{pod}/{name}", f"{pod}/{name}.json", oom if name == "oomed" else "-",
                 str(pid), "1000", "2000", "-", "-", "-"]
    print("ready", flush=True)
    if presignal:  # blocked: pending across the exec, as a stop request sent during setup
        os.kill(os.getpid(), presignal)
    os.execv(sup, args)
    """
)


def _supervise(
    tmp_path: Path,
    apps: list[tuple[str, str]],
    *,
    interactive: bool = False,
    stdout: int = -1,
    presignal: int = 0,
) -> subprocess.Popen[bytes]:
    oom = tmp_path / "memory.oom_control"
    oom.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    handoff = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
    argv = [sys.executable, "-c", LAUNCHER, str(SUPERVISOR), "1" if interactive else "0"]
    argv += [str(tmp_path), json.dumps(apps), str(oom), str(presignal)]
    return subprocess.Popen(
        argv, stdout=stdout, stderr=subprocess.PIPE, preexec_fn=_blocked(*handoff)
    )


def _status(tmp_path: Path, name: str) -> dict[str, object]:
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


def test_supervisor_copies_output_and_writes_cri_logs(tmp_path: Path) -> None:
    proc = _supervise(
        tmp_path,
        [("talker", "echo one; printf 'two\\nthree'; echo oops >&2")],
        stdout=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == b"ready\none\ntwo\nthree"
    assert err == b"oops\n"
    entries = (tmp_path / "talker.log").read_bytes().splitlines()
    parsed = [e.split(b" ", 3) for e in entries]
    assert all(stamp.endswith(b"Z") and len(stamp) == 30 for stamp, *_ in parsed)
    stdout = [(kind, text) for _, stream, kind, text in parsed if stream == b"stdout"]
    stderr = [(kind, text) for _, stream, kind, text in parsed if stream == b"stderr"]
    # chunks as they were read: every full line "F", a tail without newline "P"
    assert b"".join(t + (b"\n" if k == b"F" else b"") for k, t in stdout) == b"one\ntwo\nthree"
    assert stdout[-1] == (b"P", b"three")
    assert stderr == [(b"F", b"oops")]
    assert (tmp_path / "talker").read_text() == "0"
    st = _status(tmp_path, "talker")
    assert st["state"] == "exited" and st["exit_code"] == 0 and st["signal"] is None
    assert st["created"] == 1000 and st["started"] == 2000 and st["oom_killed"] is False
    assert isinstance(st["finished"], int) and st["finished"] > 2000


def test_supervisor_failing_app_stops_the_others(tmp_path: Path) -> None:
    proc = _supervise(tmp_path, [("sleeper", "exec sleep 30"), ("failer", "exit 3")])
    assert proc.wait(timeout=10) == 3  # the first failure is the pod's status
    assert (tmp_path / "failer").read_text() == "3"
    sleeper = _status(tmp_path, "sleeper")
    assert sleeper["exit_code"] == 128 + signal.SIGTERM and sleeper["signal"] == signal.SIGTERM


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_supervisor_stops_the_pod_on_a_stop_signal(tmp_path: Path, signum: int) -> None:
    proc = _supervise(tmp_path, [("a", "exec sleep 30"), ("b", "exec sleep 30")], presignal=signum)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    for name in ("a", "b"):
        assert _status(tmp_path, name)["signal"] == signal.SIGTERM


def test_supervisor_interactive_ignores_sigint(tmp_path: Path) -> None:
    # Stopped, the app would die of SIGTERM (143); left alone, it exits 4 by itself.
    apps = [("a", "sleep 2; exit 4")]
    proc = _supervise(tmp_path, apps, interactive=True, presignal=signal.SIGINT)
    assert proc.wait(timeout=10) == 4


def test_supervisor_reports_oom_kills(tmp_path: Path) -> None:
    proc = _supervise(tmp_path, [("oomed", "exit 137")])
    assert proc.wait(timeout=10) == 137
    assert _status(tmp_path, "oomed")["oom_killed"] is True


def test_supervisor_refuses_a_bad_command_line(tmp_path: Path) -> None:
    proc = subprocess.run([str(SUPERVISOR), "--", "only", "two"], capture_output=True, timeout=10)
    assert proc.returncode == 254
    assert b"not a multiple of 14" in proc.stderr


# -- pod-init (a pod's start: every pod test runs it; here its refusals) ---------------------

INIT = NATIVE_DIR / "pod-init"


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (b"label\0stage1: pod init\0frobnicate\0", 'unknown pod plan step "frobnicate"'),
        (b"label\0stage1: pod init\0", "has no supervise step"),
        (b"label\0stage1: pod init\0wait\0", "wait: no fork before it"),
        (b"idmap\0/\0/mnt\0", "idmap: no userns step before it"),
        (b"userns-go\0pid\0/bin/true\x000\0", "userns-go: no userns step before it"),
        (b"userns-child\0", "userns-child: no userns step before it"),
        (b"unshare\0lots\0", 'has "lots" where a number belongs'),
        (b"hostname", "does not end with a NUL"),
    ],
)
def test_pod_init_refuses_a_bad_plan(plan: bytes, message: str) -> None:
    require(INIT.exists(), "native programs not built (make setup)")
    r, w = os.pipe()
    os.write(w, plan)
    os.close(w)
    try:
        proc = subprocess.run(
            [str(INIT), str(r)], pass_fds=(r,), capture_output=True, text=True, timeout=10
        )
    finally:
        os.close(r)
    assert proc.returncode == 254
    assert proc.stderr.startswith("stage1: pod init: ") and message in proc.stderr


def _pod_init(steps: list[str], *fds: int) -> subprocess.CompletedProcess[str]:
    require(INIT.exists(), "native programs not built (make setup)")
    r, w = os.pipe()
    os.write(w, "\0".join(steps).encode() + b"\0")
    os.close(w)
    try:
        return subprocess.run(
            [str(INIT), str(r)], pass_fds=(r, *fds), capture_output=True, text=True, timeout=30
        )
    finally:
        os.close(r)


@pytest.mark.parametrize("outcome", ["up", "failed", "attacher died"])
def test_pod_init_waits_for_the_network_before_the_pod_is_ready(
    tmp_path: Path, outcome: str
) -> None:
    """The "network" step: the attacher's barrier; without apps started, a failure ends the
    pod at once (254, the attacher's error on one line) and the pod is never marked ready."""
    error = tmp_path / "net-error"
    if outcome == "failed":
        error.write_text('network "x": plugin "ptp" ADD: error 11: no luck\n')
    r, w = os.pipe()
    if outcome == "up":
        os.write(w, b"1")
    os.close(w)
    steps = ["label", "stage1: pod init", "network", str(r), str(error)]
    steps += ["ready", str(tmp_path / "ready"), "supervise", str(SUPERVISOR)]
    try:
        proc = _pod_init(steps, r)
    finally:
        os.close(r)
    if outcome == "up":
        assert (proc.returncode, proc.stderr) == (0, "")
        assert os.readlink(tmp_path / "ready") == "ready"
        return
    assert proc.returncode == 254
    cause = "the network attacher died" if outcome == "attacher died" else error.read_text()
    assert proc.stderr == f"stage1: pod init: {cause.strip()}\n"
    assert not (tmp_path / "ready").is_symlink()


def test_pod_init_runs_app_exec_itself_only_for_the_launcher_beside_it(tmp_path: Path) -> None:
    """pod-init carries app-exec's code: an app whose launcher is the app-exec beside pod-init
    (by its absolute path, or relative to the working directory) is started by that code in
    pod-init's fork, without an exec; a plan whose seccomp rules must be compiled goes to that
    app-exec program (pod-init's copy has no libseccomp), and any other launcher is exec'd as
    the plan says. Here the app-exec beside pod-init only records that it was exec'd."""
    require(INIT.exists(), "native programs not built (make setup)")
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    shutil.copy2(INIT, stage1 / "pod-init")
    marks = tmp_path / "exec-marks"
    recorder = f'#!/bin/sh\necho "$0" >> {marks}\nexec {NATIVE_DIR / "app-exec"} "$@"\n'
    for launcher in (stage1 / "app-exec", tmp_path / "other-launcher"):
        launcher.write_text(recorder)
        launcher.chmod(0o755)
    steps = ["label", "stage1: pod init"]
    apps = [
        ("inside", str(stage1 / "app-exec"), []),
        ("relative", "stage1/app-exec", []),  # from the cwd, as --private-users plans have it
        ("compiles", str(stage1 / "app-exec"), ["seccomp", "0", "1", "1", "reboot"]),
        ("outside", str(tmp_path / "other-launcher"), []),
    ]
    for name, launcher, seccomp in apps:
        plan = tmp_path / f"{name}.plan"
        argv = ["/bin/sh", "-c", f"echo ran > {tmp_path / name}.ran"]
        words = ["label", f"stage1: app {name}", *seccomp, "exec", "/", "3", *argv, "0"]
        plan.write_bytes("\0".join(words).encode() + b"\0")
        status, json_path = tmp_path / name, tmp_path / f"{name}.json"
        steps += ["app", name, launcher, str(plan), str(status), str(json_path), "", "", ""]
    steps += ["start", "0", "supervise", str(SUPERVISOR)]
    r, w = os.pipe()
    os.write(w, "\0".join(steps).encode() + b"\0")
    os.close(w)
    try:
        proc = subprocess.run(
            [str(stage1 / "pod-init"), str(r)],
            cwd=tmp_path,
            pass_fds=(r,),
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=_blocked(signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD),
        )
    finally:
        os.close(r)
    assert (proc.returncode, proc.stderr) == (0, "")
    for name, _, _ in apps:
        assert (tmp_path / name).read_text() == "0"
        assert (tmp_path / f"{name}.ran").exists()
    exec_d = sorted(marks.read_text().splitlines())
    assert exec_d == sorted([str(stage1 / "app-exec"), str(tmp_path / "other-launcher")])


# -- a mutable pod: pod-init's listen step, pod-supervisor serving the control socket --------


def _wait_ready(path: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until pod-init has made the ``ready`` link (after the socket listens), by inotify."""
    from rkt.cli.commands.status import Inotify

    with Inotify() as ino:
        ino.watch(path.parent, 0x080)  # IN_MOVED_TO: the link is renamed into place
        while not path.is_symlink():
            assert proc.poll() is None, proc.communicate()[1]
            ready, _, _ = select.select([ino], [], [], 30)
            assert ready, "pod-init did not get ready"
            ino.drain()


@pytest.fixture
def mutable_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """pod-init with only listen, ready and supervise: an empty mutable pod, without root (no
    namespaces); cwd is its directory, as for the app entrypoints."""
    require(INIT.exists(), "native programs not built (make setup)")
    monkeypatch.chdir(tmp_path)
    apps = tmp_path / "apps"
    apps.mkdir()
    steps = ["label", "stage1: pod init", "listen", CONTROL_SOCKET, str(apps)]
    steps += ["ready", str(tmp_path / "ready"), "supervise", str(SUPERVISOR)]
    r, w = os.pipe()
    os.write(w, "\0".join(steps).encode() + b"\0")
    os.close(w)
    handoff = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
    proc = subprocess.Popen(
        [str(INIT), str(r)], pass_fds=(r,), stderr=subprocess.PIPE, preexec_fn=_blocked(*handoff)
    )
    os.close(r)
    try:
        _wait_ready(tmp_path / "ready", proc)
        yield tmp_path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # a mutable pod ends with 0 when stopped
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _raw(line: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(CONTROL_SOCKET)
        client.sendall(line)
        answer = client.makefile("rb").readline()
    doc = json.loads(answer)
    assert isinstance(doc, dict)
    return doc


def test_mutable_pod_control_socket_is_root_only(mutable_pod: Path) -> None:
    sock = mutable_pod / CONTROL_SOCKET
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("action", ["start", "stop", "rm"])
def test_mutable_pod_refuses_an_unknown_app(mutable_pod: Path, action: str) -> None:
    with pytest.raises(PodError, match=r'^app "ghost": is not in the pod$'):
        call_pod_init(mutable_pod, ControlRequest(action, "ghost"), timeout=30)


def test_mutable_pod_add_needs_the_apps_launch_record(mutable_pod: Path) -> None:
    with pytest.raises(PodError, match='app "web": its launch record is missing'):
        call_pod_init(mutable_pod, ControlRequest("add", "web"), timeout=30)
    (mutable_pod / "apps" / "web.add").write_bytes(b"label\0x\0overlay\0/nowhere\0")
    with pytest.raises(PodError, match='app "web": its launch record is malformed'):
        call_pod_init(mutable_pod, ControlRequest("add", "web"), timeout=30)
    # still serving, and nothing was added
    with pytest.raises(PodError, match="is not in the pod"):
        call_pod_init(mutable_pod, ControlRequest("start", "web"), timeout=30)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"nonsense\n", "control: malformed request"),
        (b'{"action": "start"}\n', "control: malformed request"),
        (b'{"action": "exec", "app": "web"}\n', "control: unknown action"),
        (b'{"action": "rm", "app": "../etc"}\n', "control: not an app name"),
        (b'{"action": "rm", "app": "a/b"}\n', "control: not an app name"),
        (b'{"action": "rm", "app": "we\\"b"}\n', "control: malformed request"),
    ],
)
def test_mutable_pod_refuses_malformed_requests(mutable_pod: Path, line: bytes, error: str) -> None:
    assert _raw(line) == {"ok": False, "error": error}


def test_mutable_pod_survives_garbage_on_its_control_socket(mutable_pod: Path) -> None:
    """The server parses what root sends it in C: random lines, huge lines, stray quotes and
    backslashes, bytes that are not UTF-8 get a refusal (or a closed connection for a line that
    never ends) and the supervisor keeps serving."""
    rng = random.Random(7)
    alphabet = b'{}":, \\abcdeprt-/.\x00\xff'
    lines = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(150)]
    lines += [b'{"action": "' + b"a" * 3000 + b'", "app": "x"}', b"", b'{"app": "x"}']
    lines += [b'{"action": "rm", "app": "' + b"x" * 300 + b'"}']
    for line in lines:  # one line per connection, as the client sends
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(CONTROL_SOCKET)
            client.sendall(line + b"\n")
            answer = client.makefile("rb").readline()
        doc = json.loads(answer)
        assert doc["ok"] is False and isinstance(doc["error"], str), (line, answer)
    # a line longer than the server reads (4 KiB) is dropped without an answer
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(CONTROL_SOCKET)
        client.sendall(b"x" * 5000 + b"\n")
        try:
            assert client.makefile("rb").readline() == b""
        except ConnectionResetError:
            pass  # closed with the rest of the line unread
    with pytest.raises(PodError, match='app "ghost": is not in the pod'):
        call_pod_init(mutable_pod, ControlRequest("stop", "ghost"), timeout=30)


def test_mutable_pod_serves_others_while_a_client_is_slow(mutable_pod: Path) -> None:
    """A request line is read as it arrives: a client that has sent half of its line holds up
    neither other clients nor the pod, and gets its answer once the line is whole."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.settimeout(30)
        slow.connect(CONTROL_SOCKET)
        slow.sendall(b'{"action": "stop", ')
        with pytest.raises(PodError, match='app "ghost": is not in the pod'):
            call_pod_init(mutable_pod, ControlRequest("rm", "ghost"), timeout=30)
        slow.sendall(b'"app": "slow"}\n')
        answer = json.loads(slow.makefile("rb").readline())
    assert answer == {"ok": False, "error": 'app "slow": is not in the pod'}


# -- pod-init --pin-netns and the "netns" step (CNI pods: no ctypes in the run process) -------


def _ns_id(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def test_pin_netns_pins_a_new_namespace_and_leaves_the_caller_where_it_was(
    tmp_path: Path,
) -> None:
    from rkt.paths import Path as RktPath
    from rkt.stage1.ns.network import pin_netns

    require(INIT.exists(), "native programs not built (make setup)")
    pin = tmp_path / "netns" / "rkt-test"
    own = _ns_id("/proc/self/ns/net")
    pin_netns(RktPath(pin), str(INIT))
    try:
        assert _ns_id(str(pin)) != own  # a namespace, pinned, not ours
        assert _ns_id("/proc/self/ns/net") == own
        # pod-init's "netns" step joins it through a descriptor: only lo there
        fd = os.open(pin, os.O_RDONLY)
        try:
            proc = _pod_init(["label", "stage1: pod init", "netns", str(fd), "frobnicate"], fd)
        finally:
            os.close(fd)
        assert 'unknown pod plan step "frobnicate"' in proc.stderr  # it got past "netns"
    finally:
        subprocess.run(["umount", str(pin)], check=True)
        pin.unlink()


def test_pin_netns_reports_why_it_could_not_and_leaves_nothing(tmp_path: Path) -> None:
    from rkt.errors import NetworkError
    from rkt.paths import Path as RktPath
    from rkt.stage1.ns.network import pin_netns

    require(INIT.exists(), "native programs not built (make setup)")
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(NetworkError, match=r"stage1: network namespace: create .*: file exists"):
        pin_netns(RktPath(taken), str(INIT))
    assert taken.read_text() == ""  # not ours: left alone


def test_pod_init_refuses_a_netns_step_without_a_namespace() -> None:
    proc = _pod_init(["label", "stage1: pod init", "netns", "0"])
    assert proc.returncode == 254
    assert "join the pod's network namespace" in proc.stderr


# -- --private-users: pod-init's userns steps (the run process's part, then the helper's) ----


def _pod_init_owning(steps: list[str], *fds: int) -> tuple[subprocess.Popen[str], str]:
    """pod-init with the plan ``steps`` and ``fds``, which only it keeps (closed here), as when
    the run process execs it; returns it ended, and its stderr."""
    r, w = os.pipe()
    os.write(w, "\0".join(steps).encode() + b"\0")
    os.close(w)
    try:
        proc = subprocess.Popen(
            [str(INIT), str(r)], pass_fds=(r, *fds), stderr=subprocess.PIPE, text=True
        )
    finally:
        for fd in (r, *fds):
            os.close(fd)
    _, stderr = proc.communicate(timeout=30)
    return proc, stderr


def test_userns_steps_start_a_helper_as_root_of_a_mapped_namespace(tmp_path: Path) -> None:
    """The run process forks the helper, maps it (0 -> 1000000, 65536), releases it and
    publishes the pid of the init the helper forked (the pid file), then becomes the waiter of
    the helper. The helper skips the run process's strings and goes on as root of its
    namespace: a directory its init makes is owned by host uid 1000000 (the overlay mount that
    follows is refused: the helper has no mount namespace of its own here); the helper's
    waiter relays the init's 254 to the run process's waiter."""
    require_root()
    shared = Path(tempfile.mkdtemp(prefix="rkt-userns-test-", dir="/tmp"))
    shared.chmod(0o777)  # the helper is no one on the host
    pid_r, pid_w = os.pipe()
    start_r, start_w = os.pipe()
    waiter = str(NATIVE_DIR / "run-waiter")
    try:
        ours = ["userns-go", str(tmp_path / "pid"), waiter, "1", "run-waiter", "userns-child"]
        helper = ["label", "helper", "fork-fds", str(pid_w), str(start_r), waiter, "2"]
        helper += ["run-waiter", "--ignore-signals", "wait"]
        helper += ["overlay", f"{shared}/root", "lowerdir=/tmp"]
        steps = ["label", "stage1: private users", "userns", "1000000", "65536"]
        steps += [str(fd) for fd in (pid_r, pid_w, start_r, start_w)]
        steps += [str(len(ours)), "0", *ours, *helper]
        proc, stderr = _pod_init_owning(steps, pid_r, pid_w, start_r, start_w)
        assert proc.returncode == 254, stderr
        assert stderr.startswith(f"helper: mount the overlay on {shared}/root: "), stderr
        assert (shared / "root").stat().st_uid == 1000000
        assert (tmp_path / "pid").read_text().isdigit()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_userns_helper_refuses_a_plan_whose_steps_it_cannot_find() -> None:
    """SKIP must land just after "userns-child": anything else is refused by the helper."""
    require_root()
    pid_r, pid_w = os.pipe()
    start_r, start_w = os.pipe()
    steps = ["label", "stage1: private users", "userns", "1000000", "65536"]
    steps += [str(fd) for fd in (pid_r, pid_w, start_r, start_w)]
    steps += ["1", "0", "userns-go", "/nonexistent/pid", "/bin/true", "0", "userns-child"]
    proc, stderr = _pod_init_owning(steps, pid_r, pid_w, start_r, start_w)
    assert proc.returncode == 254
    assert "userns: the helper's steps do not start after 1 strings" in stderr
    assert "stage1: private users: the pod init did not start" in stderr


# -- the spawned start: pod-init started before its plan is complete ---------------------------


def test_pod_init_performs_each_step_as_it_arrives(tmp_path: Path) -> None:
    """pod-init reads its plan as it goes: a step is done once its strings have arrived, while
    the writer still makes the rest (the run process's spawned start); a plan cut short is
    still refused."""
    require(INIT.exists(), "native programs not built (make setup)")
    target = tmp_path / "written"
    target.write_text("")
    r, w = os.pipe()
    proc = subprocess.Popen([str(INIT), str(r)], pass_fds=(r,), stderr=subprocess.PIPE, text=True)
    os.close(r)
    try:
        os.write(w, b"label\0stage1: pod init\0write\0" + bytes(target) + b"\0early\0")
        for _ in range(1000):  # (polling a file pod-init writes, not a sleep of a guessed length)
            if target.read_text() == "early":
                break
            select.select([], [], [], 0.01)
        assert target.read_text() == "early"
        assert proc.poll() is None  # waiting for the rest of its plan
    finally:
        os.close(w)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 254
    assert stderr.startswith("stage1: pod init: the pod plan has no supervise step")
    assert stderr.count("\n") == 1


SPAWN_SCRIPT = """
import os, sys
init, waiter, pid_file, ready, supervisor, first = sys.argv[1:7]
plan_r, plan_w = os.pipe()
pid_r, pid_w = os.pipe()
os.set_inheritable(plan_r, True)
os.set_inheritable(pid_w, True)
child = os.posix_spawn(init, ["pod-init", "--parent", str(os.getpid()), str(plan_r)], {})
os.close(plan_r)
os.close(pid_w)
steps = ["label", "stage1: pod init", *first.split()]
steps += ["fork-sibling", pid_file, str(pid_w), "pdeathsig", "wait", "ready", ready]
steps += ["supervise", supervisor]
try:
    os.write(plan_w, "\\0".join(steps).encode() + b"\\0")
except BrokenPipeError:
    pass
os.close(plan_w)
os.set_inheritable(pid_r, True)
os.execv(waiter, ["run-waiter", "--spawned", str(child), str(pid_r)])
"""


def _spawned_start(tmp_path: Path, first: str = "") -> subprocess.CompletedProcess[str]:
    """A run process as stage1/ns/start.py SpawnedInit is: pod-init spawned, its plan written
    (``first``: steps before the fork), then run-waiter --spawned exec'd."""
    require(INIT.exists(), "native programs not built (make setup)")
    args = [str(INIT), str(WAITER), str(tmp_path / "pid"), str(tmp_path / "ready")]
    args += [str(SUPERVISOR), first]
    return subprocess.run(
        [sys.executable, "-c", SPAWN_SCRIPT, *args], capture_output=True, text=True, timeout=30
    )


def test_spawned_pod_init_forks_the_init_for_the_run_process(tmp_path: Path) -> None:
    """The "fork-sibling" step: the init is the run process's child, so run-waiter --spawned
    (the run process after its exec) waits for it and exits with its status; pod-init wrote
    the pid file and released the init, which marked the pod ready and supervised it (no
    apps: 0)."""
    proc = _spawned_start(tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert (tmp_path / "pid").read_text().isdigit()
    assert os.readlink(tmp_path / "ready") == "ready"


def test_spawned_pod_init_failing_before_the_fork_is_the_run_status(tmp_path: Path) -> None:
    """pod-init fails before it forked the init: its message on stderr, its 254 is rkt run's
    (run-waiter --spawned reads no pid), and no pod was published."""
    proc = _spawned_start(tmp_path, "unshare lots")
    assert proc.returncode == 254
    assert proc.stderr.startswith('stage1: pod init: the pod plan has "lots" where a number')
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "pid").exists()


def test_spawned_pod_init_leaves_quietly_when_its_run_process_is_gone() -> None:
    """A "parent PID" step where PID is not (or no longer) our parent: the run process died before
    pod-init could arrange to die with it; pod-init exits 254 at once, saying nothing (the
    run process said why, if it could)."""
    proc = _pod_init(["label", "stage1: pod init", "parent", "1", "supervise", "/nonexistent"])
    assert (proc.returncode, proc.stderr) == (254, "")


def test_pod_init_refuses_fork_sibling_without_parent() -> None:
    proc = _pod_init(["label", "stage1: pod init", "fork-sibling", "/nonexistent/pid", "9"])
    assert proc.returncode == 254
    assert "fork-sibling: no parent step before it" in proc.stderr


def test_waiter_spawned_refuses_a_bad_command_line() -> None:
    proc = subprocess.run(
        [str(WAITER), "--spawned", "1"], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 254
    assert "run-waiter [--interactive] --spawned POD_INIT_PID PID_FD" in proc.stderr


DYING_SCRIPT = """
import os, sys
init, written = sys.argv[1:3]
plan_r, plan_w = os.pipe()
os.set_inheritable(plan_r, True)
os.posix_spawn(init, ["pod-init", "--parent", str(os.getpid()), str(plan_r)], {})
steps = {"nothing": [], "mid-step": ["label", "stage1: pod init", "hostname"]}[written]
os.write(plan_w, "\\0".join(steps).encode())  # cut in the middle of a step, or empty
os.close(plan_w)  # as the run process's exit does, a moment before pod-init's parent-death signal
os.read(0, 1)  # (one round trip through the test: pod-init reads the end of its plan meanwhile)
os._exit(9)
"""


@pytest.mark.parametrize("written", ["nothing", "mid-step"])
def test_spawned_pod_init_says_nothing_when_its_run_process_dies_mid_plan(written: str) -> None:
    """The run process is killed before or while it writes the plan: pod-init reads a plan cut
    short before the kernel's parent-death signal reaches it, and leaves without a word (the
    run process's death is the news, not the plan's end)."""
    require(INIT.exists(), "native programs not built (make setup)")
    for _ in range(10):  # (the race it rides out is between two kernel steps)
        proc = subprocess.run(
            [sys.executable, "-c", DYING_SCRIPT, str(INIT), written],
            input="x", capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert (proc.returncode, proc.stderr) == (9, "")
