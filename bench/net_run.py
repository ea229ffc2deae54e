"""``rkt run --net=default`` of ``/bin/true`` against crun in a network namespace wired by the same
CNI plugins by hand (issue 5, acceptance 5; the peer measurement is shared/peers/03-cni.sh).

What rkt must do (shared/docs/rkt-reference.md §5): ``--net=default`` is one network, ptp with
host-local IPAM, a default route and IP masquerade; ``default-restricted`` is added only when the
selection lacks ``default``, so it is *not* attached here. The hand-wired case runs the same
plugin binaries (``/usr/lib/cni/ptp``, which execs ``host-local`` and ``iptables``) with the same
configuration as rkt's built-in ``default`` (ptp, ``ipMasq``, MTU 1500, host-local on a /24, a
default route), but its own network name, subnet and IPAM directory, so it never collides with
rkt's leases. rkt's teardown (the DEL) happens in ``rkt gc``, not in ``rkt run``; so the cases
below time set-up and teardown separately, each against its hand-wired counterpart, and the whole
cycle once more, end to end. Three comparisons, each interleaved round by round
(``harness.compare``):

1. Pod start. ``crun in ptp(ipMasq) netns`` (baseline): ``ip netns add``, ptp ADD, ``crun run``
   in that namespace; its DEL and ``ip netns del`` run untimed afterwards, as rkt's gc does.
   ``crun (own netns)``: ``crun run`` making its own empty namespace. ``rkt run --net=default`` and
   ``rkt run --net=none``, ``rkt gc`` untimed. The network's own share is the difference in each
   pair, per round: it is printed under the table ("network part"). rkt's built-in ``default``
   masquerades with rules of its own, in one ``iptables-restore`` (``rkt.net.masquerade``),
   where the hand-wired ptp runs ``iptables`` nine times; so ``rkt run --net=default (ptp
   ipMasq)`` runs rkt once more with a user network named ``default`` (which replaces the
   built-in one) configured exactly as the hand-wired one: the same plugins doing the same
   work, masquerade included.
2. Teardown. ``ptp DEL + ip netns del`` (baseline) of a namespace wired untimed just before;
   ``rkt gc`` of one exited ``--net=default`` pod and of one ``--net=none`` pod (each run untimed
   just before); ``bash wrapper alone`` (the same wrapper doing nothing), so that the hand-wired
   network part is the DEL without the wrapper.
3. End to end. ``crun cycle`` (baseline): netns, ADD, crun, DEL, netns del in one script; ``rkt run
   + gc``: ``rkt run --net=default`` then one ``rkt gc --grace=0`` (which marks the exited pod and
   collects it in the same pass: a second gc would find nothing).

Every case is started by ``nsenter --mount=<bench mount ns> --net=<bench host netns> --``: the
benchmark's own network namespace plays the host (its veths and iptables rules vanish with it;
the machine's namespace is never touched) and its own mount namespace hides the cgroup2 mount
crun 1.8 refuses (``run_pod.BenchNamespace``). The hand-wired steps run in one bash script (its
~2-4 ms are charged to crun; the ``own netns`` and ``wrapper alone`` cases pay them too).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import Case, Comparison, compare, quantile
from run_pod import (
    BenchNamespace,
    compile_bytecode,
    fetch_into,
    make_image,
    make_rootfs,
    need,
    ok,
    rkt_env,
)

PLUGINS = Path("/usr/lib/cni")
BASELINE = "crun in ptp(ipMasq) netns"
CRUN_OWN = "crun (own netns)"
RKT_DEFAULT = "rkt run --net=default"
RKT_NONE = "rkt run --net=none"
RKT_PTP_MASQ = "rkt run --net=default (ptp ipMasq)"
DEL_BASELINE = "ptp DEL + ip netns del"
WRAPPER = "bash wrapper alone"
GC_DEFAULT = "rkt gc (a --net=default pod)"
GC_NONE = "rkt gc (a --net=none pod)"
CYCLE = "crun cycle"
# MODE NETNS ID CONF BUNDLE: the hand-wired steps (as shared/peers/cni-run.sh), one mode per case.
CRUN_SCRIPT = r"""set -eu
mode=$1; ns=$2; id=$3; conf=$4; bundle=$5
cni() { CNI_COMMAND=$1 CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$ns CNI_IFNAME=eth0 \
  CNI_PATH=/usr/lib/cni /usr/lib/cni/ptp < "$conf" > /dev/null; }
case $mode in
  noop) ;;
  own) crun run -b "$bundle-own" "$id" ;;
  wire) ip netns add "$ns"; cni ADD ;;
  add) ip netns add "$ns"; cni ADD; crun run -b "$bundle" "$id" ;;
  del) cni DEL; ip netns del "$ns" ;;
  cycle) ip netns add "$ns"; cni ADD; crun run -b "$bundle" "$id"; cni DEL; ip netns del "$ns" ;;
esac
"""


def _bundles(work: Path, rootfs: Path, netns: str) -> Path:
    """``bundle`` joins ``/run/netns/<netns>``; ``bundle-own`` gets a new namespace from crun."""
    bundle = work / "bundle"
    for path, joins in ((bundle, True), (Path(f"{bundle}-own"), False)):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        subprocess.run(["crun", "spec"], cwd=path, check=True)
        spec = json.loads((path / "config.json").read_text())
        spec["process"]["args"] = ["/bin/true"]
        spec["process"]["terminal"] = False
        spec["root"] = {"path": str(rootfs), "readonly": True}
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network" and joins:
                ns["path"] = f"/run/netns/{netns}"
        (path / "config.json").write_text(json.dumps(spec))
    return bundle


def _ptp_conf(path: Path, name: str, ipam: Path, subnet: str = "10.235.0.0/24") -> Path:
    """rkt's built-in ``default`` (``rkt.net.config.builtin_networks``) under another name,
    masqueraded by ptp itself (``ipMasq``)."""
    plugin = {
        "type": "ptp",
        "ipMasq": True,
        "mtu": 1500,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(ipam),
        },
    }
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": name, **plugin}))
    return path


def network_part(result: Comparison, rkt: tuple[str, str], crun: tuple[str, str], what: str) -> str:
    """A note: per round, (rkt case - its network-less twin) against the same for crun."""
    rkt_ms = [1000 * (r[rkt[0]].wall - r[rkt[1]].wall) for r in result.rounds]
    crun_ms = [1000 * (r[crun[0]].wall - r[crun[1]].wall) for r in result.rounds]

    def spread(ms: list[float]) -> str:
        return f"{statistics.median(ms):.1f} ms [{quantile(ms, 0.25):.1f}-{quantile(ms, 0.75):.1f}]"

    ratio = statistics.median(rkt_ms) / statistics.median(crun_ms)
    return (
        f"**network part, {what}**: rkt `{rkt[0]}` - `{rkt[1]}` = {spread(rkt_ms)}; hand-wired "
        f"`{crun[0]}` - `{crun[1]}` = {spread(crun_ms)}; **{ratio:.2f}x** (ratio of the medians "
        "of the per-round differences [25th-75th percentile])"
    )


def run(
    *,
    rkt: Path,
    workdir: Path,
    rounds: int,
    warmup: int,
    log: Callable[[str], None],
    others: Sequence[tuple[str, Path | None]] = (),
) -> list[Comparison]:
    """``others``: (label, src dir) of other rkt sources to time beside (an A/B), pod start only."""
    need("crun", "ip", "nsenter", "iptables", str(PLUGINS / "ptp"), str(PLUGINS / "host-local"))
    compile_bytecode(rkt)
    env = rkt_env()
    tag = uuid.uuid4().hex[:6]
    host_ns, pod_ns = f"rkt-bench-host-{tag}", f"rkt-bench-crun-{tag}"
    work = workdir / "net-run"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    ipam = work / f"ipam-{tag}"
    conf = _ptp_conf(work / "ptp-masq.conf", f"bench-ptpmasq-{tag}", ipam)
    # a user "default" as the hand-wired network (own subnet and leases): RKT_PTP_MASQ
    local_config = work / f"local-config-{tag}"
    (local_config / "net.d").mkdir(parents=True)
    _ptp_conf(
        local_config / "net.d" / "default.conf",
        "default",
        work / f"ipam-rkt-{tag}",
        "10.235.1.0/24",
    )
    script = work / "crun-ptp.sh"
    script.write_text(CRUN_SCRIPT)
    rootfs = make_rootfs(work / "rootfs")
    bundle = _bundles(work, rootfs, pod_ns)
    name = "example.com/bench-net-true"
    aci = make_image(rkt, work, rootfs, name, ["/bin/true"])
    fetch_into(rkt, data, aci, env)
    # each other source has a store of its own (an older rkt refuses a newer store's index)
    stores: dict[str, tuple[Path, dict[str, str]]] = {"": (data, env)}
    for label, src in others:
        other_env = {**env, "PYTHONPATH": str(src)} if src is not None else env
        stores[label] = (work / f"data-{label}", other_env)
        fetch_into(rkt, stores[label][0], aci, other_env)
    image = f"{name}:1"
    rkt_argv = [str(rkt), f"--dir={data}", "--insecure-options=image"]
    gc_argv = [*rkt_argv, "gc", "--grace=0"]
    counter = iter(range(1 << 30))
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    try:
        with BenchNamespace() as ns, contextlib.ExitStack() as stack:
            inside = [*ns.prefix[:-1], f"--net=/run/netns/{host_ns}", "--"]
            stack.callback(_clean_up, inside, gc_argv, pod_ns, env)  # inside, before ns goes
            for label, (other, other_env) in stores.items():
                if label:
                    other_gc = [str(rkt), f"--dir={other}", "gc", "--grace=0"]
                    stack.callback(_clean_up, inside, other_gc, pod_ns, other_env)
            subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)

            def hand(mode: str, ident: str) -> list[str]:
                return [*inside, "bash", str(script), mode, pod_ns, ident, str(conf), str(bundle)]

            def fresh() -> str:
                return f"bench-{tag}-{next(counter)}"

            def quiet(argv: list[str], extra: dict[str, str] | None = None) -> None:
                subprocess.run(argv, check=True, capture_output=True, env={**env, **(extra or {})})

            def gc(label: str = "") -> None:
                other, other_env = stores[label]
                quiet([*inside, str(rkt), f"--dir={other}", "gc", "--grace=0"], other_env)

            def rkt_run(net: str, label: str = "", *flags: str) -> list[str]:
                argv = [str(rkt), f"--dir={stores[label][0]}", "--insecure-options=image"]
                run = ["run", f"--net={net}", "--pull-policy=never", image]
                return [*inside, *argv, *flags, *run]

            def rkt_run_argv(net: str, label: str = "") -> Callable[[], list[str]]:
                return lambda: rkt_run(net, label)

            crun_id: list[str] = [""]

            def crun_undo() -> None:
                quiet(hand("del", crun_id[0]))

            def crun_add() -> list[str]:
                crun_id[0] = fresh()
                return hand("add", crun_id[0])

            start = [
                Case(
                    BASELINE,
                    crun_add,
                    cleanup=crun_undo,
                    check=ok,
                    description="ip netns add; ptp ADD (ipMasq); crun run /bin/true in it; "
                    "ptp DEL and ip netns del untimed",
                ),
                Case(
                    CRUN_OWN,
                    lambda: hand("own", fresh()),
                    check=ok,
                    description="crun run /bin/true in a new empty netns of its own (no CNI), "
                    "the same bash wrapper",
                ),
            ]
            for label, src in [("", None), *others]:  # (label, src dir on PYTHONPATH)
                extra = {"PYTHONPATH": str(src)} if src is not None else {}
                at = f"rkt@{label} " if label else "rkt "
                for net in ("default", "none"):
                    start.append(
                        Case(
                            f"{at}run --net={net}",
                            rkt_run_argv(net, label),
                            cleanup=lambda label=label: gc(label),
                            check=ok,
                            env={**env, **extra},
                            description=f"rkt run --net={net} of /bin/true; rkt gc untimed"
                            + (f" (rkt from {src})" if src else ""),
                        )
                    )
            start.insert(
                3,
                Case(
                    RKT_PTP_MASQ,
                    lambda: rkt_run("default", "", f"--local-config={local_config}"),
                    cleanup=gc,
                    check=ok,
                    env=env,
                    description="rkt run --net=default of /bin/true with net.d's default "
                    "configured as the hand-wired network (ptp's own ipMasq); rkt gc untimed",
                ),
            )
            pod_start = compare(
                "pod start: rkt run --net=default vs crun in a hand-wired ptp(ipMasq) netns",
                start,
                rounds=rounds,
                warmup=warmup,
                baselines=[BASELINE],
                log=log,
            )
            pod_start.notes.append(
                network_part(pod_start, (RKT_DEFAULT, RKT_NONE), (BASELINE, CRUN_OWN), "set-up")
            )
            pod_start.notes.append(
                network_part(
                    pod_start, (RKT_PTP_MASQ, RKT_NONE), (BASELINE, CRUN_OWN), "set-up, ptp ipMasq"
                )
            )
            for label, _ in others:
                pod_start.notes.append(
                    network_part(
                        pod_start,
                        (f"rkt@{label} run --net=default", f"rkt@{label} run --net=none"),
                        (BASELINE, CRUN_OWN),
                        f"set-up, rkt@{label}",
                    )
                )

            def crun_wire() -> None:
                crun_id[0] = fresh()
                quiet(hand("wire", crun_id[0]))

            teardown = compare(
                "teardown: rkt gc of a --net=default pod vs ptp DEL + ip netns del by hand",
                [
                    Case(
                        DEL_BASELINE,
                        lambda: hand("del", crun_id[0]),
                        prepare=crun_wire,
                        check=ok,
                        description="ptp DEL (ipMasq); ip netns del, of a netns wired untimed "
                        "just before (ip netns add; ptp ADD)",
                    ),
                    Case(
                        WRAPPER,
                        lambda: hand("noop", fresh()),
                        check=ok,
                        description="the same bash wrapper doing nothing",
                    ),
                    Case(
                        GC_DEFAULT,
                        lambda: [*inside, *gc_argv],
                        prepare=lambda: quiet(rkt_run("default")),
                        check=ok,
                        env=env,
                        description="rkt gc --grace=0 of one exited --net=default pod "
                        "(stage0, the stage1 gc: cgroups, ptp DEL, netns; the pod directory)",
                    ),
                    Case(
                        GC_NONE,
                        lambda: [*inside, *gc_argv],
                        prepare=lambda: quiet(rkt_run("none")),
                        check=ok,
                        env=env,
                        description="rkt gc --grace=0 of one exited --net=none pod",
                    ),
                ],
                rounds=rounds,
                warmup=warmup,
                baselines=[DEL_BASELINE],
                log=log,
            )
            teardown.notes.append(
                network_part(teardown, (GC_DEFAULT, GC_NONE), (DEL_BASELINE, WRAPPER), "teardown")
            )
            run_default = [*rkt_argv, "run", "--net=default", "--pull-policy=never", image]
            and_gc = " && ".join([" ".join(run_default), " ".join(gc_argv)])
            cycle = compare(
                "end to end: rkt run --net=default + rkt gc vs the hand-wired cycle around crun",
                [
                    Case(
                        CYCLE,
                        lambda: hand("cycle", fresh()),
                        check=ok,
                        description="ip netns add; ptp ADD; crun run /bin/true; ptp DEL; "
                        "ip netns del",
                    ),
                    Case(
                        "rkt run + gc",
                        lambda: [*inside, "sh", "-c", and_gc],
                        check=ok,
                        env=env,
                        description="rkt run --net=default, then rkt gc --grace=0 (marks and "
                        "collects the pod in one pass)",
                    ),
                ],
                rounds=rounds,
                warmup=warmup,
                baselines=[CYCLE],
                log=log,
            )
            results = [pod_start, teardown, cycle]
            for result in results:
                result.notes.append(
                    f"plugins from {PLUGINS} (containernetworking-plugins); rkt's network is its "
                    "built-in `default` alone (no `default-restricted`)"
                )
            return results
    finally:
        shutil.rmtree(ipam, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", host_ns], check=False)


def _clean_up(inside: list[str], gc_argv: list[str], pod_ns: str, env: dict[str, str]) -> None:
    """Whatever a failed run left: rkt's pods (their DELs), the hand-wired netns."""
    subprocess.run([*inside, *gc_argv], check=False, capture_output=True, env=env)
    subprocess.run([*inside, "ip", "netns", "del", pod_ns], check=False, capture_output=True)
