"""Privilege separation as rkt has it: root, or membership of the ``rkt`` / ``rkt-admin`` groups.

Reading and fetching into the store needs root or group ``rkt``; changing trust needs root or
group ``rkt-admin``; running pods needs root. File permissions enforce the same; these checks
exist to give a clear one-line error before anything is touched.
"""

from __future__ import annotations

import grp
import os

from rkt.errors import PrivilegeError

RKT_GROUP = "rkt"
RKT_ADMIN_GROUP = "rkt-admin"


def is_root() -> bool:
    return os.geteuid() == 0


def in_group(name: str) -> bool:
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return False
    return gid == os.getegid() or gid in os.getgroups()


def require_root(action: str) -> None:
    if not is_root():
        raise PrivilegeError(f"{action}: must be run as root")


def require_group(action: str, group: str) -> None:
    """Root, or a member of ``group``."""
    if not is_root() and not in_group(group):
        raise PrivilegeError(f'{action}: must be root or a member of group "{group}"')
