"""rkt's compiled modules in one file: every command imports ~80 modules, and Python's path
finder spends ~50 us on each one (directory caches, a stat, an open and a read of its ``.pyc``,
the header check) before it unmarshals it. ``make setup`` writes the bundle; the ``rkt``
launcher and the built-in stage1's entrypoint scripts install its finder first.

The file (``rkt/__pycache__/rkt-bundle.<cache tag>.bin``): 8 bytes of index length, the index
(marshalled ``{module: (offset, length)}``: small, it is read by every command), then each
module's record, marshalled: ``(source path, is package, source mtime_ns, source size, imports,
code object)``, the code None for an extension module (found at its path, without a search of
sys.path). A record is read with one ``pread`` when the module is first imported, so modules no
command needs cost only their index entry. A module is served from the bundle only
while its source file has the size and mtime the bundle recorded (the check a ``.pyc`` gets);
anything else, any module not in it or a record that does not read, is imported the usual
way. A missing, torn or foreign bundle installs nothing.

Preloading: importlib's own machinery costs ~15 us a module (its locks, the spec, the module's
attributes, the parent's), ~1.2 ms of the ~80 modules ``rkt run`` imports. So when importlib
asks the bundle to execute a module, the bundle first loads that module's *imports* itself:
those its top level makes unconditionally (not under ``if``, ``try`` or in a function; listed
in the index when the bundle is built, in the order they appear), depth first, each before
the module that imports it, as Python would have reached them. Their bodies then find what they
import in ``sys.modules`` already. A module in an import cycle does not preload the modules of
its cycle (it would run them before any of its own body: Python runs them part way), and
nothing is preloaded while a second thread runs (importlib's per-module locks are skipped).
``-X importtime`` lists only the modules importlib loads.

Bundled: every module of the ``rkt`` package, and the pure-Python standard library modules
they import (not third-party packages: they are not on the start paths that matter). The
bundle is built by ``rkt.bundle_build`` (``python -m rkt.bundle``), apart from this module,
which every command imports.

No ``from __future__ import annotations`` here: this module is imported the usual way, before
the finder exists, and ``__future__`` is then served from the bundle like the rest.
"""

import _thread
import marshal
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType

    # (source path, is package, mtime_ns, size, imports to preload, code or None)
    Record = tuple[str, bool, int, int, tuple[str, ...], CodeType | None]

MAGIC = b"rktbndl3"
_ModuleType = type(sys)
_HEADER = len(MAGIC) + 8

# name -> (offset, length) of its record, from the end of the index
Index = dict[str, tuple[int, int]]


def bundle_path() -> str:
    """Where this installation's bundle is, for this interpreter's bytecode format."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    tag = sys.implementation.cache_tag or "none"
    return os.path.join(package_dir, "__pycache__", f"rkt-bundle.{tag}.bin")


class BundleFinder:
    """A ``sys.meta_path`` finder and loader serving modules from the bundle."""

    def __init__(self, fd: int, index: Index, base: int) -> None:
        self.fd = fd
        self._index = index
        self._base = base
        self._found: dict[str, Record] = {}  # by find_spec, for exec_module

    def find_spec(
        self, name: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        """The module's spec when the bundle has it and its source is unchanged. Without
        ``has_location``: ``__file__`` is set by ``exec_module`` and there is no ``__cached__``
        (computing it costs ~10 us a module)."""
        record = self._record(name)
        if record is None:
            return None  # edited since the bundle was made: the usual import reads it
        origin, is_package = record[0], record[1]
        bootstrap = sys.modules["_frozen_importlib"]
        if record[5] is None:  # an extension module: its file, without a search of sys.path
            loader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader(name, origin)
            ext: ModuleSpec = bootstrap.ModuleSpec(name, loader, origin=origin)
            ext.has_location = True
            return ext
        self._found[name] = record
        spec: ModuleSpec = bootstrap.ModuleSpec(name, self, origin=origin, is_package=is_package)
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    def create_module(self, spec: "ModuleSpec") -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        name = module.__name__
        record = self._found.pop(name, None) or self._record(name)
        if record is None or record[5] is None:
            raise ImportError(f"rkt bundle: {name} changed while it was imported", name=name)
        if record[4] and not _thread._count():  # no other thread: see "Preloading" above
            self._preload(record[4])
        module.__file__ = record[0]
        exec(record[5], module.__dict__)

    def _read(self, name: str) -> "Record | None":
        """The module's record as the bundle has it (None: not in it, or unreadable)."""
        where = self._index.get(name)
        if where is None:
            return None
        data = os.pread(self.fd, where[1], self._base + where[0])
        try:
            record: Record = marshal.loads(data)
        except (ValueError, EOFError, TypeError):
            return None  # torn or foreign: the usual import
        return record if isinstance(record, tuple) and len(record) == 6 else None

    def _record(self, name: str) -> "Record | None":
        """The module's record while its source has the size and mtime recorded."""
        record = self._read(name)
        if record is None:
            return None
        try:
            st = os.stat(record[0])
        except OSError:
            return None
        return record if st.st_mtime_ns == record[2] and st.st_size == record[3] else None

    def _preload(self, names: "tuple[str, ...]") -> None:
        """Load ``names`` (and what each imports, first) as importlib would, without it."""
        modules = sys.modules
        for name in names:
            parent, _, child = name.rpartition(".")
            if name in modules or (parent and parent not in modules):
                continue  # loaded, or importlib's when the body imports it
            record = self._record(name)
            if record is None or record[5] is None:
                continue
            if record[4]:
                self._preload(record[4])
            if name in modules:  # imported meanwhile by a conditional import, through importlib
                continue
            origin, is_package = record[0], record[1]
            spec = sys.modules["_frozen_importlib"].ModuleSpec(
                name, self, origin=origin, is_package=is_package
            )
            module = _ModuleType(name)
            # the attributes importlib gives a module (its _init_module_attrs)
            attrs = module.__dict__
            attrs.update(__spec__=spec, __loader__=self, __package__=parent, __file__=origin)
            if is_package:
                spec.submodule_search_locations = [os.path.dirname(origin)]
                attrs.update(__path__=spec.submodule_search_locations, __package__=name)
            modules[name] = module
            try:
                exec(record[5], attrs)
            except BaseException:
                modules.pop(name, None)
                raise
            if parent:  # as importlib binds a submodule to its package
                setattr(modules[parent], child, modules[name])

    def get_source(self, name: str) -> "str | None":
        """The source, for tracebacks and ``inspect``: the file the module came from."""
        record = self._read(name)
        if record is None:
            return None
        with open(record[0], encoding="utf-8") as f:
            return f.read()


def descriptors() -> tuple[int, ...]:
    """The descriptors the installed finders hold (close-on-exec: never inherited)."""
    return tuple(f.fd for f in _finders())


def identity() -> "str | None":
    """The installed bundle file's identity (device, inode, size, mtime), None without one."""
    for finder in _finders():
        st = os.fstat(finder.fd)
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    return None


def serves_all(package: str) -> bool:
    """Whether every submodule of ``package`` loaded so far (this one apart: it installs the
    bundle) came from the installed bundle: none was imported from a source file edited
    since the bundle was built."""
    prefix = package + "."
    return all(
        serves(module)
        for name, module in list(sys.modules.items())
        if name.startswith(prefix) and name != __name__
    )


def serves(module: "ModuleType") -> bool:
    """Whether ``module`` came from the installed bundle."""
    return isinstance(getattr(module, "__loader__", None), BundleFinder)


def _finders() -> "list[BundleFinder]":
    return [f for f in sys.meta_path if isinstance(f, BundleFinder)]


def install(path: "str | None" = None) -> bool:
    """Put the bundle's finder first on ``sys.meta_path``; False (and nothing installed) when
    there is no usable bundle."""
    if _finders():
        return True
    try:
        fd = os.open(path or bundle_path(), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.pread(fd, _HEADER, 0)
        if len(head) != _HEADER or head[: len(MAGIC)] != MAGIC:
            raise ValueError("not a bundle")
        size = int.from_bytes(head[len(MAGIC) :], "little")
        raw = os.pread(fd, size, _HEADER)
        if len(raw) != size:
            raise ValueError("torn index")
        index = marshal.loads(raw)
        if not isinstance(index, dict):
            raise ValueError("bad index")
    except (OSError, ValueError, EOFError, TypeError):
        os.close(fd)
        return False
    sys.meta_path.insert(0, BundleFinder(fd, index, _HEADER + size))
    return True


if __name__ == "__main__":  # ``python -m rkt.bundle``, as ``make setup`` runs it
    from rkt.bundle_build import main

    sys.exit(main(sys.argv[1:]))
