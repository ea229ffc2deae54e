#!/usr/bin/python3 -I
"""A stage1 written only from docs/stage1-abi.md (interface version 1), to prove the ABI is real.

Standalone on purpose: it imports nothing from rkt. One file serves every entrypoint; the build
script installs it as ``/run``, ``/enter``, ``/stop``, ``/gc`` and ``/init`` in the stage1 rootfs
and the program dispatches on the name it was started as.

- ``run`` (§3 run) is a small supervisor: it starts the pod init under util-linux
  ``unshare --pid --fork --kill-child --mount --uts --ipc [--net]``, forwards SIGTERM/SIGINT to it,
  and exits with its status. It dies with its parent (PR_SET_PDEATHSIG) and unshare's
  ``--kill-child`` takes the init, and so the whole PID namespace, with it: no orphan apps.
- ``init`` (internal, not an entrypoint) is PID 1 of the pod: it writes ``pid``, sets the
  hostname, starts each app in its own mount namespace (an overlayfs over the read-only app rootfs
  with ``overlay/<app>/{upper,work}``, fresh /proc, a tiny /dev, a tmpfs /tmp, the app's volumes),
  chroots into it, copies app output to its own stdout/stderr and to ``rkt/logs/<app>.log`` (CRI
  format), keeps ``rkt/status/<app>`` and ``<app>.json`` current, and ends the pod when every app
  has exited (an app that fails stops the others: SIGTERM, SIGKILL after 10 s).
- ``enter`` joins the app's namespaces and root with util-linux ``nsenter``.
- ``stop`` signals the pod init; ``gc`` has nothing to release (no cgroups, no network state:
  everything this stage1 creates lives in namespaces that die with the pod).

Users and groups must be numeric; isolators, capabilities and seccomp are not applied (this is a
test of the contract, not a secure runtime).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
STOP_GRACE = 10.0

STATUS_DIR = "stage1/rootfs/rkt/status"
LOGS_DIR = "stage1/rootfs/rkt/logs"
ENV_DIR = "stage1/rootfs/rkt/env"
READY = "stage1/rootfs/rkt/supervisor-status"
STAGE2 = "stage1/rootfs/opt/stage2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fail(message: str, code: int = 254) -> None:
    sys.stderr.write(f"abi-stage1: {message}\n")
    sys.exit(code)


def parse_flags(argv: list[str], known: dict[str, bool]) -> tuple[dict[str, str], list[str]]:
    """``known`` maps a flag to whether it takes a value (``--flag=value``); others are refused."""
    flags: dict[str, str] = {}
    positional: list[str] = []
    for arg in argv:
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in known or known[name] != bool(eq):
                fail(f"unknown flag {arg}")
            flags[name] = value if eq else "true"
        else:
            positional.append(arg)
    return flags, positional


def write_atomic(path: str, data: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)


def now_ns() -> int:
    return time.time_ns()


# -- run: the supervisor -------------------------------------------------------------------------


def main_run(argv: list[str]) -> None:
    flags, positional = parse_flags(
        argv,
        {
            "--debug": False,
            "--net": True,
            "--hostname": True,
            "--interactive": False,
            "--insecure-options": True,
            "--mutable": False,
        },
    )
    if len(positional) != 1:
        fail("run: expected exactly one pod UUID")
    uuid = positional[0]
    lock_fd = int(os.environ["RKT_LOCK_FD"])
    net = flags.get("--net", "host")
    hostname = flags.get("--hostname") or f"rkt-{uuid}"
    interactive = "1" if "--interactive" in flags else "0"
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    cmd = [unshare, "--pid", "--fork", "--kill-child", "--mount", "--propagation=private"]
    cmd += ["--uts", "--ipc"]
    if net != "host":
        cmd.append("--net")
    cmd += ["--", os.path.abspath("stage1/rootfs/init"), uuid, hostname, interactive]

    def die_with_parent() -> None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "RKT_LOCK_FD": str(lock_fd)}
    proc = subprocess.Popen(cmd, pass_fds=(lock_fd,), env=env, preexec_fn=die_with_parent)

    def forward(signum: int, _frame: object) -> None:
        try:
            with open("pid") as fh:
                target = int(fh.read().strip())
        except (OSError, ValueError):
            target = proc.pid
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = proc.wait()
    sys.exit(code if code >= 0 else 128 - code)


# -- init: PID 1 of the pod ----------------------------------------------------------------------


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    if (
        LIBC.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        )
        != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def setup_app_root(app: dict, pod: dict) -> str:
    """In a fresh mount namespace: the app's root filesystem, ready to chroot into."""
    if LIBC.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    name = app["name"]
    root = os.path.abspath(f"{STAGE2}/{name}/rootfs")
    os.makedirs(root, exist_ok=True)
    try:  # §2: a layered image lists its read-only trees, top-most first
        with open(f"appsinfo/{name}/lowerdirs") as fh:
            lower = ":".join(line.strip() for line in fh if line.strip())
    except FileNotFoundError:
        lower = os.path.realpath(f"appsinfo/{name}/rootfs")
    upper, work = os.path.abspath(f"overlay/{name}/upper"), os.path.abspath(f"overlay/{name}/work")
    mount("overlay", root, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    for sub in ("proc", "dev", "tmp"):
        os.makedirs(f"{root}/{sub}", exist_ok=True)
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    mount("tmpfs", f"{root}/dev", "tmpfs", MS_NOSUID, "mode=755")
    for node in ("null", "zero", "random", "urandom", "tty"):
        open(f"{root}/dev/{node}", "w").close()
        mount(f"/dev/{node}", f"{root}/dev/{node}", None, MS_BIND, None)
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for m in app.get("mounts") or []:
        vol = volumes[m["volume"]]
        source = vol["source"] if vol["kind"] == "host" else f"{os.getcwd()}/volumes/{vol['name']}"
        target = root + "/" + m["path"].lstrip("/")
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        mount(source, target, None, MS_BIND | MS_REC, None)
        if vol.get("readOnly"):
            mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    if app.get("readOnlyRootFS"):
        mount("none", root, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    return root


def app_env(app: dict) -> dict[str, str]:
    env = {"PATH": DEFAULT_PATH}
    for item in app["app"].get("environment") or []:
        env[item["name"]] = item["value"]
    return env


def exec_app(app: dict, pod: dict) -> None:
    """Runs in the forked child; never returns."""
    root = setup_app_root(app, pod)
    runtime = app["app"]
    os.chroot(root)
    os.chdir(runtime.get("workingDirectory") or "/")
    gids = [int(g) for g in runtime.get("supplementaryGIDs") or []]
    os.setgroups(gids)
    os.setgid(int(runtime.get("group", "0")))
    os.setuid(int(runtime.get("user", "0")))
    argv = list(runtime["exec"])
    os.execve(argv[0], argv, app_env(app))


class Pod:
    def __init__(self, uuid: str, interactive: bool) -> None:
        self.uuid = uuid
        self.interactive = interactive
        with open("pod") as fh:
            self.manifest = json.load(fh)
        self.apps = {a["name"]: a for a in self.manifest["apps"]}
        self.status: dict[str, dict] = {}
        self.running: dict[int, str] = {}
        self.outputs: dict[int, tuple[str, str]] = {}
        self.partial: dict[int, bytes] = {}
        self.first_failure: int | None = None
        self.kill_at: float | None = None
        self.term_requested = False

    def save_status(self, name: str) -> None:
        write_atomic(f"{STATUS_DIR}/{name}.json", json.dumps(self.status[name]))

    def start(self, name: str, lock_fd: int) -> None:
        app = self.apps[name]
        report_r, report_w = os.pipe()
        out_r = out_w = err_r = err_w = -1
        if not self.interactive:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(lock_fd)  # the apps must not hold the pod lock
                os.close(report_r)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                if not self.interactive:
                    null = os.open("/dev/null", os.O_RDONLY)
                    os.dup2(null, 0)
                    os.dup2(out_w, 1)
                    os.dup2(err_w, 2)
                os.write(report_w, os.readlink("/proc/self").encode())
                os.close(report_w)
                exec_app(app, self.manifest)
            except BaseException as exc:
                os.write(2, f"abi-stage1: app {name}: {exc}\n".encode())
            os._exit(254)
        os.close(report_w)
        host_pid = int(os.read(report_r, 64) or b"0")
        os.close(report_r)
        if not self.interactive:
            os.close(out_w)
            os.close(err_w)
            for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
                os.set_blocking(fd, False)
                self.outputs[fd] = (name, stream)
        self.running[pid] = name
        self.status[name].update(state="running", pid=host_pid, started=now_ns())
        self.save_status(name)

    def log(self, fd: int, data: bytes, final: bool = False) -> None:
        name, stream = self.outputs[fd]
        os.write(1 if stream == "stdout" else 2, data)
        buf = self.partial.pop(fd, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        if rest and final:
            lines.append(rest)
            rest = b""
        if rest:
            self.partial[fd] = rest
        if not lines:
            return
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
        with open(f"{LOGS_DIR}/{name}.log", "ab") as fh:
            for line in lines:
                fh.write(f"{stamp} {stream} F ".encode() + line + b"\n")

    def drain(self, fd: int, final: bool) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                if final:
                    self.close_output(fd)
                return
            if not data:
                self.close_output(fd)
                return
            self.log(fd, data)

    def close_output(self, fd: int) -> None:
        if fd in self.partial:
            self.log(fd, b"", final=True)
        os.close(fd)
        del self.outputs[fd]

    def stop_apps(self) -> None:
        if self.kill_at is not None:
            return
        for pid in self.running:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.kill_at = time.monotonic() + STOP_GRACE

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            name = self.running.pop(pid, None)
            if name is None:
                continue  # an orphan re-parented to us
            code = os.waitstatus_to_exitcode(status)
            sig = -code if code < 0 else 0
            code = 128 + sig if code < 0 else code
            write_atomic(f"{STATUS_DIR}/{name}", f"{code}\n")
            self.status[name].update(
                state="exited", finished=now_ns(), exit_code=code, signal=sig or None
            )
            self.save_status(name)
            if code != 0 and self.first_failure is None:
                self.first_failure = code
                self.stop_apps()

    def loop(self, wake_fd: int) -> int:
        while self.running:
            timeout = None
            if self.kill_at is not None:
                timeout = max(0.0, self.kill_at - time.monotonic())
            ready, _, _ = select.select([wake_fd, *self.outputs], [], [], timeout)
            if wake_fd in ready:
                while True:
                    try:
                        if not os.read(wake_fd, 512):
                            break
                    except BlockingIOError:
                        break
            for fd in ready:
                if fd in self.outputs:
                    self.drain(fd, final=False)
            if self.term_requested:
                self.stop_apps()
            self.reap()
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                for pid in self.running:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for fd in list(self.outputs):
            self.drain(fd, final=True)  # whatever the apps wrote before they exited
        return self.first_failure or 0


def main_init(argv: list[str]) -> None:
    uuid, hostname, interactive = argv
    lock_fd = int(os.environ["RKT_LOCK_FD"])
    host_pid = os.readlink("/proc/self")  # /proc is still the host's: our PID as the host sees it
    socket.sethostname(hostname)
    for d in (STATUS_DIR, LOGS_DIR, ENV_DIR):
        os.makedirs(d, exist_ok=True)
    pod = Pod(uuid, interactive == "1")
    if pod.interactive and len(pod.apps) != 1:
        fail("--interactive needs exactly one app")
    for name in pod.apps:
        pod.status[name] = {
            "name": name,
            "state": "created",
            "pid": None,
            "created": now_ns(),
            "started": None,
            "finished": None,
            "exit_code": None,
            "signal": None,
        }
        pod.save_status(name)
        env = app_env(pod.apps[name])
        write_atomic(f"{ENV_DIR}/{name}", "".join(f"{k}={v}\n" for k, v in env.items()))
    write_atomic("pid", host_pid)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)

    def request_stop(_signum: int, _frame: object) -> None:
        pod.term_requested = True

    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for name in pod.apps:
        pod.start(name, lock_fd)
    tmp = f"{READY}.tmp"
    os.symlink("ready", tmp)
    os.replace(tmp, READY)
    code = pod.loop(wake_r)
    sys.stdout.flush()
    os._exit(code)


# -- enter, stop, gc -----------------------------------------------------------------------------


def read_pid() -> int:
    with open("pid") as fh:
        return int(fh.read().strip())


def main_enter(argv: list[str]) -> None:
    if "--" not in argv:
        fail("enter: expected -- before the command")
    cut = argv.index("--")
    flags, positional = parse_flags(argv[:cut], {"--app": True, "--debug": False})
    command = argv[cut + 1 :]
    if len(positional) != 1 or not command:
        fail("enter: expected a pod UUID, --, and a command")
    with open("pod") as fh:
        manifest = json.load(fh)
    apps = {a["name"]: a for a in manifest["apps"]}
    name = flags.get("--app") or (next(iter(apps)) if len(apps) == 1 else "")
    if name not in apps:
        fail(f"enter: no such app {name!r} (apps: {', '.join(apps)})")
    with open(f"{STATUS_DIR}/{name}.json") as fh:
        status = json.load(fh)
    if status.get("state") != "running":
        fail(f"enter: app {name} is not running")
    runtime = apps[name]["app"]
    env = {"PATH": DEFAULT_PATH}
    try:
        with open(f"{ENV_DIR}/{name}") as fh:
            env.update(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)
    except FileNotFoundError:
        pass
    nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
    cmd = [nsenter, f"--target={status['pid']}", "--mount", "--uts", "--ipc", "--pid"]
    try:
        with open("stage1/config.json") as fh:
            if json.load(fh).get("net", "host") != "host":
                cmd.append("--net")
    except (OSError, ValueError):
        pass
    cmd += ["--root", "--wd", f"--setgid={runtime.get('group', '0')}"]
    cmd += [f"--setuid={runtime.get('user', '0')}", "--", *command]
    os.execve(nsenter, cmd, env)


def main_stop(argv: list[str]) -> None:
    flags, positional = parse_flags(argv, {"--force": False})
    if len(positional) != 1:
        fail("stop: expected exactly one pod UUID")
    try:
        os.kill(read_pid(), signal.SIGKILL if "--force" in flags else signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError):
        pass  # not started yet, or already gone


def main_gc(argv: list[str]) -> None:
    _flags, positional = parse_flags(argv, {"--debug": False})
    if len(positional) != 1:
        fail("gc: expected exactly one pod UUID")
    # Nothing to release: no cgroups, no network state, mounts live in the pod's namespaces.


def main() -> None:
    role = os.path.basename(sys.argv[0])
    handlers = {
        "run": main_run,
        "init": main_init,
        "enter": main_enter,
        "stop": main_stop,
        "gc": main_gc,
    }
    if role not in handlers:
        fail(f"unknown entrypoint {role!r}")
    handlers[role](sys.argv[1:])
    sys.exit(0)


if __name__ == "__main__":
    main()
