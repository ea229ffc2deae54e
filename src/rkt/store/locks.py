"""File locks (flock) and locked temporary directories for the store.

A lock file is never deleted while it may be held; an flock dies with its process, so a process
killed at any instant leaves no stale lock. Temporary directories under ``cas/tmp`` carry a lock of
their own: whoever can take it knows the creator is dead and may delete the directory.

Imports only the standard library and ``rkt.errors``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from rkt.errors import StoreError
from rkt.paths import Path

TMP_LOCK_NAME = ".lock"


class FileLock:
    """An flock on a file; shared or exclusive, blocking or not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False, blocking: bool = True) -> bool:
        if self._fd is None:
            # Read-only is enough for flock, so a lock file another user created (root's, for a
            # member of group rkt) can still be locked; a new one is made group-writable anyway.
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o664)
            except OSError as exc:
                raise StoreError(f'lock "{self.path}": {exc.strerror}') from exc
            try:
                st = os.fstat(self._fd)
                if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o664:
                    os.fchmod(self._fd, 0o664)
            except OSError:
                pass
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(self._fd, flags)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise StoreError(f'lock "{self.path}": {exc.strerror}') from exc
        return True

    def is_current(self) -> bool:
        """Whether the locked file is still the one at ``path`` (not unlinked or replaced)."""
        if self._fd is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class locked:
    """``with locked(path, shared=...) as lock:``: the flock held for the block."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.lock = FileLock(path)
        self.shared = shared

    def __enter__(self) -> FileLock:
        self.lock.acquire(shared=self.shared)
        return self.lock

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class TempDir:
    """A directory under ``tmp_root`` held by this process (its ``.lock`` is flocked).

    A cleaner may meet the directory between its ``mkdir`` and the flock: it removes it if it is
    still empty, or takes the free lock and removes it. Either way the lock we end up holding is
    not the one at ``.lock`` any more, so we check that and start again under a new name.
    """

    def __init__(self, tmp_root: Path, prefix: str = "t") -> None:
        for _ in range(100):
            self.path = tmp_root / f"{prefix}-{os.urandom(8).hex()}"
            self.path.mkdir(mode=0o2775)
            self._lock = FileLock(self.path / TMP_LOCK_NAME)
            try:
                self._lock.acquire()
            except StoreError:  # the directory was removed by a cleaner before the open
                self._lock.release()
                continue
            if self._lock.is_current():
                return
            self._lock.release()
        raise StoreError(f'temp dir in "{tmp_root}": removed by other rkt processes repeatedly')

    def cleanup(self) -> None:
        remove_tree(self.path)
        self._lock.release()

    def __enter__(self) -> TempDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def clean_stale_tempdirs(tmp_root: Path) -> int:
    """Delete temp dirs whose creator is gone (their lock is free). Returns how many."""
    removed = 0
    try:
        entries = list(tmp_root.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if not entry.is_dir() or entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed += 1
                continue
            fd = os.open(entry / TMP_LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # No lock yet: a creator killed after mkdir (empty), or one about to open the lock
            # (it notices the directory is gone and picks a new name).
            try:
                entry.rmdir()
                removed += 1
            except OSError:
                pass
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its creator is alive
        else:
            try:
                remove_tree(entry)
                removed += 1
            except OSError:
                pass
        finally:
            os.close(fd)
    return removed


def remove_tree(path: Path) -> None:
    """rm -rf that tolerates concurrent removal and directories without write (or search)
    permission, as images have.

    Walks with directory descriptors, as shutil.rmtree's fd-based walk does (whose import, with
    ``fnmatch``, ``re`` and ``enum``, is ~5 ms of a ``rkt gc``): a symlink is removed, never
    followed, even one that replaces a directory meanwhile."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        path.unlink(missing_ok=True)
        return
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _remove_dir(parent, path.name)
    finally:
        os.close(parent)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _remove_dir(parent: int, name: str) -> None:
    """Remove the directory ``name`` of the directory open at ``parent``, and all it holds."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return
    except PermissionError:  # no search permission (not for root): ours to grant
        os.chmod(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        if os.fstat(fd).st_mode & 0o700 != 0o700:
            os.fchmod(fd, 0o700)  # unlinking in it needs write permission (not for root)
        with os.scandir(fd) as entries:
            children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for child, is_dir in children:
            if not is_dir:
                try:
                    os.unlink(child, dir_fd=fd)
                    continue
                except FileNotFoundError:
                    continue
                except IsADirectoryError:  # a directory now
                    pass
            _remove_dir(fd, child)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent)
    except FileNotFoundError:
        pass
