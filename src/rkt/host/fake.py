"""``RecordingHost``: a ``Host`` that records every call instead of making it (for unit tests).

Each call is appended to ``calls`` as ``(method name, args...)``; ``fail`` maps a method name to
an ``OSError`` to raise, so error paths can be tested. Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rkt.host.api import TargetKind


class RecordingHost:
    def __init__(self, fail: dict[str, OSError] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = dict(fail or {})

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise self.fail[name]

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def mount_in_root(
        self,
        root_fd: int,
        target: str,
        source: str | None,
        fstype: str | None,
        flags: int,
        data: str | None = None,
        *,
        create: TargetKind | None = "dir",
    ) -> None:
        self._record("mount_in_root", target, source, fstype, flags, data, create)

    def symlink_in_root(self, root_fd: int, path: str, target: str) -> None:
        self._record("symlink_in_root", path, target)

    def umount(self, target: str, flags: int = 0) -> None:
        self._record("umount", target, flags)

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", fd, nstype)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def set_pdeathsig(self, signum: int) -> None:
        self._record("set_pdeathsig", signum)

    def set_no_new_privs(self) -> None:
        self._record("set_no_new_privs")

    def set_dumpable(self, dumpable: bool) -> None:
        self._record("set_dumpable", dumpable)

    def set_identity(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        self._record("set_identity", uid, gid, groups)

    def drop_bounding_set(self, keep: Iterable[int]) -> None:
        self._record("drop_bounding_set", frozenset(keep))

    def limit_capabilities(self, keep: Iterable[int]) -> None:
        self._record("limit_capabilities", frozenset(keep))

    def keep_capabilities(self) -> None:
        self._record("keep_capabilities")

    def raise_ambient(self, caps: Iterable[int]) -> None:
        self._record("raise_ambient", frozenset(caps))

    def load_seccomp(self, retain: bool, syscalls: Iterable[str], errno_value: int) -> None:
        self._record("load_seccomp", retain, tuple(syscalls), errno_value)

    def write_file(self, path: str, data: str) -> None:
        self._record("write_file", path, data)

    def bring_up_loopback(self) -> None:
        self._record("bring_up_loopback")
