"""Running this installation's own built-in stage1 run entrypoint in-process instead of exec'ing it.

docs/stage1-abi.md §3: stage0 ``exec``s the run entrypoint with the pod directory as working
directory, its argv and its environment, and nothing else crosses. When the entrypoint file is,
byte for byte, the script this installation generates for its built-in flavor
(``stage1_image.builtin_run_scripts``: the same interpreter, ``sys.path`` and module), exec'ing
it would start the same interpreter to run the same code on the same inputs. So we run
that code here: the process keeps its pid, its descriptors (the lock fd), its working directory,
its signal mask and its place in the caller's process tree, exactly as after an ``execve``, and
skips a second interpreter start plus the imports stage0 already made (~30 ms of ~130,
docs/benchmarks.md). What an ``execve`` would also have reset is reset here: the environment is
replaced by the entrypoint's, ``sys.argv`` is its argv, the signal dispositions are a fresh
interpreter's; and it is done only when stage0 holds no close-on-exec descriptor (an exec would
have closed it: the store index, a lock), so the stage1 sees exactly the descriptors it would.

Any other stage1 (a custom or older image, the ABI test stage1, another installation's) is
exec'd as before; so is this one when another thread runs (the stage1 forks), when stage0 still
holds a close-on-exec descriptor, or when ``RKT_STAGE1_EXEC=1`` asks for the plain ABI path
(debugging, and the tests that pin it).

Imports only the standard library and ``rkt.stage0.stage1_image``; the flavor's module is
imported by name, as the script itself would.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

FORCE_EXEC_ENV = "RKT_STAGE1_EXEC"


def _is_builtin_run_script(path: str) -> str | None:
    """The module to run when ``path`` is our generated run entrypoint, else None."""
    from rkt.stage0.stage1_image import builtin_run_scripts

    try:
        with open(path, "rb") as f:
            data = f.read(65536)
    except OSError:
        return None
    return builtin_run_scripts().get(data)


def _holds_cloexec_fds() -> bool:
    """Whether an exec would close a descriptor we hold (then exec: the stage1 must not
    inherit, say, an index connection or a lock stage0 still has open)."""
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                return True
        except OSError:
            continue  # the directory listdir itself had open
    return False


def run_builtin_in_process(argv: list[str], env: dict[str, str]) -> None:
    """Run the entrypoint ``argv[0]`` here if it is ours (never returns then); else return."""
    if os.environ.get(FORCE_EXEC_ENV) == "1":
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() != 1:
        return
    module = _is_builtin_run_script(argv[0])
    if module is None or _holds_cloexec_fds():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ.clear()
    os.environ.update(env)
    sys.argv = list(argv)
    # What a fresh interpreter has: Python's own SIGINT handler, SIGPIPE/SIGXFSZ ignored (as
    # the exec'd script's interpreter sets them), everything else the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGWINCH):
        signal.signal(signum, signal.SIG_DFL)
    code = 254
    try:
        code = importlib.import_module(module).main(argv[1:])
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
