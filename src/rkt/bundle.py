"""rkt's compiled modules in one file: every command imports ~80 modules, and Python's path
finder spends ~50 us on each one (directory caches, a stat, an open and a read of its ``.pyc``,
the header check) before it unmarshals it. ``make setup`` writes the bundle; the ``rkt``
launcher and the built-in stage1's entrypoint scripts install its finder first.

The file (``rkt/__pycache__/rkt-bundle.<cache tag>.bin``): 8 bytes of index length, the index
(marshalled ``{module: (offset, length, source path, is package, source mtime_ns, source
size, imports)}``; offset -1 for an extension module, found at its path), then each module's
marshalled code object. A module is served from the bundle only
while its source file has the size and mtime the bundle recorded (the check a ``.pyc`` gets);
anything else, or any module not in it, is imported the usual way. A missing, torn or
foreign bundle installs nothing. The code object is read with one ``pread`` when the module is
first imported, so modules no command needs cost only their index entry.

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
they import (not third-party packages: they are not on the start paths that matter).

No ``from __future__ import annotations`` here: this module is imported the usual way, before
the finder exists, and ``__future__`` is then served from the bundle like the rest.
"""

import _thread
import marshal
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import ast
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

MAGIC = b"rktbndl2"
_ModuleType = type(sys)
_HEADER = len(MAGIC) + 8

# name -> (offset, length, origin, is_package, mtime_ns, size, imports to preload)
Entry = tuple[int, int, str, bool, int, int, tuple[str, ...]]
Index = dict[str, Entry]


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

    def find_spec(
        self, name: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        """The module's spec when the bundle has it and its source is unchanged. Without
        ``has_location``: ``__file__`` is set by ``exec_module`` and there is no ``__cached__``
        (computing it costs ~10 us a module)."""
        entry = self._index.get(name)
        if entry is None or not _unchanged(entry):
            return None  # edited since the bundle was made: the usual import reads it
        offset, _length, origin, is_package = entry[:4]
        bootstrap = sys.modules["_frozen_importlib"]
        if offset < 0:  # an extension module: its file, without a search of sys.path
            loader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader(name, origin)
            ext: ModuleSpec = bootstrap.ModuleSpec(name, loader, origin=origin)
            ext.has_location = True
            return ext
        spec: ModuleSpec = bootstrap.ModuleSpec(name, self, origin=origin, is_package=is_package)
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    def create_module(self, spec: "ModuleSpec") -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        entry = self._index[module.__name__]
        if entry[6] and not _thread._count():  # no other thread: see "Preloading" above
            self._preload(entry[6])
        self._run(module, entry)

    def _run(self, module: "ModuleType", entry: Entry) -> None:
        offset, length, origin = entry[:3]
        data = os.pread(self.fd, length, self._base + offset)
        if len(data) != length:
            raise ImportError(f"rkt bundle: {module.__name__} is torn", name=module.__name__)
        module.__file__ = origin
        exec(marshal.loads(data), module.__dict__)

    def _preload(self, names: "tuple[str, ...]") -> None:
        """Load ``names`` (and what each imports, first) as importlib would, without it."""
        modules = sys.modules
        for name in names:
            if name in modules:
                continue
            entry = self._index.get(name)
            parent, _, child = name.rpartition(".")
            if entry is None or entry[0] < 0 or (parent and parent not in modules):
                continue  # importlib's, when the body imports it
            if not _unchanged(entry):
                continue
            if entry[6]:
                self._preload(entry[6])
            if name in modules:  # imported meanwhile by a conditional import, through importlib
                continue
            spec = sys.modules["_frozen_importlib"].ModuleSpec(
                name, self, origin=entry[2], is_package=entry[3]
            )
            module = _ModuleType(name)
            # the attributes importlib gives a module (its _init_module_attrs)
            attrs = module.__dict__
            attrs.update(__spec__=spec, __loader__=self, __package__=parent)
            if entry[3]:
                spec.submodule_search_locations = [os.path.dirname(entry[2])]
                attrs.update(__path__=spec.submodule_search_locations, __package__=name)
            modules[name] = module
            try:
                self._run(module, entry)
            except BaseException:
                modules.pop(name, None)
                raise
            if parent:  # as importlib binds a submodule to its package
                setattr(modules[parent], child, modules[name])

    def get_source(self, name: str) -> "str | None":
        """The source, for tracebacks and ``inspect``: the file the module came from."""
        entry = self._index.get(name)
        if entry is None:
            return None
        with open(entry[2], encoding="utf-8") as f:
            return f.read()


def _unchanged(entry: Entry) -> bool:
    """Whether the module's source still has the size and mtime the bundle recorded."""
    try:
        st = os.stat(entry[2])
    except OSError:
        return False
    return st.st_mtime_ns == entry[4] and st.st_size == entry[5]


def descriptors() -> tuple[int, ...]:
    """The descriptors the installed finders hold (close-on-exec: never inherited)."""
    return tuple(f.fd for f in _finders())


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


def package_modules(package_dir: str) -> dict[str, tuple[str, bool]]:
    """The modules of the package at ``package_dir``: name -> (source path, is package)."""
    out: dict[str, tuple[str, bool]] = {}
    root = os.path.dirname(package_dir)
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for fname in sorted(filenames):
            if not fname.endswith(".py"):
                continue
            parts = os.path.relpath(os.path.join(dirpath, fname), root)[: -len(".py")].split(os.sep)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            out[".".join(parts)] = (os.path.join(dirpath, fname), is_package)
    return out


def stdlib_modules_used(names: list[str]) -> dict[str, tuple[str, bool]]:
    """The standard library modules that importing ``names`` loads (imports them in this
    process: the one that builds the bundle): the pure-Python ones, and the extension modules
    (``.so``: their path, so that they are found without a search of sys.path's directories,
    which lists the whole standard library)."""
    for name in names:
        try:
            __import__(name)
        except Exception:  # an optional dependency missing: not on a start path
            pass
    stdlib = os.path.dirname(os.__file__) + os.sep
    out: dict[str, tuple[str, bool]] = {}
    for name, module in sorted(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if not isinstance(origin, str) or not origin.endswith((".py", ".so")):
            continue  # frozen or built in: already as fast as it gets
        if origin.startswith(stdlib) and "site-packages" not in origin:
            out[name] = (origin, getattr(spec, "submodule_search_locations", None) is not None)
    return out


def _top_level_imports(tree: "ast.Module", name: str, is_package: bool) -> list[tuple[str, str]]:
    """The imports ``tree``'s top level makes unconditionally, in order: (module, name) pairs,
    name "" for ``import module`` and the imported name for ``from module import name``."""
    import ast

    out: list[tuple[str, str]] = []
    package = name if is_package else name.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # ``from module import *`` needs the module, as ``import module`` does
            out += [(base, "" if alias.name == "*" else alias.name) for alias in node.names]
    return out


def _top_level_names(tree: "ast.Module") -> set[str]:
    """The names the module's own namespace may get (where ``from package import name`` finds
    an attribute of the package rather than a submodule): bound outside functions and classes."""
    import ast

    names: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # their bodies bind names of their own
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def preload_lists(sources: dict[str, tuple[bytes, bool]]) -> dict[str, tuple[str, ...]]:
    """For each module (name -> (source, is package)), the modules of ``sources`` its top level
    imports unconditionally, parents first, in the order Python reaches them; without the
    edges that close an import cycle."""
    import ast

    trees = {name: ast.parse(src) for name, (src, _pkg) in sources.items()}
    bound = {name: _top_level_names(tree) for name, tree in trees.items()}
    edges: dict[str, list[str]] = {}
    for name, tree in trees.items():
        deps: list[str] = []
        for module, attr in _top_level_imports(tree, name, sources[name][1]):
            parts = module.split(".")
            wanted = [".".join(parts[: i + 1]) for i in range(len(parts))]
            if attr and attr not in bound.get(module, ()):
                wanted.append(f"{module}.{attr}")  # a submodule, when there is one
            deps += [d for d in wanted if d in sources and d != name and d not in deps]
        edges[name] = deps

    def reaches(start: str, goal: str) -> bool:
        seen, stack = {start}, [start]
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cyclic = {name for name, deps in edges.items() if any(reaches(d, name) for d in deps)}
    return {
        name: tuple(d for d in deps if not (name in cyclic and d in cyclic and reaches(d, name)))
        for name, deps in edges.items()
    }


def build(out_path: str, modules: dict[str, tuple[str, bool]]) -> int:
    """Compile ``modules`` (name -> (source path, is package)) into a new bundle at
    ``out_path`` (a temporary file, fsynced and renamed); returns how many it holds."""
    index: Index = {}
    blobs: list[bytes] = []
    sources: dict[str, tuple[bytes, bool]] = {}
    stats: dict[str, os.stat_result] = {}
    for name, (origin, is_package) in sorted(modules.items()):
        if origin.endswith(".so"):  # an extension module: only where it is (offset -1)
            st = os.stat(origin)
            index[name] = (-1, 0, origin, False, st.st_mtime_ns, st.st_size, ())
            continue
        with open(origin, "rb") as f:
            stats[name] = os.fstat(f.fileno())
            sources[name] = (f.read(), is_package)
    preload = preload_lists(sources)
    offset = 0
    for name, (source, is_package) in sources.items():
        origin, st = modules[name][0], stats[name]
        blob = marshal.dumps(compile(source, origin, "exec", dont_inherit=True))
        entry = (offset, len(blob), origin, is_package, st.st_mtime_ns, st.st_size, preload[name])
        index[name] = entry
        blobs.append(blob)
        offset += len(blob)
    raw_index = marshal.dumps(index)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    tmp = f"{out_path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(MAGIC + len(raw_index).to_bytes(8, "little") + raw_index)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, out_path)
    return len(index)


def main(argv: list[str]) -> int:
    """``python -m rkt.bundle [OUT]``: build this installation's bundle (``make setup``)."""
    out = argv[0] if argv else bundle_path()
    modules = package_modules(os.path.dirname(os.path.abspath(__file__)))
    used = [n for n in sorted(modules) if n != __spec__.name and not n.endswith("__main__")]
    count = build(out, {**stdlib_modules_used(used), **modules})
    print(f"rkt bundle: {count} modules in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
