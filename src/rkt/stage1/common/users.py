"""User and group of an app, resolved inside the app's root filesystem (appc ace.md "app"):
``user``/``group`` is a number, a name looked up in the rootfs's /etc/passwd or /etc/group, or an
absolute path in the rootfs whose owner (uid, or gid for the group) is used.

Files are read with openat2 RESOLVE_IN_ROOT: a hostile image's symlinks cannot make rkt read host
files. Imports only the standard library, ``rkt.errors`` and ``rkt.host.linux``.
"""

from __future__ import annotations

from rkt.errors import PodError
from rkt.host.linux import read_file_in_root, stat_in_root

_MAX_ID = (1 << 32) - 2


def _lookup(rootfs: str, db: str, name: str) -> int | None:
    try:
        text = read_file_in_root(rootfs, db).decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def _resolve(rootfs: str, app: str, what: str, value: str, db: str) -> int:
    if value.isdigit():
        number = int(value)
        if number > _MAX_ID:
            raise PodError(f'app "{app}": {what} {value} is out of range')
        return number
    if value.startswith("/"):
        try:
            st = stat_in_root(rootfs, value)
        except OSError as exc:
            raise PodError(f'app "{app}": {what} path "{value}": {exc.strerror}') from exc
        return st.st_uid if what == "user" else st.st_gid
    found = _lookup(rootfs, db, value)
    if found is None:
        raise PodError(f'app "{app}": {what} "{value}" not found in the image\'s {db}')
    return found


def resolve_user(rootfs: str, app: str, user: str) -> int:
    return _resolve(rootfs, app, "user", user, "/etc/passwd")


def resolve_group(rootfs: str, app: str, group: str) -> int:
    return _resolve(rootfs, app, "group", group, "/etc/group")
