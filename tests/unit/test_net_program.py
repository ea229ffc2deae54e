"""The program runner CNI plugins and iptables go through (``rkt.net.program``): output and
status, large stdin without deadlock, timeouts (also of a program that closed its output), what
the child inherits, and a started program running on while the caller works. No root."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from rkt.net.program import ProgramError, run_program, start_program


def test_output_status_and_environment() -> None:
    res = run_program(
        ["/bin/sh", "-c", 'echo "out $GREETING"; echo err >&2; exit 4'],
        env={"GREETING": "hi"},
        check=False,
    )
    assert (res.returncode, res.stdout, res.stderr) == (4, b"out hi\n", b"err\n")


def test_large_stdin_and_stdout_do_not_deadlock() -> None:
    data = os.urandom(1 << 20)  # far more than a pipe holds, both ways at once
    res = run_program(["cat"], stdin=data, timeout=20)
    assert res.stdout == data


def test_program_that_ignores_its_stdin() -> None:
    assert run_program(["true"], stdin=b"x" * (1 << 20)).returncode == 0


def test_failure_timeout_and_missing_program() -> None:
    with pytest.raises(ProgramError, match=r"timed out after 0\.2s: started"):
        run_program(
            [
                sys.executable,
                "-c",
                "import sys,time; print('started', file=sys.stderr, flush=True); time.sleep(5)",
            ],
            timeout=0.2,
        )
    with pytest.raises(ProgramError, match="exited 3: bad thing") as info:
        run_program(
            [sys.executable, "-c", "import sys; sys.stderr.write('bad thing'); sys.exit(3)"]
        )
    assert info.value.result is not None and info.value.result.returncode == 3
    with pytest.raises(ProgramError, match="cannot run /nonexistent/tool"):
        run_program(["/nonexistent/tool"])


def test_timeout_of_a_program_that_closed_its_output() -> None:
    started = time.monotonic()
    with pytest.raises(ProgramError, match="timed out"):
        run_program(["/bin/sh", "-c", "exec >&- 2>&-; sleep 5"], timeout=0.3)
    assert time.monotonic() - started < 3


def test_child_gets_only_its_pipes_and_default_sigpipe() -> None:
    keep_r, keep_w = os.pipe()
    os.set_inheritable(keep_w, True)  # like the pod lock stage0 hands to stage1
    try:
        fds = run_program(["ls", "/proc/self/fd"]).stdout.split()
        status = run_program(["cat", "/proc/self/status"]).stdout.decode()
    finally:
        os.close(keep_r)
        os.close(keep_w)
    assert sorted(int(fd) for fd in fds if int(fd) > 2) == [3]  # ls's own directory
    ignored = int(
        next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16
    )
    assert not ignored & (1 << 12)  # SIGPIPE (13) is not ignored, as after subprocess


def test_started_program_runs_while_the_caller_works(tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = f'while [ ! -e "{go}" ]; do sleep 0.01; done; cat'
    running = start_program(["/bin/sh", "-c", script], stdin=b"config", timeout=20)
    go.touch()  # the caller's own work, done after start returned
    assert running.wait().stdout == b"config"


def test_a_bare_name_is_found_on_the_path_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on this process's PATH (posix_spawnp's, or glibc's /bin:/usr/bin without one): a
    stage1 entrypoint may have no PATH, and iptables lives in /usr/sbin."""
    tool = tmp_path / "rkt-test-tool"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    res = run_program(["rkt-test-tool"], env={"PATH": f"/nowhere:{tmp_path}"})
    assert res.stdout == b"found\n"
    with pytest.raises(ProgramError, match="cannot run"):
        run_program(["rkt-test-tool"], env={"PATH": "/nowhere"})
