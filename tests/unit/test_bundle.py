"""rkt's module bundle (rkt/bundle.py, built by rkt/bundle_build.py): modules come from it
only while their sources are unchanged, a bad bundle installs nothing, and the installed
launcher uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rkt import bundle, bundle_build
from tests.conftest import REPO

SRC = str(REPO / "src")


def _package(root: Path) -> Path:
    pkg = root / "pkgb"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 'package'\n")
    (pkg / "mod.py").write_text(
        "def where():\n    return __file__\n\ndef fail():\n    raise KeyError('boom')\n"
    )
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("from pkgb.mod import where\nVALUE = 'leaf'\n")
    return pkg


def _python(code: str, root: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter without site, with ``root`` and rkt's src on the path."""
    prelude = f"import sys\nsys.path[:0] = [{str(root)!r}, {SRC!r}]\nfrom rkt import bundle\n"
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _loader_of(name: str) -> str:
    return f"type(sys.modules[{name!r}].__spec__.loader).__name__"


def test_modules_come_from_the_bundle_with_their_files_and_tracebacks(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    out = tmp_path / "b.bin"
    assert bundle_build.build(str(out), bundle_build.package_modules(str(pkg))) == 4
    proc = _python(
        f"assert bundle.install({str(out)!r})\n"
        "import pkgb.sub.leaf, pkgb.mod\n"
        f"print({_loader_of('pkgb')}, {_loader_of('pkgb.sub')}, {_loader_of('pkgb.sub.leaf')})\n"
        "print(pkgb.mod.where())\n"
        "print(pkgb.sub.__path__)\n"
        "pkgb.mod.fail()\n",
        tmp_path,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "BundleFinder BundleFinder BundleFinder", proc.stderr
    assert lines[1] == str(pkg / "mod.py")
    assert lines[2] == repr([str(pkg / "sub")])
    # the traceback names the source file and shows its line
    assert f'File "{pkg / "mod.py"}", line 5, in fail' in proc.stderr
    assert "raise KeyError('boom')" in proc.stderr


def test_an_edited_or_new_module_is_imported_from_its_source(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    out = tmp_path / "b.bin"
    bundle_build.build(str(out), bundle_build.package_modules(str(pkg)))
    (pkg / "sub" / "leaf.py").write_text("VALUE = 'edited, longer than before'\n")
    (pkg / "new.py").write_text("VALUE = 'new'\n")
    proc = _python(
        f"assert bundle.install({str(out)!r})\n"
        "import pkgb.sub.leaf, pkgb.new, pkgb.mod\n"
        "print(pkgb.sub.leaf.VALUE, '|', pkgb.new.VALUE)\n"
        f"print({_loader_of('pkgb.sub.leaf')}, {_loader_of('pkgb.mod')})\n",
        tmp_path,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "edited, longer than before | new", proc.stderr
    assert lines[1] == "SourceFileLoader BundleFinder"


def test_an_edit_that_keeps_the_size_is_seen_by_its_mtime(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    out = tmp_path / "b.bin"
    bundle_build.build(str(out), bundle_build.package_modules(str(pkg)))
    leaf = pkg / "sub" / "leaf.py"
    st = leaf.stat()
    leaf.write_text(leaf.read_text().replace("'leaf'", "'LEAF'"))
    os.utime(leaf, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    proc = _python(
        f"bundle.install({str(out)!r})\nimport pkgb.sub.leaf\nprint(pkgb.sub.leaf.VALUE)\n",
        tmp_path,
    )
    assert proc.stdout.strip() == "LEAF", proc.stderr


def test_a_missing_torn_or_foreign_bundle_installs_nothing(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    good = tmp_path / "b.bin"
    bundle_build.build(str(good), bundle_build.package_modules(str(pkg)))
    data = good.read_bytes()
    (tmp_path / "torn.bin").write_bytes(data[:40])
    (tmp_path / "foreign.bin").write_bytes(b"PK\x03\x04" + data[4:])
    (tmp_path / "empty.bin").write_bytes(b"")
    for name in ("missing.bin", "torn.bin", "foreign.bin", "empty.bin"):
        proc = _python(
            f"print(bundle.install({str(tmp_path / name)!r}), bundle.descriptors())\n"
            f"import pkgb.mod\nprint({_loader_of('pkgb.mod')})\n",
            tmp_path,
        )
        assert proc.stdout.split() == ["False", "()", "SourceFileLoader"], (name, proc.stderr)


def test_its_descriptor_is_close_on_exec_and_does_not_keep_the_stage1_from_running_here(
    tmp_path: Path,
) -> None:
    """The in-process stage1 (rkt/stage0/inprocess.py) is refused while stage0 holds a
    close-on-exec descriptor, except the bundle's."""
    pkg = _package(tmp_path)
    out = tmp_path / "b.bin"
    bundle_build.build(str(out), bundle_build.package_modules(str(pkg)))
    proc = _python(
        f"assert bundle.install({str(out)!r})\n"
        "import os\n"
        "(fd,) = bundle.descriptors()\n"
        "from rkt.stage0 import inprocess\n"
        "print(os.get_inheritable(fd), inprocess._holds_cloexec_fds(()))\n",
        tmp_path,
    )
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def _launcher_running(body: str) -> subprocess.CompletedProcess[str]:
    """The installed `rkt` launcher with ``body`` in place of its call to rkt's main (without
    PYTHONPATH, as a user runs it)."""
    launcher = (REPO / ".venv" / "bin" / "rkt").read_text()
    tail = "sys.exit(main())\n"  # (rkt.cli.main is imported, its main not called)
    assert launcher.endswith(tail)
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-S", "-c", launcher[: -len(tail)] + body],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


def test_the_installed_launcher_loads_rkt_from_the_bundle() -> None:
    """`make setup` built this installation's bundle and the `rkt` launcher installs it."""
    # (a module edited since `make setup` comes from its source: one of these will not be)
    proc = _launcher_running(
        "import rkt.cli.main, rkt.stage1.ns.run, rkt.paths, rkt.records\n"
        "names = ['rkt.cli.main', 'rkt.stage1.ns.run', 'rkt.paths', 'rkt.records']\n"
        "loaders = {type(sys.modules[n].__spec__.loader).__name__ for n in names}\n"
        "print('BundleFinder' if 'BundleFinder' in loaders else loaders)\n"
    )
    assert proc.stdout.strip() == "BundleFinder", proc.stderr
    assert os.path.isfile(bundle.bundle_path())


def test_the_launcher_finds_rkt_and_its_extension_modules_without_listing_the_stdlib() -> None:
    """rkt is imported from its own root first (PYTHONPATH's when given), and the extension
    modules rkt uses (``_json``) from the bundle's index: no sys.path search goes on to list
    lib-dynload and site-packages (the interpreter's start lists the standard library's own
    directory, for ``encodings``)."""
    proc = _launcher_running(
        "import rkt.jsonio, _json\n"
        "print(type(sys.modules['_json'].__spec__.loader).__name__)\n"
        "searched = [p for p in sys.path_importer_cache if p.endswith(('-dynload', '-packages'))]\n"
        "print(bool(searched))\n"
    )
    assert proc.stdout.split() == ["ExtensionFileLoader", "False"], proc.stderr


def test_the_stage1_entrypoint_scripts_load_rkt_from_the_bundle(tmp_path: Path) -> None:
    from rkt.stage0.stage1_image import _script

    script = _script("rkt.stage1.ns.gc", "main").replace(
        "from rkt.stage1.ns.gc import main as main\nsys.exit(main(sys.argv[1:]))\n",
        f"import rkt.stage1.ns.gc\nprint({_loader_of('rkt.stage1.ns.gc')})\n",
    )
    path = tmp_path / "gc"
    path.write_text(script)
    path.chmod(0o755)
    proc = subprocess.run([str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip() == "BundleFinder", proc.stderr


def _preload_package(root: Path) -> Path:
    """A package whose modules record the order their bodies end in (``pkgp.log.ENDED``)."""
    pkg = root / "pkgp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "shadowed = 'an attribute of the package'\nNAME = 'from the package'\n"
        "from pkgp.star import STAR\n"  # (as ctypes and ctypes._endian)
    )
    (pkg / "star.py").write_text("from pkgp import *\nSTAR = NAME\n")
    (pkg / "log.py").write_text("ENDED = []\n")
    end = "from pkgp import log\nlog.ENDED.append(__name__)\n"
    (pkg / "a.py").write_text(
        "import os\nimport pkgp.b\nfrom . import c\nfrom pkgp import shadowed\n"
        "if True:\n    import pkgp.lazy\n"
        "def later():\n    import pkgp.never\n" + end
    )
    (pkg / "b.py").write_text("from pkgp.c import VALUE\n" + end)
    (pkg / "c.py").write_text("VALUE = 3\n" + end)
    (pkg / "lazy.py").write_text(end)
    (pkg / "never.py").write_text(end)
    (pkg / "shadowed.py").write_text(end)
    (pkg / "x.py").write_text("import pkgp.y\nFROM_X = 1\n" + end)
    (pkg / "y.py").write_text("import pkgp.x\n" + end)
    return pkg


def test_the_imports_a_module_makes_unconditionally_are_listed_in_order_without_cycles(
    tmp_path: Path,
) -> None:
    pkg = _preload_package(tmp_path)
    sources = {
        name: (Path(origin).read_bytes(), is_package)
        for name, (origin, is_package) in bundle_build.package_modules(str(pkg)).items()
    }
    lists = bundle_build.preload_lists(sources)
    # parents first, relative imports resolved; not what is under `if`, in a function, or an
    # attribute the package binds itself; not modules outside the bundle (os)
    assert lists["pkgp.a"] == ("pkgp", "pkgp.b", "pkgp.c", "pkgp.log")
    assert lists["pkgp.b"] == ("pkgp", "pkgp.c", "pkgp.log")
    assert lists["pkgp.c"] == ("pkgp", "pkgp.log")
    # x and y import each other: neither preloads the other; nor do pkgp and pkgp.star
    assert lists["pkgp.x"] == ("pkgp", "pkgp.log")
    assert lists["pkgp.y"] == ("pkgp", "pkgp.log")
    assert lists["pkgp"] == lists["pkgp.star"] == ()


def test_a_module_s_imports_are_loaded_by_the_bundle_as_python_would(tmp_path: Path) -> None:
    """Importing ``pkgp.a`` asks importlib's finders only for it and for what it imports
    conditionally; the modules end in the order a plain import ends them, with the same
    attributes; an import cycle still works."""
    pkg = _preload_package(tmp_path)
    out = tmp_path / "b.bin"
    bundle_build.build(str(out), bundle_build.package_modules(str(pkg)))
    program = (
        "asked = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        asked.append(name) if name.startswith('pkgp') else None\n"
        "USE_BUNDLE\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import pkgp.a, pkgp.y\n"
        "from pkgp import log\n"
        "print(' '.join(log.ENDED))\n"
        "print(' '.join(asked))\n"
        "print(sorted(n for n in sys.modules if n.startswith('pkgp')))\n"
        "print(pkgp.a.c.VALUE, pkgp.b.VALUE, pkgp.shadowed, pkgp.x.FROM_X, pkgp.STAR)\n"
        "print(type(sys.modules['pkgp.b'].__spec__.loader).__name__, pkgp.b.__package__)\n"
    )
    with_bundle = _python(program.replace("USE_BUNDLE", f"bundle.install({str(out)!r})"), tmp_path)
    plain = _python(program.replace("USE_BUNDLE", ""), tmp_path)
    got, want = with_bundle.stdout.splitlines(), plain.stdout.splitlines()
    assert len(got) == 5, with_bundle.stderr
    assert got[0] == want[0] == "pkgp.c pkgp.b pkgp.lazy pkgp.a pkgp.x pkgp.y"
    assert got[1] == "pkgp pkgp.star pkgp.a pkgp.lazy pkgp.y pkgp.x"  # importlib's: not log, b, c
    assert got[2:4] == want[2:4]
    assert got[3] == "3 3 an attribute of the package 1 from the package"
    assert got[4] == "BundleFinder pkgp"


def test_the_installed_bundle_loads_the_same_modules_as_a_plain_import() -> None:
    """Every rkt module imported, with or without the bundle (which only makes it faster):
    the same modules, rkt's and the standard library's, each with the same names."""
    program = (
        "import os, rkt\n"
        "from rkt.bundle_build import package_modules\n"
        "for name in sorted(package_modules(os.path.dirname(rkt.__file__))):\n"
        "    if not name.endswith('__main__'):\n"
        "        __import__(name)\n"
        "for name in sorted(sys.modules):\n"
        "    names = [n for n in vars(sys.modules[name]) if n != '__cached__']\n"
        "    print(name, sorted(names))\n"
    )
    with_bundle = _launcher_running(program)
    launcher = (REPO / ".venv" / "bin" / "rkt").read_text()
    site = next(ln.strip() for ln in launcher.splitlines() if ln.strip().startswith("sys.path += "))
    plain = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys\n{site}\nsys.path[:0] = [{SRC!r}]\n" + program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert with_bundle.returncode == plain.returncode == 0, with_bundle.stderr + plain.stderr
    got, want = (
        dict(ln.split(" ", 1) for ln in p.stdout.splitlines()) for p in (with_bundle, plain)
    )
    del got["__main__"], want["__main__"]
    assert len(want) > 250
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []
