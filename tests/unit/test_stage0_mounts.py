"""gc's belt: finding every mount below a pod directory in mountinfo, deepest first."""

from __future__ import annotations

from pathlib import Path

from rkt.stage0.mounts import mounts_under

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:30 / /var/lib/rkt/pods/run/abc rw - tmpfs tmpfs rw
41 40 0:31 / /var/lib/rkt/pods/run/abc/stage1/rootfs/opt/stage2/a/rootfs rw - overlay overlay rw
42 22 0:32 / /var/lib/rkt/pods/run/abcdef rw - tmpfs tmpfs rw
43 40 0:33 / /var/lib/rkt/pods/run/abc/with\\040space rw - tmpfs tmpfs rw
"""


def test_mounts_under_finds_nested_mounts_deepest_first_and_not_siblings() -> None:
    found = mounts_under(Path("/var/lib/rkt/pods/run/abc"), MOUNTINFO)
    assert found[0].endswith("/opt/stage2/a/rootfs")
    assert "/var/lib/rkt/pods/run/abc/with space" in found
    assert found[-1] == "/var/lib/rkt/pods/run/abc"
    assert "/var/lib/rkt/pods/run/abcdef" not in found
