"""Running this installation's own built-in stage1 run entrypoint in-process instead of exec'ing it.

docs/stage1-abi.md §3: stage0 ``exec``s the run entrypoint with the pod directory as working
directory, its argv and its environment, and nothing else crosses. When the entrypoint file is,
byte for byte, the script this installation generates for its built-in flavor
(``stage1_image.builtin_entry_scripts``: the same interpreter, ``sys.path`` and module), exec'ing
it would start the same interpreter to run the same code on the same inputs. So we run
that code here: the process keeps its pid, its descriptors (the lock fd), its working directory,
its signal mask and its place in the caller's process tree, exactly as after an ``execve``, and
skips a second interpreter start plus the imports stage0 already made (~30 ms of ~130,
docs/benchmarks.md). What an ``execve`` would also have reset is reset here: the environment is
replaced by the entrypoint's, ``sys.argv`` is its argv, the signal dispositions and the garbage
collector's state are a fresh interpreter's; and it is done only when stage0 holds no close-on-exec
descriptor (an exec would have closed it: the store index, a lock), so the stage1 sees exactly the
descriptors it would.

Any other stage1 (a custom or older image, the ABI test stage1, another installation's) is
exec'd as before; so is this one when another thread runs (the stage1 forks), when stage0 still
holds a close-on-exec descriptor, or when ``RKT_STAGE1_EXEC=1`` asks for the plain ABI path
(debugging, and the tests that pin it).

The short-lived entrypoints stage0 waits for (gc, stop, app add/start/stop/rm) are run the same
way in a forked child (``call_builtin_forked``): a fork of stage0 instead of a fork, an exec and
a new interpreter; the child gets the entrypoint's cwd, environment, argv and signal
dispositions, /dev/null as stdin and stdout, and a pipe as stderr, as ``subprocess`` gave it.

Imports only the standard library and ``rkt.stage0.stage1_image``; the flavor's module is
imported by name, as the script itself would.
"""

from __future__ import annotations

import gc
import os
import sys

from rkt.host.signals import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn

FORCE_EXEC_ENV = "RKT_STAGE1_EXEC"


def _import(name: str) -> object:
    """``importlib.import_module`` without the ``importlib`` package (it imports ``warnings``)."""
    __import__(name)
    return sys.modules[name]


def _read_script(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(65536)
    except OSError:
        return None


def builtin_target(path: str, *files: str) -> tuple[str, str] | None:
    """(module, function) when ``path`` is one of the entrypoint ``files`` we generate (default
    any), else None."""
    from rkt.stage0.stage1_image import builtin_entry_scripts

    data = _read_script(path)
    return None if data is None else builtin_entry_scripts(*files).get(data)


def _fresh_interpreter_state() -> None:
    """What a fresh interpreter has: Python's own SIGINT handler, SIGPIPE/SIGXFSZ ignored (as the
    exec'd script's interpreter sets them), everything else the default; the cyclic garbage
    collector on (rkt.cli.main turns it off while a command starts), with stage0's objects frozen:
    the stage1's collections pass over its own objects only, as in a fresh interpreter (its
    first collection would otherwise scan everything stage0 made, ~1.5 ms)."""
    gc.freeze()
    gc.enable()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGWINCH):
        signal.signal(signum, signal.SIG_DFL)


def _other_threads() -> bool:
    threading = sys.modules.get("threading")
    return threading is not None and threading.active_count() != 1


def may_run_in_process() -> bool:
    """Whether a built-in entrypoint may run here at all (no thread, no ``RKT_STAGE1_EXEC=1``)."""
    return os.environ.get(FORCE_EXEC_ENV) != "1" and not _other_threads()


def _holds_cloexec_fds(keep: tuple[int, ...]) -> bool:
    """Whether an exec would close a descriptor we hold, other than ``keep`` and the module
    bundle's (then exec: the stage1 must not inherit, say, an index connection or a lock stage0
    still has open). The bundle's is not the stage1's business: the exec'd script would open
    its own, and the code run here keeps importing through it."""
    bundle = sys.modules.get("rkt.bundle")
    if bundle is not None:
        keep = (*keep, *bundle.descriptors())
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in keep:
            continue
        try:
            if not os.get_inheritable(fd):
                return True
        except OSError:
            continue  # the directory listdir itself had open
    return False


def run_builtin_in_process(
    argv: list[str], env: dict[str, str], keep: tuple[int, ...] = ()
) -> None:
    """Run the entrypoint ``argv[0]`` here if it is ours (never returns then); else return.
    ``keep``: descriptors stage0 hands to it (a head start's networks, stage0/headstart.py)."""
    if not may_run_in_process():
        return
    target = builtin_target(argv[0], "run")
    if target is None or _holds_cloexec_fds(keep):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ.clear()
    os.environ.update(env)
    sys.argv = list(argv)
    _fresh_interpreter_state()
    code = 254
    try:
        module, function = target
        code = getattr(_import(module), function)(argv[1:])
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    finally:
        _undo_unadopted_networks()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _undo_unadopted_networks() -> None:
    """Networks stage0 started early (stage0/headstart.py) that the run entrypoint returned
    without adopting (it failed first): undone before this process ends."""
    network = sys.modules.get("rkt.stage1.ns.network")
    if network is not None:
        from rkt.paths import Path

        network.abort_head_start(Path(os.getcwd()))


def call_builtin_forked(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    timeout: float | None,
    target: tuple[str, str] | None = None,
) -> tuple[int, str] | None:
    """Run the entrypoint ``argv[0]`` in a forked child if it is ours: (exit status, stderr).
    None: not ours (or a thread runs, or ``RKT_STAGE1_EXEC=1``): the caller execs it.
    ``target``: this (module, function) of ours, whatever ``argv[0]`` is (there is no stage1
    to exec instead: ``RKT_STAGE1_EXEC`` does not apply).
    Raises ``TimeoutError`` (the child killed) when it outlives ``timeout`` seconds."""
    if _other_threads() or (target is None and os.environ.get(FORCE_EXEC_ENV) == "1"):
        return None
    target = target or builtin_target(argv[0])
    if target is None:
        return None
    import select
    import time

    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _run_forked_child(argv, cwd, env, target, write_fd)
    os.close(write_fd)
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks = []
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    try:
        while True:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not poller.poll(left):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"timed out after {timeout} seconds")
            data = os.read(read_fd, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def _run_forked_child(
    argv: list[str], cwd: str, env: dict[str, str], target: tuple[str, str], stderr_fd: int
) -> NoReturn:
    code = 255
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(stderr_fd, 2)
        # Fresh streams on the new descriptors, as a new interpreter would have (the parent's
        # objects may be buffered, or not on fd 1 and 2 at all).
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        _fresh_interpreter_state()
        module, function = target
        code = getattr(_import(module), function)(argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
