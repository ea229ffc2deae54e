"""``rkt run-prepared UUID``: run a pod made by ``rkt prepare``."""

from __future__ import annotations

import sys

from rkt.cli.net_flags import DEFAULT_NET, NETWORKS, hostname_option, network_options
from rkt.cli.quickparse import add_bool
from rkt.pod.pod import ensure_pods_root, find_pod
from rkt.settings import GlobalOptions
from rkt.stage0.privileges import require_root
from rkt.stage0.run import RunOptions, exec_stage1, start_run

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uuid", metavar="UUID", help="the prepared pod")
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


def run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    require_root("run-prepared")
    network = network_options(
        opts,
        net=args.net or "default",
        dns=args.dns,
        dns_search=args.dns_search,
        dns_opt=args.dns_opt,
        dns_domain=args.dns_domain,
        hosts_entries=args.hosts_entry,
        ports=args.port,
    )
    pod = find_pod(ensure_pods_root(opts.dir), args.uuid)
    options = RunOptions(
        hostname=hostname_option(args.hostname),
        interactive=args.interactive,
        debug=opts.debug,
        insecure=tuple(
            n for n in opts.insecure.names() if n in ("capabilities", "paths", "seccomp")
        ),
        **network,  # type: ignore[arg-type]
    )
    _lock, argv, env = start_run(pod, options)
    sys.stdout.flush()
    exec_stage1(pod, argv, env)
