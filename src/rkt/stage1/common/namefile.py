"""``NameFile``: a resolv.conf or hosts bind of an app (``AppSpec.name_files``), apart so that the
run entrypoint can plan the pod's name files (``rkt.stage1.ns.network``) before it imports the
rest of the app resolution: the pod's networks start first.

Imports only ``rkt.records``.
"""

from __future__ import annotations

from rkt.records import NamedTuple


class NameFile(NamedTuple):
    """``/etc/resolv.conf`` or ``/etc/hosts`` bound into the app (docs/networking.md "DNS and
    /etc/hosts"): ``over_volumes`` binds it after the volumes (flags and CNI DNS beat a volume on
    that path), else before them (a volume beats the generated fallback)."""

    source: str  # a file of the stage1's mount namespace (the host's, or one the pod generated)
    target: str  # absolute path inside the app, resolved in its root
    read_only: bool
    over_volumes: bool
    # bound only if ``source`` exists once the pod's network is up (a CNI result's DNS: the
    # network attacher writes the file only when the result has some)
    optional: bool = False
