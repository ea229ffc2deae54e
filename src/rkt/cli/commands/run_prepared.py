"""``rkt run-prepared UUID``: run a pod made by ``rkt prepare``."""

from __future__ import annotations

import sys

from rkt.cli.net_flags import DEFAULT_NET, NETWORKS, hostname_option, network_options
from rkt.cli.quickparse import add_bool
from rkt.errors import UsageError
from rkt.pod.pod import ensure_pods_root, find_pod
from rkt.settings import GlobalOptions
from rkt.stage0.privileges import require_root
from rkt.stage0.run import RunOptions, exec_stage1, start_run
from rkt.textcheck import is_lower_hex

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", nargs="?", help="the prepared pod")
    # cobra's NoOptDefVal: a bare --net is the default network; --net=NAME chooses
    parser.add_argument(
        "--net",
        default=DEFAULT_NET,
        nargs="?",
        const="default",
        help=f"networks ({', '.join(NETWORKS)})",
    )
    for flag, what in (
        ("--dns", "name server IP, or host, or none (repeatable)"),
        ("--dns-search", "DNS search domain (repeatable)"),
        ("--dns-opt", "resolv.conf option (repeatable)"),
        ("--hosts-entry", "IP=HOSTNAME for /etc/hosts, or host (repeatable)"),
        ("--port", "NAME:[HOSTIP:]HOSTPORT, forward an image port (repeatable)"),
    ):
        parser.add_argument(flag, action="append", default=[], help=what)
    parser.add_argument("--dns-domain", default=None, help="resolv.conf domain")
    parser.add_argument("--hostname", default=None, help="pod hostname (default rkt-UUID)")
    add_bool(parser, "--interactive", False, "give the single app the terminal")
    add_bool(parser, "--private-users", False, "run the pod in a user namespace of its own")
    add_bool(parser, "--mds-register", False, "(rkt's; only false: no metadata service)")
    parser.add_argument("--ipc", default="auto", help="(rkt's; only auto or private)")


def uuid_and_net(args: argparse.Namespace) -> tuple[str, str]:
    """The pod and its networks. ``--net UUID``: argparse gives UUID to --net; cobra, whose
    bare --net is the default network, would not. Give it back."""
    uuid, net = args.uuid, args.net or "default"
    if uuid is None and _uuid_like(args.net):
        uuid, net = args.net, "default"
    if uuid is None:
        raise UsageError("run-prepared needs the UUID of a prepared pod")
    return uuid, net


def _uuid_like(value: str | None) -> bool:
    """A UUID or a prefix of one, as ``find_pod`` takes it (not a network: those are AC names
    or NAME:ARGS)."""
    return value is not None and is_lower_hex(value.strip().lower().replace("-", ""))


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    uuid, net = uuid_and_net(args)
    if args.mds_register or args.ipc != "auto":  # (rkt.cli.run_args only then)
        from rkt.cli.run_args import check_default_only

        check_default_only("--mds-register", str(args.mds_register).lower())
        check_default_only("--ipc", args.ipc)
    require_root("run-prepared")
    network = network_options(
        opts,
        net=net,
        dns=args.dns,
        dns_search=args.dns_search,
        dns_opt=args.dns_opt,
        dns_domain=args.dns_domain,
        hosts_entries=args.hosts_entry,
        ports=args.port,
    )
    pod = find_pod(ensure_pods_root(opts.dir), uuid)
    options = RunOptions(
        hostname=hostname_option(args.hostname),
        interactive=args.interactive,
        private_users=args.private_users,
        debug=opts.debug,
        insecure=tuple(
            n for n in opts.insecure.names() if n in ("capabilities", "paths", "seccomp")
        ),
        **network,  # type: ignore[arg-type]
    )
    _lock, argv, env = start_run(pod, options)
    sys.stdout.flush()
    exec_stage1(pod, argv, env)
