"""``rkt run --net=default`` of ``/bin/true`` against crun in a network namespace wired by the same
CNI plugins by hand (issue 5, acceptance 5; the peer measurement is shared/peers/03-cni.sh).

Cases, interleaved round by round (``harness.compare``):

- ``crun in ptp(ipMasq) netns`` (baseline): one bash script doing what 03-cni.sh's
  ``crun-ptp-masq`` mode does: ``ip netns add``; ptp ADD (ipMasq, host-local on a private
  subnet); ``crun run`` of /bin/true joining that namespace; ptp DEL; ``ip netns del``.
- ``rkt run --net=default``: the run alone (namespace, ptp+host-local+ipMasq ADD, the pod, exit);
  ``rkt gc`` (the DEL) runs untimed after each run.
- ``rkt run + gc``: run and both gc passes timed, the same work as the baseline end to end.

Everything runs inside a network namespace made for the benchmark (the "host" of these pods), so
its veths and iptables rules vanish with it; the machine's own namespace is never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from harness import Case, Comparison, Sample, compare
from run_pod import fetch_into, make_image, make_rootfs, need, rkt_env

PLUGINS = Path("/usr/lib/cni")
BASELINE = "crun in ptp(ipMasq) netns"
# Run under ``unshare --mount``: on a cgroup-v1 hybrid host whose cgroup2 mount has controllers,
# crun 1.8 refuses to run ("cgroups in hybrid mode not supported"); the script hides that mount in
# its own mount namespace first, as shared/peers/lib.sh does (a few ms, charged to the baseline).
CRUN_SCRIPT = r"""set -eu
ns=$1; id=$2; conf=$3; bundle=$4
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] && mountpoint -q /sys/fs/cgroup/unified; then
  umount /sys/fs/cgroup/unified; mount -t tmpfs tmpfs /sys/fs/cgroup/unified
fi
cni() { CNI_COMMAND=$1 CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$ns CNI_IFNAME=eth0 \
  CNI_PATH=/usr/lib/cni /usr/lib/cni/ptp < "$conf" > /dev/null; }
ip netns add "$ns"
cni ADD
crun run -b "$bundle" "$id"
cni DEL
ip netns del "$ns"
"""


def _bundle(work: Path, netns: str) -> Path:
    bundle = work / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    shutil.copytree(make_rootfs(bundle.parent / "rootfs"), bundle / "rootfs", symlinks=True)
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    spec["root"] = {"path": "rootfs", "readonly": True}
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/run/netns/{netns}"
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def _aci(rkt: Path, work: Path, data: Path) -> str:
    """The /bin/true image, fetched into the bench store; returns its name."""
    name = "example.com/bench-net-true"
    rootfs = make_rootfs(work / "rootfs")
    fetch_into(rkt, data, make_image(rkt, work, rootfs, name, ["/bin/true"]), rkt_env())
    return f"{name}:1"


def run(
    *, rkt: Path, workdir: Path, rounds: int, warmup: int, log: Callable[[str], None]
) -> list[Comparison]:
    need("crun", "ip", "nsenter", "iptables", str(PLUGINS / "ptp"))
    tag = uuid.uuid4().hex[:6]
    host_ns, pod_ns = f"rkt-bench-host-{tag}", f"rkt-bench-crun-{tag}"
    work = workdir / "net-run"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    ipam = work / "ipam"
    conf = work / "ptp-masq.conf"
    conf.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"bench-ptpmasq-{tag}",
                "type": "ptp",
                "ipMasq": True,
                "mtu": 1500,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.235.0.0/16"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam),
                },
            }
        )
    )
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    try:
        inside = ["nsenter", f"--net=/run/netns/{host_ns}", "--"]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        bundle = _bundle(work, pod_ns)
        image = _aci(rkt, work, data)
        rkt_argv = [str(rkt), f"--dir={data}", "--insecure-options=image"]
        run_argv = [*rkt_argv, "run", "--net=default", "--pull-policy=never", image]
        gc_argv = [*rkt_argv, "gc", "--grace=0"]
        counter = iter(range(1 << 30))

        def gc() -> None:
            for _ in range(2):
                subprocess.run([*inside, *gc_argv], check=True, capture_output=True)

        def ok(sample: Sample) -> str | None:
            return None if sample.returncode == 0 else sample.stderr.decode(errors="replace")[-300:]

        script = work / "crun-ptp.sh"
        script.write_text(CRUN_SCRIPT)
        and_gc = " && ".join([" ".join(run_argv)] + [" ".join(gc_argv)] * 2)
        cases = [
            Case(
                BASELINE,
                lambda: [
                    *inside,
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "bash",
                    str(script),
                    pod_ns,
                    f"bench-{tag}-{next(counter)}",
                    str(conf),
                    str(bundle),
                ],
                check=ok,
                description="ip netns add; ptp ADD (ipMasq); crun run /bin/true; ptp DEL; "
                "ip netns del (in bash under unshare --mount)",
            ),
            Case(
                "rkt run --net=default",
                lambda: [*inside, *run_argv],
                cleanup=gc,
                check=ok,
                description="rkt run of /bin/true on the default network; gc untimed",
            ),
            Case(
                "rkt run + gc",
                lambda: [*inside, "sh", "-c", and_gc],
                check=ok,
                description="rkt run, then rkt gc twice (mark, then DEL and delete), all timed",
            ),
        ]
        result = compare(
            "rkt run --net=default vs crun in a hand-wired ptp(ipMasq) netns",
            cases,
            rounds=rounds,
            warmup=warmup,
            baselines=[BASELINE],
            log=log,
        )
        result.notes.append(
            "all cases run inside a benchmark-made network namespace; plugins from "
            f"{PLUGINS} (containernetworking-plugins)"
        )
        return [result]
    finally:
        subprocess.run(
            [
                "nsenter",
                f"--net=/run/netns/{host_ns}",
                "--",
                *[str(rkt), f"--dir={data}", "gc", "--grace=0"],
            ],
            check=False,
            capture_output=True,
        )
        subprocess.run(["ip", "netns", "del", pod_ns], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", host_ns], check=False)
        shutil.rmtree(ipam, ignore_errors=True)
