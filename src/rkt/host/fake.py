"""``RecordingHost``: a ``Host`` that records every call instead of making it (for unit tests).

Each call is appended to ``calls`` as ``(method name, args...)``; ``fail`` maps a method name to
an ``OSError`` to raise, so error paths can be tested. Imports only the standard library.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


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

    def umount(self, target: str, flags: int = 0) -> None:
        self._record("umount", target, flags)

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", fd, nstype)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def set_dumpable(self, dumpable: bool) -> None:
        self._record("set_dumpable", dumpable)

    def write_file(self, path: str, data: str) -> None:
        self._record("write_file", path, data)
