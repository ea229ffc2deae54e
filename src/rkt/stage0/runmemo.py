"""``rkt run``'s memo: the pod a command line prepared last time, laid out again without being
decided again, for as long as nothing it was decided from has changed.

Preparing a pod decides its layout (rkt.stage0.layout) from the command line, the environment,
the configuration, the store's index and the installation. Most of the ~6 ms that takes is
loading the modules that decide (the flag grammar, the image reference parser, the fetcher, the
image and pod schemas) rather than laying the pod out. A command line that is run again and
again (a systemd unit, a script) gets the same layout every time until one of those inputs
changes. So when a ``rkt run`` has prepared its pod the usual way for the second time (the
first leaves only a mark: ``seen_before``; a command line run once costs no memo), it writes
down the steps it took, how the pod is to run (``RunOptions``, whether its networks may start
early, the ``--uuid-file-save`` file) and what all that came from. The next ``rkt run`` with
the same key checks that before it even parses its flags (``run_from_memo``, called by
``rkt.cli.main``), carries out the same steps for its own pod and goes on exactly as the usual
way does from there (``rkt.stage0.run.launch``): the stage1 reads the pod from its directory
and decides everything about how the apps run (capabilities, seccomp, mounts, users, cgroups)
every time (ABI §2).

**The key** is exactly the command line (its arguments as given), the SHA-256 of the whole
environment (not the environment itself: the memo may outlive a secret), the working directory,
the effective uid and gid, the interpreter, where rkt's package is and the identity of the
installation's module bundle (no memo without a bundle). The memo is looked for in the data
directory the command line names (``guess_dir``: ``--dir``, else ``$RKT_DIR``, else rkt's
default), and written only when that is the pod's data directory, so a data directory set by
the ``paths`` configuration has none.

**What must not have changed**, checked before the memo is used: every configuration file
``load_config`` reads (each kind's directory's ``*.json`` names and each file's content, by
SHA-256); the store's name file of every image name the pod used (rkt.store.names: the rows
images are resolved from; by SHA-256); the store trees the layout links to or stacks (named
after their content: present is the same); no regular file has appeared under the name of an
image argument (it would be the image: rkt.fetch.reference); the identity of the built-in
stage1's native programs (their size and mtime, which choose its image: ``native_identity``);
the source of every module of rkt's the usual way loaded (size and mtime, as the bundle checks
them: none is written while one came from anywhere but the bundle, and one the memo's run
does not load is looked at). An image's recorded last use is kept as prepare keeps it: a memo
is written only by a run that recorded none, and used only while none is due
(``Store.touch``, once a minute; a clock set back counts as due), or the pod is prepared the
usual way.

**Only** a pod of images named on the command line and found in the store (``--pull-policy``
new or never; no file, URL, ``docker://`` or image ID), with the built-in stage1, no
``--pod-manifest`` and no ``--set-env-file`` (their contents are not in the key) is memoised.
Checks the usual way makes before a pod exists and that do not follow from the key are made
again (``--uuid-file-save``'s directory): when one fails, the usual way runs and says why.

The memos are files ``<dir>/cache/run-memo/<digest>.json`` (the marks ``<digest>.seen``), owned
by the user running rkt and readable only by them, in a directory of the same kind (anything
else is ignored); at most ``MAX_MEMOS`` memos and ``MAX_MARKS`` marks are kept, the least
recently written removed first. A memo is written to a
temporary file and renamed, not fsynced: it is a cache, and one a crash left empty or torn
does not parse or does not hold its key, so it is not used. ``RKT_RUN_MEMO=0`` in the
environment turns the memo off; ``--debug`` says when a pod was laid out from it
(docs/architecture.md, "The run memo").

Imports only the standard library and rkt's leaves: a command line without a memo loads
little more to find that out (the layout and the rest when a memo is used or written).
"""

from __future__ import annotations

import os
import stat
import sys
import time

from rkt import __version__, jsonio
from rkt.errors import PodError, RktError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from rkt.paths import Path
    from rkt.pod.pod import Pod, PodLock
    from rkt.settings import GlobalOptions
    from rkt.stage0.fetch import Fetcher
    from rkt.stage0.headstart import HeadStart
    from rkt.stage0.layout import PreparedPod
    from rkt.stage0.request import PodRequest
    from rkt.stage0.run import RunOptions
    from rkt.store.store import Store

    Memo = dict[str, Any]  # the parsed memo file: v, key, used, deps, steps, manifest, run

FORMAT = 1
MEMO_DIR = ("cache", "run-memo")
MAX_MEMOS = 32
MAX_MARKS = 64
try:  # built into Debian's python3.11 (~40 us to import); hashlib loads OpenSSL (~1 ms)
    from _sha256 import sha256 as _sha256
except ImportError:  # pragma: no cover (another build of Python)
    from hashlib import sha256 as _sha256


def memo_dir(data_dir: Path | str) -> str:
    return os.path.join(data_dir, *MEMO_DIR)


def digest(data: str | bytes) -> str:
    """SHA-256 of ``data`` (text as UTF-8), in hex: what the key holds of the environment, a
    dependency of a file's content, a memo's file name."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return str(_sha256(data).hexdigest())


def enabled() -> bool:
    """Whether the memo is on (``RKT_RUN_MEMO=0`` turns it off)."""
    return os.environ.get("RKT_RUN_MEMO") != "0"


def make_key(argv: Sequence[str]) -> str | None:
    """The memo key of ``rkt ARGV`` (see the module doc); None when it cannot have one."""
    if not enabled():
        return None
    import rkt
    from rkt import bundle

    code = bundle.identity()
    if code is None:
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    env = jsonio.dumps(sorted(os.environ.items()))
    return jsonio.dumps(
        [
            FORMAT,
            __version__,
            code,
            sys.executable,
            os.path.dirname(rkt.__file__),
            list(argv),
            digest(env),
            cwd,
            os.geteuid(),
            os.getegid(),
        ]
    )


def guess_dir(argv: Sequence[str]) -> str:
    """Where the memo of ``rkt ARGV`` is looked for, without parsing it: the last ``--dir``,
    else ``$RKT_DIR``, else rkt's default. A memo is written only where this points and the
    pod's data directory is (``record``), so a wrong guess only means no memo."""
    found = None
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token.startswith("--dir="):
            found = token[len("--dir=") :]
        elif token == "--dir" and i + 1 < len(argv):
            found = argv[i + 1]
    if found is None:
        found = os.environ.get("RKT_DIR", "/var/lib/rkt")
    return os.path.abspath(found) if found else found


def config_dependencies(bases: Sequence[str | None]) -> list[list[Any]]:
    """What ``rkt.config.load_config`` reads from the config dirs ``bases``: each kind's
    directory (its ``*.json`` names) and each file in it (its content)."""
    from rkt.config import KINDS

    deps: list[list[Any]] = []
    for base in bases:
        if base is None:
            continue
        for kind in KINDS:
            kind_dir = os.path.join(base, f"{kind}.d")
            listing = _listing(kind_dir)
            deps.append(["listing", kind_dir, listing])
            for name in [] if listing is None else jsonio.loads(listing):
                path = os.path.join(kind_dir, name)
                deps.append(["file", path, _file_digest(path)])
    return deps


def _listing(path: str) -> str | None:
    """The config files in ``path`` as load_config finds them (none when it is absent or not
    a directory); None when it cannot be read (load_config's error)."""
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    except OSError:
        return None
    return jsonio.dumps(names)


def _sources() -> list[list[Any]]:
    """Every module of rkt's loaded so far, by its source file's size and mtime (the bundle
    checks the same before it serves a module): a module changed since the memo was written,
    and not loaded by the run that looks at it, is found by its file."""
    deps: list[list[Any]] = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not name.startswith("rkt.") or name == "rkt.bundle" or not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        deps.append(["source", name, path, st.st_size, st.st_mtime_ns])
    return deps


def _file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return digest(data)


def _holds(dep: list[Any]) -> bool:
    """Whether a dependency is as it was when the memo was written."""
    kind = dep[0]
    if kind == "file":  # a name file (the same rows) or a config file: the same content
        return bool(_file_digest(dep[1]) == dep[2])
    if kind == "dir":  # a store tree: named after its content, so present is the same
        return os.path.isdir(dep[1])
    if kind == "listing":  # a config dir: the same files in it (absent: none)
        listing = _listing(dep[1])
        return listing is not None and listing == dep[2]
    if kind == "not-file":  # an image argument: a regular file of its name would be the image
        return not os.path.isfile(dep[1])
    if kind == "source":  # a module of rkt's that decided (the bundle's modules check their own)
        module = sys.modules.get(dep[1])
        if module is not None:
            from rkt import bundle

            return bundle.serves(module)
        try:
            st = os.stat(dep[2])
        except OSError:
            return False
        return [st.st_size, st.st_mtime_ns] == dep[3:]
    if kind == "native":  # the built-in stage1's programs, as its image is chosen by them
        from rkt.stage0.stage1_image import native_identity

        try:
            return bool(native_identity(dep[1]) == dep[2])
        except RktError:
            return False
    return False


def _private(st: os.stat_result, kind: Callable[[int], bool]) -> bool:
    return kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def lookup(data_dir: Path | str, key: str) -> Memo | None:
    """The memo for ``key`` if there is one and everything it depends on is as it was."""
    where = memo_dir(data_dir)
    try:
        fd = os.open(
            os.path.join(where, digest(key) + ".json"),
            os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
        )
    except OSError:
        return None
    try:
        if not _private(os.fstat(fd), stat.S_ISREG) or not _private(
            os.stat(where, follow_symlinks=False), stat.S_ISDIR
        ):
            return None
        data = b""
        while chunk := os.read(fd, 1 << 16):
            data += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        memo = jsonio.loads(data)
        if not (
            isinstance(memo, dict)
            and memo.get("v") == FORMAT
            and memo.get("key") == key
            and memo["run"]["dir"] == str(data_dir)
            and memo["used"][0] <= time.time() < memo["used"][1]
            and all(_holds(dep) for dep in memo["deps"])
            and isinstance(memo["steps"], list)
            and isinstance(memo["manifest"], str)
        ):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    return memo


def run_from_memo(argv: list[str]) -> None:
    """``rkt run ARGV`` from its memo, when it has one that holds: then this never returns (the
    pod's stage1 runs in this process or is exec'd) or raises what ``rkt run`` would. Without
    one it returns, having created nothing, and the command line is parsed as usual."""
    key = make_key(["run", *argv])
    if key is None:
        return
    data_dir = guess_dir(argv)
    memo = lookup(data_dir, key)
    if memo is None:
        return
    from rkt.paths import Path
    from rkt.stage0.run import RunOptions, launch, save_uuid

    run = memo["run"]
    try:
        values: list[Any] = [tuple(v) if isinstance(v, list) else v for v in run["options"]]
        options = RunOptions(*values)
    except TypeError:
        return
    save = run.get("uuid_file_save")
    if save and not _may_write(save):
        return  # the usual way says why, before a pod exists
    head = None
    if run.get("early"):
        from rkt.stage0.headstart import HeadStart

        head = HeadStart(options)
        head.decide_from(True)
    embryo = None if head is None else head.create_pod(Path(data_dir))
    prepared = replay(
        memo,
        Path(data_dir),
        embryo,
        on_abort=None if head is None else head.abort,
        keep_lock=True,
    )
    if options.debug:
        sys.stderr.write(f'rkt: pod "{prepared.pod.uuid}": laid out from the run memo\n')
    if save:
        save_uuid(prepared.pod, save)
    launch(prepared.pod, prepared.lock, options, head)


def _may_write(path: str) -> bool:
    """``--uuid-file-save``'s file can be written: not a directory, in one that exists."""
    return not os.path.isdir(path) and os.path.isdir(os.path.dirname(os.path.abspath(path)))


def replay(
    memo: Memo,
    data_dir: Path,
    embryo: tuple[Pod, PodLock] | None,
    *,
    on_abort: Callable[[], None] | None = None,
    keep_lock: bool = False,
) -> PreparedPod:
    """Lay the pod out from ``memo`` (``prepare_pod``'s contract: the pod ends in ``prepared``,
    or as garbage when anything fails)."""
    from rkt.pod.pod import abandon_pod, create_embryo, ensure_pods_root
    from rkt.stage0.layout import Layout, PreparedPod, finish_layout

    pod, lock = embryo if embryo is not None else create_embryo(ensure_pods_root(data_dir))
    try:
        finish_layout(pod, Layout(memo["steps"]), memo["manifest"].encode("latin-1"))
    except (RktError, OSError, ValueError) as exc:
        abandon_pod(pod, lock, on_abort)
        raise PodError(f'pod "{pod.uuid}": prepare failed: {exc}') from exc
    except BaseException:
        abandon_pod(pod, lock, on_abort)
        raise
    if keep_lock:
        return PreparedPod(pod, None, lock)
    lock.close()
    return PreparedPod(pod, None)


def record(
    key: str,
    argv: Sequence[str],
    prepared: PreparedPod,
    run: dict[str, Any],
    config: Sequence[list[Any]],
) -> bool:
    """Write the memo of ``rkt ARGV`` (``key``), whose pod was just prepared the usual way
    (``prepared.memoisable``); ``run``:
    what ``run_from_memo`` needs besides the layout (``dir``, ``options``, ``early``,
    ``uuid_file_save``), ``config``: ``config_dependencies``. False when it is not written (a
    name file missing, a module not from the bundle, the memo directory not private, the data
    directory not where ``guess_dir`` looks); never fails the run."""
    from rkt import bundle
    from rkt.stage0.stage1_image import native_identity

    layout, memoisable = prepared.layout, prepared.memoisable
    if layout is None or memoisable is None or not bundle.serves_all("rkt"):
        return False
    used = memoisable.used
    if not used[0] <= time.time() < used[1] or guess_dir(argv) != run["dir"]:
        return False
    deps: list[list[Any]] = [*config, *_sources()]
    for path in memoisable.name_files:
        content = _file_digest(path)
        if content is None:
            return False
        deps.append(["file", path, content])
    deps += [["dir", path] for path in layout.sources]
    deps += [["not-file", path] for path in memoisable.not_files]
    try:
        deps.append(["native", memoisable.flavor, native_identity(memoisable.flavor)])
    except RktError:
        return False
    memo = {
        "v": FORMAT,
        "key": key,
        "used": list(used),
        "deps": deps,
        "steps": layout.steps,
        "manifest": prepared.manifest.decode("latin-1"),
        "run": {**run, "early": memoisable.early},
    }
    try:
        data = jsonio.dumps(memo).encode()
        return _write(memo_dir(run["dir"]), digest(key) + ".json", data)
    except (OSError, TypeError, ValueError):  # a memo is never worth failing the run for
        return False


def _write(where: str, name: str, data: bytes) -> bool:
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
    except FileExistsError:
        return False
    if not _private(os.stat(where, follow_symlinks=False), stat.S_ISDIR):
        return False
    tmp = os.path.join(where, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:  # no fsync: after a crash a memo may be empty or torn, and is then not used
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(where, name))
    _prune(where)
    return True


def seen_before(data_dir: Path | str, key: str) -> bool:
    """Whether ``rkt run`` of ``key`` was prepared the usual way before, since its memo was last
    written: a memo is written the second time, so a command line run once (a new
    ``--uuid-file-save`` file or ``--name`` every time) costs no memo. The first time leaves a
    mark, an empty ``<digest>.seen``, which the second removes."""
    where = memo_dir(data_dir)
    mark = os.path.join(where, digest(key) + ".seen")
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        if not _private(os.stat(where, follow_symlinks=False), stat.S_ISDIR):
            return False
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        _unlink(mark)
        return True
    except OSError:
        return False
    os.close(fd)
    _prune(where)
    return False


def _prune(where: str) -> None:
    """At most MAX_MEMOS memos and MAX_MARKS marks: the least recently written go first (marks
    apart, so command lines run once do not push out the memos of those run again). A
    temporary file a killed rkt left (older than a minute: no write takes that long) goes too.
    Only names are read while there are not more files than both limits allow."""
    if len(os.listdir(where)) <= MAX_MEMOS + MAX_MARKS:
        return
    memos, marks = [], []
    stale = time.time_ns() - 60 * 10**9
    for entry in os.scandir(where):
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime_ns
        except OSError:
            continue
        if entry.name.endswith(".json"):
            memos.append((mtime, entry.path))
        elif entry.name.endswith(".seen"):
            marks.append((mtime, entry.path))
        elif entry.name.endswith(".tmp") and mtime < stale:
            _unlink(entry.path)
    for entries, limit in ((memos, MAX_MEMOS), (marks, MAX_MARKS)):
        entries.sort()
        for _mtime, path in entries[: max(0, len(entries) - limit)]:
            _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def memoisable(
    prepared: PreparedPod,
    request: PodRequest,
    stage1_config: dict[str, str],
    fetcher: Fetcher,
    store: Store,
    head: HeadStart | None,
    env_files: bool,
) -> PreparedPod:
    """``prepared`` (by ``rkt run``), with what its memo would depend on when it may be
    memoised (only images named and found in the store, the built-in stage1, no environment
    file, and no image use recorded by this run)."""
    from rkt.stage0.headstart import static_eligible
    from rkt.stage0.layout import Memoisable
    from rkt.stage0.stage1_image import builtin_flavor_chosen, builtin_name
    from rkt.store.store import TOUCH_INTERVAL

    flavor = builtin_flavor_chosen(request.stage1, stage1_config)
    last_used = prepared.layout.last_used if prepared.layout is not None else []
    apps = len(request.apps)
    if flavor is None or not last_used:
        return prepared
    if not eligible(fetcher.fetched, len(fetcher.store_hits), apps, env_files):
        return prepared
    files = name_files(store.names_dir, [*fetcher.store_hits, builtin_name(flavor)])
    now = time.time()
    if files is None or not all(0 <= now - used < TOUCH_INTERVAL for used in last_used):
        return prepared  # (this run recorded a use: Store.touch)
    early = head is not None and static_eligible(head.options, request, stage1_config)
    return prepared._replace(
        memoisable=Memoisable(
            tuple(files),
            flavor,
            (max(last_used), min(last_used) + TOUCH_INTERVAL),
            early,
            # an existing regular file of that name would be the image (fetch.reference's
            # test, as it makes it: ".." after a symlink is the kernel's to resolve)
            tuple(os.path.join(os.getcwd(), app.image.strip()) for app in request.apps),
        )
    )


def record_run(
    argv: list[str],
    opts: GlobalOptions,
    options: RunOptions,
    prepared: PreparedPod,
    uuid_file_save: str | None,
) -> None:
    """Memoise the pod ``rkt run ARGV`` just prepared (``prepared.memoisable``), the second
    time it is (``seen_before``)."""
    full = ["run", *argv]
    key = make_key(full)
    if key is None or guess_dir(argv) != str(opts.dir):
        return  # (no memo would be found where the next run looks)
    if not seen_before(opts.dir, key):
        return
    run = {"dir": str(opts.dir), "options": list(options), "uuid_file_save": uuid_file_save}
    bases = (opts.system_config, opts.local_config, opts.user_config)
    record(
        key,
        full,
        prepared,
        run,
        config_dependencies([None if b is None else str(b) for b in bases]),
    )


def eligible(fetched: int, store_hits: int, apps: int, env_files: bool) -> bool:
    """Whether a pod of the built-in stage1 prepared so can be memoised (see the module doc):
    every image a name found in the store, nothing else fetched, no environment file read."""
    return not env_files and apps > 0 and fetched == store_hits == apps


def name_files(names_dir: Path, names: Sequence[str]) -> list[str] | None:
    """The store's name files of ``names`` (rkt.store.names); None when a name has none."""
    from rkt.store import names as rows

    paths = []
    for name in names:
        fname = rows.file_name(name)
        if fname is None:
            return None
        paths.append(os.path.join(names_dir, fname))
    return paths
