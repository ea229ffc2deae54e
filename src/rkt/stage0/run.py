"""Running a prepared pod: lock it, move it to ``run``, and exec the stage1 run entrypoint.

After the ``execve`` the rkt process *is* the stage1: the caller's process tree, cgroup and limits
(``systemd-run -p MemoryMax=…``) apply to the pod. Everything else about the pod's lifetime is the
stage1's business (docs/stage1-abi.md §3). Also: invoking the other entrypoints (enter, stop, gc).
"""

from __future__ import annotations

import os
import sys

from rkt import abi, jsonio
from rkt.errors import PodError, RktError
from rkt.paths import Path
from rkt.pod.pod import PREPARED, RUN, Pod, PodLock, write_atomic
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn

    from rkt.stage0.headstart import HeadStart


class RunOptions(NamedTuple):
    net: str = "default"
    hostname: str | None = None
    interactive: bool = False
    debug: bool = False
    insecure: tuple[str, ...] = ()  # capabilities, paths, seccomp
    mutable: bool = False
    local_config: str | None = None  # where stage1 finds net.d
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    dns_domain: str | None = None
    hosts_entries: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # NAME:[HOSTIP:]HOSTPORT
    private_users: bool = False  # a user namespace with a uid range of its own (uidrange.py)

    def network_flags(self) -> list[str]:
        # Only what the pod uses: a stage1 that knows nothing of CNI still runs host/none pods.
        cni = self.local_config and self.net.split(",")[0].split(":")[0] not in ("host", "none")
        flags = [f"--local-config={self.local_config}"] if cni else []
        flags += [f"--dns={v}" for v in self.dns]
        flags += [f"--dns-search={v}" for v in self.dns_search]
        flags += [f"--dns-opt={v}" for v in self.dns_opt]
        flags += [f"--dns-domain={self.dns_domain}"] if self.dns_domain else []
        flags += [f"--hosts-entry={v}" for v in self.hosts_entries]
        flags += [f"--port={v}" for v in self.ports]
        return flags

    def needs_v2(self) -> list[str]:
        """The options a stage1 of interface version 1 cannot honour."""
        needs = (
            [f"--net={self.net}"]
            if any(n.split(":")[0] not in ("host", "none") for n in self.net.split(","))
            else []
        )
        if self.dns or self.dns_search or self.dns_opt or self.dns_domain:
            needs.append("--dns*")
        if self.hosts_entries:
            needs.append("--hosts-entry")
        if self.ports:
            needs.append("--port")
        if self.private_users:
            needs.append("--private-users")
        return needs

    def stage1_flags(self, version: int = abi.INTERFACE_VERSION) -> list[str]:
        """The run entrypoint's flags, only those the stage1's interface version knows (ABI §4)."""
        if version < abi.V2_NETWORKS:
            unsupported = self.needs_v2()
            if unsupported:
                raise PodError(
                    f"stage1 speaks interface version {version}; {', '.join(unsupported)} "
                    f"needs version {abi.V2_NETWORKS}"
                )
        if self.mutable:
            require_mutable_stage1(version, "--mutable")
        flags = [f"--net={self.net}"]
        if version >= abi.V2_NETWORKS:
            flags += self.network_flags()
        if self.hostname:
            flags.append(f"--hostname={self.hostname}")
        if self.interactive:
            flags.append("--interactive")
        if self.debug:
            flags.append("--debug")
        if self.insecure:
            flags.append("--insecure-options=" + ",".join(self.insecure))
        if self.mutable:
            flags.append("--mutable")
        return flags


def require_mutable_stage1(version: int, what: str) -> None:
    """Mutable pods (run --mutable, the app/* entrypoints) need interface version 3 (ABI §4)."""
    if version < abi.V3_MUTABLE:
        raise PodError(
            f"stage1 speaks interface version {version}; {what} needs version {abi.V3_MUTABLE}"
        )


def entrypoint(pod: Pod, annotation: str) -> Path:
    """The host path of a stage1 entrypoint of this pod (from its stage1 manifest)."""
    try:
        manifest = jsonio.loads(pod.file(abi.STAGE1_MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        raise PodError(f'pod "{pod.uuid}": cannot read its stage1 manifest') from exc
    for ann in manifest.get("annotations", []):
        if ann.get("name") == annotation:
            rel = str(ann.get("value", "")).lstrip("/")
            path = pod.file(abi.STAGE1_ROOTFS) / rel
            if ".." in Path(rel).parts:
                break
            return path
    raise PodError(f'pod "{pod.uuid}": its stage1 has no entrypoint "{annotation}"')


def stage1_interface_version(pod: Pod) -> int:
    """The interface version the pod's stage1 declares (checked against ours at prepare)."""
    try:
        manifest = jsonio.loads(pod.file(abi.STAGE1_MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        raise PodError(f'pod "{pod.uuid}": cannot read its stage1 manifest') from exc
    for ann in manifest.get("annotations", []):
        version = abi.interface_version(ann.get("value"))
        if ann.get("name") == abi.ANN_INTERFACE_VERSION and version is not None:
            return version
    raise PodError(f'pod "{pod.uuid}": its stage1 declares no interface version')


def stage1_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get(
            "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        )
    }
    for key in ("TERM", "LANG", "LC_ALL"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra or {})
    return env


def start_run(
    pod: Pod, options: RunOptions, lock: PodLock | None = None
) -> tuple[PodLock, list[str], dict[str, str]]:
    """Take the pod's lock (``lock``: the caller holds it already, since ``prepare_pod``), move
    it to ``run``; return what to exec."""
    try:
        if pod.phase != PREPARED:
            raise PodError(f'pod "{pod.uuid}": is {pod.state()}, not prepared')
        # Refuse version skew before anything changes: the pod stays prepared.
        flags = options.stage1_flags(stage1_interface_version(pod))
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    if lock is None:
        lock = PodLock(pod.path)
        if not lock.try_exclusive():
            lock.close()
            raise PodError(f'pod "{pod.uuid}": is already being run')
    try:
        write_atomic(
            pod.file(abi.STAGE1_CONFIG),
            jsonio.dumps(
                {
                    "net": options.net,
                    "hostname": options.hostname,
                    "interactive": options.interactive,
                    "insecure": list(options.insecure),
                    "mutable": options.mutable,
                }
            ).encode(),
            durable=False,  # read by this run's stage1; after a power cut the pod has exited
        )
        pod.move_to(RUN)
    except BaseException:
        lock.close()
        raise
    run = entrypoint(pod, abi.ANN_RUN)
    argv = [str(run), *flags, *_private_users_flags(pod, options), pod.uuid]
    env = stage1_env({abi.ENV_LOCK_FD: str(lock.inheritable_fd())})
    return lock, argv, env


def _private_users_flags(pod: Pod, options: RunOptions) -> list[str]:
    if not options.private_users:
        return []
    from rkt.stage0.uidrange import allocate_range

    shift, count = allocate_range(pod.path.parents[2], pod.uuid)  # <dir>/pods/run/<uuid>
    return [f"--private-users={shift}:{count}"]


def save_uuid(pod: Pod, path: str) -> None:
    """``--uuid-file-save``: the pod's UUID, on a line of its own, in ``path``."""
    try:
        Path(path).write_text(pod.uuid + "\n")
    except OSError as exc:
        raise PodError(f'pod "{pod.uuid}": --uuid-file-save "{path}": {exc.strerror}') from exc


def launch(
    pod: Pod, lock: PodLock | None, options: RunOptions, head: HeadStart | None = None
) -> NoReturn:
    """Run a pod just prepared (``rkt run``, ``app sandbox``): move it to ``run`` and exec its
    stage1. A pod the stage1 cannot run (too old for the flags) is removed: nobody asked to
    keep it."""
    try:
        _lock, argv, env = start_run(pod, options, lock)
    except BaseException as exc:
        if head is not None:
            head.abort()
        if isinstance(exc, RktError):
            from rkt.stage0.pods import remove_pod

            try:
                remove_pod(pod)
            except (RktError, OSError):
                pass  # the error that matters is the one raised; gc collects the pod
        raise
    sys.stdout.flush()
    sys.stderr.flush()
    exec_stage1(pod, argv, env, head)


def exec_stage1(
    pod: Pod, argv: list[str], env: dict[str, str], head: HeadStart | None = None
) -> NoReturn:
    """``head``: what stage0 started early for the run entrypoint (stage0/headstart.py): kept
    for it in-process, undone if it is exec'd after all."""
    os.chdir(pod.path)
    from rkt.stage0.inprocess import run_builtin_in_process

    # our own built-in run entrypoint: never returns
    run_builtin_in_process(argv, env, () if head is None else head.fds())
    if head is not None:
        head.abort()
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        raise PodError(f'pod "{pod.uuid}": cannot exec stage1 "{argv[0]}": {exc.strerror}') from exc


def call_entrypoint(
    pod: Pod, annotation: str, args: list[str], *, check: bool = True, timeout: float | None = 60
) -> int:
    """Run a stage1 entrypoint as a child (gc, stop, app/*) with the pod dir as working
    directory: our own built-in entrypoints in a fork of this process (stage0/inprocess.py),
    any other stage1's through ``subprocess``."""
    from rkt.stage0.inprocess import call_builtin_forked

    path = entrypoint(pod, annotation)
    argv = [str(path), *args, pod.uuid]
    name = annotation.rsplit("/", 1)[-1]
    try:
        result = call_builtin_forked(argv, str(pod.path), stage1_env(), timeout)
        if result is None:
            import subprocess  # here: run and run-prepared never need it (~5 ms of imports)

            try:
                proc = subprocess.run(
                    argv,
                    cwd=pod.path,
                    env=stage1_env(),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise TimeoutError(str(exc)) from exc
            result = proc.returncode, proc.stderr
    except OSError as exc:  # TimeoutError included
        raise PodError(f'pod "{pod.uuid}": stage1 {name} failed: {exc}') from exc
    returncode, stderr = result
    if check and returncode != 0:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise PodError(f'pod "{pod.uuid}": stage1 {name} exited {returncode}: {tail}')
    return returncode


def exec_enter(pod: Pod, app: str | None, command: list[str]) -> NoReturn:
    path = entrypoint(pod, abi.ANN_ENTER)
    argv = [str(path)] + ([f"--app={app}"] if app else []) + [pod.uuid, "--", *command]
    os.chdir(pod.path)
    try:
        os.execve(argv[0], argv, stage1_env())
    except OSError as exc:
        raise PodError(f'pod "{pod.uuid}": cannot exec stage1 enter: {exc.strerror}') from exc
