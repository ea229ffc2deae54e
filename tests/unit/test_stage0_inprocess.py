"""stage0 runs its own built-in stage1 run entrypoint in-process, and execs every other one."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rkt.stage0 import inprocess
from rkt.stage0.stage1_image import builtin_entry_scripts
from tests.conftest import REPO


def _ours() -> tuple[bytes, str]:
    scripts = builtin_entry_scripts("run")
    assert len(scripts) == 1
    script, (module, _) = next(iter(scripts.items()))
    return script, module


def test_the_generated_run_script_is_recognised_byte_for_byte(tmp_path: Path) -> None:
    script, module = _ours()
    assert module == "rkt.stage1.ns.run"
    assert script.startswith(f"#!{sys.executable} -IS\n".encode())
    path = tmp_path / "run"
    path.write_bytes(script)
    assert inprocess.builtin_target(str(path), "run") == (module, "main")
    # one byte off (another interpreter, path or module) is a different program: exec it
    path.write_bytes(script.replace(b"-IS", b"-I "))
    assert inprocess.builtin_target(str(path), "run") is None
    assert inprocess.builtin_target(str(tmp_path / "missing"), "run") is None


def test_not_ours_returns_to_exec(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.write_text("#!/bin/sh\nexit 7\n")
    inprocess.run_builtin_in_process([str(path), "uuid"], {"PATH": "/bin"})  # returns


def test_forced_exec_and_other_threads_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, _ = _ours()
    path = tmp_path / "run"
    path.write_bytes(script)
    monkeypatch.setattr(inprocess, "builtin_target", lambda *a: pytest.fail("checked"))
    monkeypatch.setenv(inprocess.FORCE_EXEC_ENV, "1")
    inprocess.run_builtin_in_process([str(path)], {})
    monkeypatch.delenv(inprocess.FORCE_EXEC_ENV)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        inprocess.run_builtin_in_process([str(path)], {})  # a fork with a thread alive: exec
    finally:
        stop.set()
        worker.join()


def test_in_process_run_sees_what_an_exec_would(tmp_path: Path) -> None:
    """argv and exit status as after an execve (the stage1 here refuses its arguments, so it
    exits 254 after printing one line, without touching anything)."""
    script, _ = _ours()
    path = tmp_path / "run"
    path.write_bytes(script)
    code = (
        "import sys\n"
        "from rkt.stage0.inprocess import run_builtin_in_process\n"
        f"run_builtin_in_process([{str(path)!r}, '--no-such-flag', 'x'], {{'PATH': '/bin'}})\n"
        "sys.exit(99)  # not reached\n"
    )
    env = dict(os.environ)
    env.pop(inprocess.FORCE_EXEC_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 254
    assert proc.stderr.startswith("stage1 run: ")
    assert "no-such-flag" in proc.stderr


def test_every_generated_entrypoint_is_mapped_to_its_function() -> None:
    targets = set(builtin_entry_scripts().values())
    assert ("rkt.stage1.ns.gc", "main") in targets
    assert ("rkt.stage1.ns.stop", "main") in targets
    assert ("rkt.stage1.ns.app", "main_add") in targets
    assert ("rkt.stage1.ns.run", "main") in targets


def test_forked_entrypoint_gets_cwd_env_argv_and_returns_status_and_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(inprocess.FORCE_EXEC_ENV, raising=False)
    target = ("tests.unit.forked_entry", "main")
    monkeypatch.setattr(inprocess, "builtin_target", lambda *a: target)
    monkeypatch.setattr(inprocess, "_other_threads", lambda: False)  # other tests' servers
    result = inprocess.call_builtin_forked(
        ["/stage1/gc", "--flag", "uuid"], str(tmp_path), {"ONLY": "this"}, timeout=30
    )
    assert result is not None
    code, stderr = result
    assert code == 3
    assert stderr == f"cwd={tmp_path} argv=['--flag', 'uuid'] env=[('ONLY', 'this')]\n"
    assert os.getcwd() != str(tmp_path)  # the parent is untouched
    assert os.environ.get("ONLY") is None


def test_forked_entrypoint_collects_garbage_as_a_fresh_interpreter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rkt.cli.main turns the collector off while a command starts; the entrypoint gets it on,
    with stage0's objects frozen out of its collections."""
    monkeypatch.delenv(inprocess.FORCE_EXEC_ENV, raising=False)
    target = ("tests.unit.forked_entry", "main")
    monkeypatch.setattr(inprocess, "builtin_target", lambda *a: target)
    monkeypatch.setattr(inprocess, "_other_threads", lambda: False)  # other tests' servers
    gc.disable()
    try:
        result = inprocess.call_builtin_forked(["/stage1/gc", "--gc"], "/", {}, timeout=30)
    finally:
        gc.enable()
    assert result == (0, "collecting=True frozen=True\n")
    assert gc.get_freeze_count() == 0  # the parent is untouched


def test_forked_entrypoint_is_killed_at_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(inprocess.FORCE_EXEC_ENV, raising=False)
    target = ("tests.unit.forked_entry", "main")
    monkeypatch.setattr(inprocess, "builtin_target", lambda *a: target)
    monkeypatch.setattr(inprocess, "_other_threads", lambda: False)  # other tests' servers
    with pytest.raises(TimeoutError):
        inprocess.call_builtin_forked(["/stage1/gc", "--sleep"], "/", {}, timeout=0.5)


def test_foreign_entrypoint_is_not_forked(tmp_path: Path) -> None:
    path = tmp_path / "gc"
    path.write_text("#!/bin/sh\nexit 0\n")
    assert inprocess.call_builtin_forked([str(path), "uuid"], "/", {}, timeout=5) is None


def test_entrypoint_paths_are_the_venv_site_packages_with_or_without_site() -> None:
    """The exec'd entrypoint scripts find what stage0 finds: the venv's site-packages, also when
    the interpreter runs without ``site`` (the ``rkt`` launcher), and rkt's own root."""
    venv = REPO / ".venv"
    code = (
        "import sys; sys.path.append(sys.argv[1])\n"
        "from rkt.stage0.stage1_image import entrypoint_paths\n"
        "print(entrypoint_paths())"
    )
    expected = [str(venv / "lib/python3.11/site-packages"), str(REPO / "src")]
    for flags in ([], ["-S"]):
        out = subprocess.run(
            [str(venv / "bin" / "python"), *flags, "-c", code, str(REPO / "src")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == repr(expected), flags
