"""``rkt run-prepared``'s command line: rkt's run-time flags, cobra's bare ``--net``."""

from __future__ import annotations

import pytest

from rkt.cli.commands import run_prepared
from rkt.cli.parser import command_parser
from rkt.cli.quickparse import quick_parse
from rkt.errors import UsageError

UUID = "5f0c1ad2-7f44-4a5e-9a0e-6e4bb1b2c3d4"


def _both(*argv: str) -> list[tuple[str, str]]:
    """What each parser (the quick one and argparse) makes of ``argv``."""
    quick = quick_parse(run_prepared.add_arguments, list(argv))
    full = command_parser("run-prepared", "", run_prepared.add_arguments).parse_args(list(argv))
    return [run_prepared.uuid_and_net(args) for args in (quick, full) if args is not None]


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["--net", UUID], (UUID, "default")),  # a bare --net before the UUID
        ([UUID, "--net"], (UUID, "default")),
        (["--net=none", UUID], (UUID, "none")),
        (["--net", "host", UUID], (UUID, "host")),
        ([UUID], (UUID, "default")),
    ],
)
def test_the_pod_and_its_networks(argv: list[str], want: tuple[str, str]) -> None:
    got = _both(*argv)
    assert got and all(g == want for g in got)


def test_no_uuid_is_a_usage_error() -> None:
    for argv in ([], ["--net=none"], ["--net"]):
        args = command_parser("run-prepared", "", run_prepared.add_arguments).parse_args(argv)
        with pytest.raises(UsageError, match="needs the UUID"):
            run_prepared.uuid_and_net(args)


def test_the_run_time_flags_rkt_had_are_taken() -> None:
    args = command_parser("run-prepared", "", run_prepared.add_arguments).parse_args(
        ["--private-users", "--mds-register=false", "--ipc=private", "--interactive", UUID]
    )
    assert (args.private_users, args.mds_register, args.ipc, args.interactive) == (
        True,
        False,
        "private",
        True,
    )
