"""The CLI frame stays light: no network, crypto or sqlite imports for --help and listing help."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("httpx", "pysequoia", "grpc", "pyroute2", "asyncio", "zstandard")


def _imported_modules(*args: str) -> set[str]:
    return {name.split(".")[0] for name in _imported_full(*args)}


def _imported_full(*args: str) -> set[str]:
    """Every module (dotted name) that ``rkt ARGS`` imports."""
    python = REPO / ".venv" / "bin" / "python"
    proc = subprocess.run(
        [
            str(python),
            "-X",
            "importtime",
            "-c",
            "import sys; from rkt.cli.main import main; main(sys.argv[1:])",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def _loaded_by_import(*modules: str) -> set[str]:
    """Every module in ``sys.modules`` after a fresh interpreter imports ``modules``."""
    code = f"import sys\nimport {', '.join(modules)}\nprint('\\n'.join(sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def _under(loaded: set[str], *prefixes: str) -> set[str]:
    return {n for n in loaded if any(n == p or n.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("args", [("--help",), ("image", "list", "--help"), ("version",)])
def test_cli_start_imports_no_network_or_crypto_library(args: tuple[str, ...]) -> None:
    loaded = _imported_modules(*args)
    assert not loaded & set(HEAVY), f"rkt {' '.join(args)} imported {loaded & set(HEAVY)}"


def test_image_list_imports_no_network_or_crypto_library(tmp_path: object) -> None:
    loaded = _imported_modules(f"--dir={tmp_path}", "image", "list")
    assert not loaded & set(HEAVY)


# What the pod start and listing paths leave out (docs/benchmarks.md, "Pod start"): each costs
# milliseconds of every `rkt run`, `run-prepared` or `list`, and none is needed there.
NOT_ON_RUN_PATH = (
    "argparse",  # run has its own grammar (rkt.cli.run_args); argparse, gettext, locale: ~3 ms
    "hashlib",  # OpenSSL: only to name a tree that is rendered
    "uuid",  # pulls in platform; pod UUIDs are made by rkt.pod.pod.new_uuid
    "platform",
    "ctypes",
    "rkt.formats",  # image formats: only for an image that is not in the store yet
    "rkt.schema.isolators",  # only for a manifest or a flag with isolators
    "rkt.store.render",
    "rkt.store.layers",
    "rkt.stage0.importer",
    "shutil",  # imports bz2 and lzma (~3 ms): the stage1 tree is linked by rkt.stage0.prepare
    "dataclasses",  # with inspect, ast, tokenize: ~7 ms, plus 0.3-1 ms per class
    "sqlite3",  # the index uses the C module _sqlite3; the package imports datetime (~1 ms)
    "_sqlite3",  # a stored image is found in its name file (rkt.store.names): no index at all
    "rkt.store.db",
    "functools",  # (_sqlite3 imported it, and with it collections)
    "collections",  # ~1 ms: collections.abc's classes come from the frozen _collections_abc
    "datetime",
    "typing",  # ~2.5 ms with re and contextlib; records are rkt.records, annotations strings
    "pathlib",  # ~4 ms with fnmatch, urllib.parse, ipaddress: paths are rkt.paths.Path
    "json",  # compiles regexes at import: rkt.jsonio calls the same C codec
    "contextlib",
    "importlib",  # its package imports warnings; commands are loaded with __import__
    "sysconfig",  # the venv's site-packages are found without it
    "urllib",
    "ipaddress",
    "signal",  # its enum classes: rkt uses _signal, the C module
    "re",  # with enum: ~2 ms; the name and UUID checks are rkt.textcheck
    "enum",
    "rkt.cli.progress",  # the download bar: imported when a download draws one
    "rkt.cli.output",
    "types",  # ~0.2 ms: MappingProxyType is type(type.__dict__), as `types` defines it
    "select",  # only to wait for killed cgroup members (rkt.host.cgroups.fs)
)

# What the stage1 run path (the run entrypoint up to pod-init) leaves out: stage0 runs it
# in-process, so it adds to every `rkt run` the same way.
NOT_ON_STAGE1_PATH = (
    "ctypes",  # the privileged calls are pod-init's and app-exec's; LinuxHost loads it lazily
    "rkt.host.libc",
    "rkt.stage1.ns.userns",
    "dataclasses",
    "inspect",
    "shutil",
    "socket",  # lo comes up through a bare socket(2) and an ioctl
    "subprocess",  # CNI plugins are spawned by rkt.net.program (posix_spawn)
    "pyseccomp",  # the filter is compiled and loaded by the native app-exec
    "rkt.stage1.common.copyup",  # only for a Docker image's implicit volume
    "fcntl",
    "ctypes.util",
    "rkt.schema.isolators",
    "rkt.store",
    "typing",
    "pathlib",
    "json",
    "contextlib",
    "signal",
    "ipaddress",
    "re",
    "enum",
    "types",
    "select",
)


def test_run_command_imports_only_what_a_stored_image_needs() -> None:
    loaded = _imported_full("run", "--help")
    assert "rkt.stage0.headstart" in loaded  # the command really was imported
    assert not _under(loaded, *NOT_ON_RUN_PATH, *HEAVY)
    # what prepare_from_args imports once the pod exists (its networks started)
    loaded = _loaded_by_import(
        "rkt.cli.commands.run", "rkt.cli.common", "rkt.stage0.fetch", "rkt.stage0.prepare"
    )
    assert "rkt.store.store" in loaded
    assert not _under(loaded, *NOT_ON_RUN_PATH, *HEAVY)


def test_run_command_starts_the_networks_before_it_loads_the_store() -> None:
    # stage0/headstart.py: the pod is created and its networks started before the store's
    # modules (sqlite, the image schema) are imported
    loaded = _loaded_by_import("rkt.cli.commands.run")
    for later in ("rkt.store.store", "rkt.store.db", "_sqlite3", "rkt.stage0.prepare"):
        assert later not in loaded


def test_stage1_run_path_imports_stay_lean() -> None:
    loaded = _loaded_by_import(
        "rkt.stage1.ns.run", "rkt.host.linux", "rkt.host.netns", "rkt.stage1.ns.start"
    )
    assert "rkt.stage1.ns.launch" in loaded and "rkt.stage1.common.appspec" in loaded
    assert not _under(loaded, *NOT_ON_STAGE1_PATH, *HEAVY)


def test_stage1_run_starts_the_network_before_it_imports_the_app_resolution() -> None:
    # the CNI plugins run while the rest is imported (rkt.stage1.ns.run, _run)
    loaded = _loaded_by_import("rkt.stage1.ns.run", "rkt.host.linux")
    assert "rkt.stage1.ns.network" in loaded
    for later in ("rkt.stage1.common.appspec", "rkt.stage1.ns.start", "rkt.host.cgroups"):
        assert later not in loaded


def test_pod_manifest_without_isolators_does_not_import_them() -> None:
    code = (
        "import sys\n"
        "from rkt.schema.pod import PodManifest\n"
        "app = {'exec': ['/bin/true'], 'user': '0', 'group': '0'}\n"
        "image = {'id': 'sha512-' + 'a' * 128, 'name': 'example.com/x'}\n"
        "doc = {'acKind': 'PodManifest', 'acVersion': '0.8.11',\n"
        "       'apps': [{'name': 'x', 'image': image, 'app': app}]}\n"
        "PodManifest.from_json(doc)\n"
        "print('rkt.schema.isolators' in sys.modules)\n"
        "app['isolators'] = [{'name': 'os/linux/no-new-privileges', 'value': True}]\n"
        "print(PodManifest.from_json(doc).apps[0].app.isolators[0].value)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "True"]


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--format=json"),
        ("run-prepared", "--net=none", "00000000-0000-4000-8000-000000000000"),
    ],
)
def test_pod_commands_import_no_dataclasses_store_or_schema(
    args: tuple[str, ...], tmp_path: object
) -> None:
    loaded = _imported_full(f"--dir={tmp_path}", *args)
    assert "rkt.pod.pod" in loaded
    unneeded = ("dataclasses", "sqlite3", "hashlib", "uuid", "threading", "rkt.store", "rkt.schema")
    unneeded += ("typing", "json", "contextlib", "pathlib")  # (docs/architecture.md, "Paths")
    assert not _under(loaded, *unneeded, *HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--format=json", "--no-legend=false"),
        ("status", "00000000"),
        ("gc", "--grace-period=0", "--expire-prepared", "1h"),
        ("stop", "00000000"),
        ("rm", "00000000"),
        ("version",),
    ],
)
def test_plain_command_lines_import_no_argparse_re_or_collections(
    args: tuple[str, ...], tmp_path: object
) -> None:
    """rkt.cli.quickparse parses them (argparse with re, enum, gettext and locale is ~10 ms), and
    collections.abc is imported only for the type checker on these paths (~1 ms)."""
    loaded = _imported_full(f"--dir={tmp_path}", *args)
    assert "rkt.cli.quickparse" in loaded
    assert not _under(loaded, "argparse", "re", "enum", "gettext", "locale", "collections")


def test_cli_main_turns_the_collector_off_before_the_heavy_imports() -> None:
    code = "import sys, rkt.cli.main; print('typing' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False"]


@pytest.mark.parametrize("collecting", [True, False])
def test_cli_main_leaves_the_collector_as_it_found_it(collecting: bool) -> None:
    from rkt.cli.main import main

    if not collecting:
        gc.disable()
    try:
        with pytest.raises(SystemExit):
            main(["version"])
        assert gc.isenabled() is collecting
    finally:
        gc.enable()


def test_unknown_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rkt.cli.main", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert 'unknown command "frobnicate"' in proc.stderr


def test_bad_insecure_option_is_a_usage_error_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rkt.cli.main", "--insecure-options=bogus", "version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_gc_entrypoint_imports_no_network_code_for_a_pod_without_cni() -> None:
    """rkt gc of a --net=none or --net=host pod: the stage1 gc removes cgroups only."""
    loaded = _loaded_by_import("rkt.stage1.ns.gc")
    assert not _under(loaded, "rkt.stage1.ns.network", "rkt.net", "rkt.stage1.common.appspec")


def test_an_interrupt_while_rkt_loads_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """^C in the first milliseconds of any command lands in the launcher's imports, before
    rkt.cli.main can say "rkt: interrupted": the launcher says it, with the same status 130.
    (A package that raises KeyboardInterrupt on import stands in for the ^C.)"""
    fake = tmp_path / "rkt"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise KeyboardInterrupt\n")
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "rkt"), "version"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (130, "rkt: interrupted\n")
