"""Building rkt's module bundle (``python -m rkt.bundle``, run by ``make setup``): the file
``rkt.bundle`` reads, and the lists of imports it preloads (see there)."""

from __future__ import annotations

import ast
import marshal
import os
import sys

from rkt.bundle import MAGIC, Index, bundle_path


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


def _top_level_imports(tree: ast.Module, name: str, is_package: bool) -> list[tuple[str, str]]:
    """The imports ``tree``'s top level makes unconditionally, in order: (module, name) pairs,
    name "" for ``import module`` and the imported name for ``from module import name``."""
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


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names the module's own namespace may get (where ``from package import name`` finds
    an attribute of the package rather than a submodule): bound outside functions and classes."""
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
        with open(origin, "rb") as f:
            stats[name] = os.fstat(f.fileno())
            if not origin.endswith(".so"):
                sources[name] = (f.read(), is_package)
    preload = preload_lists(sources)
    offset = 0
    for name, (origin, is_package) in sorted(modules.items()):
        st = stats[name]
        code = None  # an extension module: only where it is
        if name in sources:
            code = compile(sources[name][0], origin, "exec", dont_inherit=True)
        imports = preload.get(name, ())
        blob = marshal.dumps((origin, is_package, st.st_mtime_ns, st.st_size, imports, code))
        index[name] = (offset, len(blob))
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
