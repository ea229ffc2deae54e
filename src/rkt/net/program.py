"""The one helper through which rkt runs an external program (CNI plugins, iptables).

An argv list (never a shell), an explicit environment, bytes on stdin, a timeout; failures raise
``ProgramError`` carrying the exit status and the tail of stderr. ``start_program`` returns at
once with a ``RunningProgram``, so a caller can do its own work while the program runs (the pod's
``lo`` while ptp ADDs); ``run_program`` is start and wait.

Built on ``os.posix_spawn``, pipes and ``select.poll`` rather than ``subprocess``: the stage1 run
and gc processes load this for every CNI pod, and ``subprocess`` (with ``threading``, ``locale``,
``selectors``) costs ~3 ms of their start-up (docs/benchmarks.md, "net-run"). What
``subprocess`` did for us is kept: the child gets only its three pipes (every other inheritable
descriptor, such as the pod lock stage0 hands to stage1, is closed in it, as ``close_fds``
did), ``SIGPIPE``/``SIGXFSZ`` back at their defaults (``restore_signals``), and a program that
outlives its timeout is killed and reaped.

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

import os
import select
import time

from rkt.errors import NetworkError
from rkt.host.signals import signal
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

STDERR_TAIL = 400
_CHUNK = 65536
# The PATH external programs get when rkt has none (a stage1 entrypoint's environment):
# iptables and ip live in /usr/sbin, which glibc's own fallback lacks.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tool_path() -> str:
    """The PATH rkt's external programs run with, and are found on: rkt's own, else
    ``HOST_PATH``."""
    return os.environ.get("PATH", HOST_PATH)


class ProgramResult(NamedTuple):
    returncode: int
    stdout: bytes
    stderr: bytes


class ProgramError(NetworkError):
    """A program could not be run, timed out, or exited non-zero (when asked to check)."""

    def __init__(self, message: str, result: ProgramResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def stderr_tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    text = data.decode(errors="replace").strip()
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]


class RunningProgram:
    """A started program; ``wait`` feeds its stdin, collects its output and reaps it."""

    def __init__(
        self, name: str, pid: int, fds: tuple[int, int, int], stdin: bytes, timeout: float
    ) -> None:
        self.name = name
        self.pid = pid
        self.timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._stdin_fd, self._stdout_fd, self._stderr_fd = fds
        self._stdin = memoryview(stdin)
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._result: ProgramResult | None = None
        # Hand over what the pipe takes now (a plugin's config, usually all of it), so the
        # program runs on while the caller does other work before ``wait``.
        os.set_blocking(self._stdin_fd, False)
        if not self._write_stdin():
            self._close(self._stdin_fd)

    def wait(self, check: bool = True) -> ProgramResult:
        """The program's exit status and output; with ``check``, non-zero raises."""
        if self._result is None:
            try:
                self._communicate()
                status = self._reap()
            except BaseException:
                self.kill()
                raise
            self._result = ProgramResult(
                os.waitstatus_to_exitcode(status),
                b"".join(self._stdout),
                b"".join(self._stderr),
            )
        result = self._result
        if check and result.returncode != 0:
            tail = stderr_tail(result.stderr) or "no output"
            raise ProgramError(f'"{self.name}": exited {result.returncode}: {tail}', result)
        return result

    def kill(self) -> None:
        """SIGKILL and reap the program (if still ours) and close our pipe ends."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = 0
        self._close(self._stdin_fd, self._stdout_fd, self._stderr_fd)

    def _communicate(self) -> None:
        poller = select.poll()
        outputs = {self._stdout_fd: self._stdout, self._stderr_fd: self._stderr}
        open_fds = set(outputs)
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        if self._stdin_fd >= 0:
            poller.register(self._stdin_fd, select.POLLOUT)
            open_fds.add(self._stdin_fd)
        while open_fds:
            for fd, _ in poller.poll(self._remaining_ms()):
                if fd == self._stdin_fd:
                    if self._write_stdin():
                        continue
                else:
                    data = os.read(fd, _CHUNK)
                    if data:
                        outputs[fd].append(data)
                        continue
                poller.unregister(fd)
                open_fds.discard(fd)
                self._close(fd)

    def _write_stdin(self) -> bool:
        """Write what the pipe takes; False once all is written or the reader is gone."""
        try:
            while self._stdin:
                self._stdin = self._stdin[os.write(self._stdin_fd, self._stdin[:_CHUNK]) :]
        except BlockingIOError:  # full: the rest when poll says there is room
            return True
        except BrokenPipeError:  # the program does not read its stdin: not our error
            pass
        return False

    def _reap(self) -> int:
        """The wait status; the program closed its output but may still be running."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except OSError:  # no pidfd (Linux < 5.3): no deadline for a program that closed stdio
            pidfd = -1
        try:
            if pidfd < 0:
                status = os.waitpid(self.pid, 0)[1]
            else:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                while True:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                    if pid:
                        break
                    poller.poll(self._remaining_ms())  # raises at the deadline
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        self.pid = 0
        return status

    def _remaining_ms(self) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            tail = stderr_tail(b"".join(self._stderr))
            self.kill()
            raise ProgramError(
                f'"{self.name}": timed out after {self.timeout:g}s' + (f": {tail}" if tail else "")
            )
        return max(1, int(remaining * 1000))

    def _close(self, *fds: int) -> None:
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                if fd == self._stdin_fd:
                    self._stdin_fd = -1
                elif fd == self._stdout_fd:
                    self._stdout_fd = -1
                elif fd == self._stderr_fd:
                    self._stderr_fd = -1


def start_program(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    timeout: float = 60.0,
) -> RunningProgram:
    """Start ``argv``; raises ``ProgramError``. A program named without a ``/`` is searched on
    the ``PATH`` it is given (``env``'s, else ``tool_path()``), not on this process's own as
    ``posix_spawnp`` would."""
    name = argv[0].rsplit("/", 1)[-1]
    path = argv[0] if "/" in argv[0] else _find(argv[0], (env or {}).get("PATH") or tool_path())
    pipes = [os.pipe() for _ in range(3)]  # not inheritable: only the dup2'ed copies are
    child = (pipes[0][0], pipes[1][1], pipes[2][1])
    ours = (pipes[0][1], pipes[1][0], pipes[2][0])
    actions: list[tuple[int, ...]] = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(child)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    try:
        pid = os.posix_spawn(
            path,
            list(argv),
            dict(env) if env is not None else os.environ,
            file_actions=actions,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    except OSError as exc:
        for fd in ours:
            os.close(fd)
        raise ProgramError(f'"{name}": cannot run {argv[0]}: {exc.strerror}') from exc
    finally:
        for fd in child:
            os.close(fd)
    return RunningProgram(name, pid, ours, stdin, timeout)


def run_program(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    timeout: float = 60.0,
    check: bool = True,
) -> ProgramResult:
    """Run ``argv`` to its end; with ``check``, a non-zero exit raises ``ProgramError``."""
    return start_program(argv, env=env, stdin=stdin, timeout=timeout).wait(check)


def _find(name: str, search: str) -> str:
    """``name`` in the first directory of ``search`` that has it executable; else ``name``
    itself, which ``posix_spawn`` then reports as not found."""
    for directory in search.split(":"):
        candidate = f"{directory}/{name}"
        if directory and os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return name


def _inheritable_fds() -> list[int]:
    """Our descriptors above stderr that a spawned program would inherit."""
    fds: list[int] = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:  # no /proc: nothing to go by (the stage1 processes always have it)
        return fds
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    fds.append(fd)
            except OSError:  # the directory listing's own descriptor, closed by now
                pass
    return fds
