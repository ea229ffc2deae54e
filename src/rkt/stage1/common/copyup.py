"""Docker copy-up: an implicit empty volume filled with the image's content at its mount path.

Docker fills a fresh volume with what the image has at the VOLUME path; rkt's docker2aci path
did the same (``ConvertedFromDocker``). stage0 marks such volumes with the pod annotation
``rkt.local/copy-up/<volume>`` (docs/stage1-abi.md §2); the app named there copies them up in
its own mount namespace, from its merged overlay root, before anything is mounted in it.

Safety: the source is walked with directory descriptors only. The mount path is resolved
inside the app's root (openat2 ``RESOLVE_IN_ROOT``), every entry below it is opened with
``O_NOFOLLOW`` relative to its parent's descriptor, and symlinks are copied as symlinks, never
followed, so an image cannot make the copy read or write outside the app's root and the volume.
Owners, modes (set after chown, so setuid bits stay), xattrs (not ``trusted.overlay.*``),
timestamps, symlinks, hard links, fifos and device nodes are kept; sockets are skipped. An
entry already in the volume is left as it is: the copy never overwrites.

Once per pod: ``marker`` is a file in the stage1's private directory, ``flock``-ed while the
copy runs (two apps sharing the volume serialise) and holding ``done`` once it completed; a
restarted app finds it and copies nothing.

Imports only the standard library and ``rkt.host.libc``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from rkt.host import libc
from rkt.host.flags import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS

DONE = b"done\n"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def copy_up_once(root_fd: int, path: str, volume: str, marker: str) -> bool:
    """Copy the image's ``path`` (inside ``root_fd``) into the volume dir ``volume`` unless
    ``marker`` says it was done for this pod; True if this call copied."""
    os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
    fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.pread(fd, len(DONE), 0) == DONE:
            return False
        copied = copy_up(root_fd, path, volume)
        os.pwrite(fd, DONE, 0)
        os.fsync(fd)
        return copied
    finally:
        os.close(fd)


def copy_up(root_fd: int, path: str, volume: str) -> bool:
    """Copy the directory ``path`` of the root ``root_fd`` into ``volume``; False (nothing
    copied) when the image has no directory there."""
    resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    try:
        src = libc.openat2(root_fd, "/" + path.strip("/"), os.O_RDONLY | os.O_DIRECTORY, resolve)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        dst = os.open(volume, _DIR_FLAGS)
        try:
            copier = _Copier()
            try:
                copier.copy_dir(src, dst)
            finally:
                copier.close()
            _copy_attrs(src, dst, os.fstat(src))
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return True


class _Copier:
    def __init__(self) -> None:
        self.links: dict[tuple[int, int], int] = {}  # O_PATH fds of copies

    def copy_dir(self, src: int, dst: int) -> None:
        for name in sorted(os.listdir(src)):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            if _exists(dst, name):
                if stat.S_ISDIR(st.st_mode) and _is_real_dir(dst, name):
                    self._descend(src, dst, name, st, keep_attrs=True)
                continue  # never overwrite what the volume has
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                self._descend(src, dst, name, st, keep_attrs=False)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                _copy_link_attrs(src, dst, name, st)
            elif not stat.S_ISSOCK(st.st_mode) and not self._link(st, dst, name):
                self._copy_node(src, dst, name, st)

    def _descend(
        self, src: int, dst: int, name: str, st: os.stat_result, *, keep_attrs: bool
    ) -> None:
        sfd = os.open(name, _DIR_FLAGS, dir_fd=src)
        try:
            dfd = os.open(name, _DIR_FLAGS, dir_fd=dst)
            try:
                self.copy_dir(sfd, dfd)
                if not keep_attrs:
                    _copy_attrs(sfd, dfd, st)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def _link(self, st: os.stat_result, dst: int, name: str) -> bool:
        """A second name of a file already copied becomes a hard link to the copy, made through
        the copy's own descriptor: no path in the volume is resolved, so nothing in it (other
        apps of the pod may be writing there) can redirect the link."""
        if st.st_nlink < 2:
            return False
        first = self.links.get((st.st_dev, st.st_ino))
        if first is None:
            return False
        os.link(f"/proc/self/fd/{first}", name, dst_dir_fd=dst, follow_symlinks=True)
        return True

    def _copy_node(self, src: int, dst: int, name: str, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):  # fifo, character or block device
            os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=dst)
            _copy_link_attrs(src, dst, name, st)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != stat.S_IFMT(st.st_mode):
                    raise FileExistsError(errno.EEXIST, "replaced while copying", name)
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode))
            finally:
                os.close(fd)
            return
        sfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            dfd = os.open(name, flags, 0o600, dir_fd=dst)
            try:
                _copy_bytes(sfd, dfd)
                _copy_attrs(sfd, dfd, st)
                if st.st_nlink > 1:
                    self.links[(st.st_dev, st.st_ino)] = os.open(
                        name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst
                    )
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def close(self) -> None:
        for fd in self.links.values():
            os.close(fd)
        self.links.clear()


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _is_real_dir(dir_fd: int, name: str) -> bool:
    return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)


def _copy_bytes(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(dst, 0, os.SEEK_SET)
    os.ftruncate(dst, 0)
    while chunk := os.read(src, _CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]


def _copy_attrs(src: int, dst: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears setuid), xattrs, times: on open descriptors."""
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_link_attrs(src: int, dst: int, name: str, st: os.stat_result) -> None:
    """Owner, xattrs and times of a symlink or node, by name relative to its parent."""
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
    # No *at form of [l]listxattr: the parents' magic links name the directories we hold.
    _copy_xattrs(f"/proc/self/fd/{src}/{name}", f"/proc/self/fd/{dst}/{name}")
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_xattrs(src: int | str, dst: int | str) -> None:
    """Between two descriptors, or two paths whose last component is not followed."""
    nofollow = isinstance(src, str)
    try:
        names = os.listxattr(src, follow_symlinks=not nofollow)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENOENT):
            return
        raise
    for key in names:
        if key.startswith("trusted.overlay."):
            continue  # overlayfs's own metadata, never part of the content
        try:
            value = os.getxattr(src, key, follow_symlinks=not nofollow)
            os.setxattr(dst, key, value, follow_symlinks=not nofollow)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
