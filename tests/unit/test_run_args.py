"""rkt's positional grammar for run/prepare (rkt/run.go): pod flags, per-app flags, --/---."""

from __future__ import annotations

import pytest

from rkt.cli.run_args import parse_run_args
from rkt.errors import UsageError


def test_pod_flags_before_the_first_image_are_pod_wide() -> None:
    parsed = parse_run_args(["--net=host", "--hostname", "h1", "img1"])
    assert parsed.pod == {"--net": ["host"], "--hostname": ["h1"]}
    assert [a.image for a in parsed.apps] == ["img1"]


def test_app_flags_follow_their_image() -> None:
    parsed = parse_run_args(["img1", "--name=a", "--exec", "/bin/x", "img2", "--name=b"])
    assert [a.image for a in parsed.apps] == ["img1", "img2"]
    assert parsed.apps[0].flags == {"--name": ["a"], "--exec": ["/bin/x"]}
    assert parsed.apps[1].flags == {"--name": ["b"]}


def test_app_flags_before_the_first_image_are_shared() -> None:
    parsed = parse_run_args(["--environment=A=1", "--mount", "volume=v,target=/v", "img"])
    assert parsed.shared_app == {"--environment": ["A=1"], "--mount": ["volume=v,target=/v"]}
    assert parsed.apps[0].flags == {}


def test_double_dash_gives_app_args_until_triple_dash() -> None:
    parsed = parse_run_args(["img1", "--", "a", "--name=x", "b", "---", "img2", "--", "c"])
    assert parsed.apps[0].args == ["a", "--name=x", "b"]
    assert parsed.apps[0].has_args
    assert parsed.apps[1].args == ["c"]
    assert [a.image for a in parsed.apps] == ["img1", "img2"]


def test_empty_double_dash_means_no_args_but_overrides() -> None:
    parsed = parse_run_args(["img", "--"])
    assert parsed.apps[0].has_args and parsed.apps[0].args == []
    assert not parse_run_args(["img"]).apps[0].has_args


def test_args_without_an_image_are_refused() -> None:
    with pytest.raises(UsageError):
        parse_run_args(["--", "a"])


def test_pod_flag_after_an_image_is_refused() -> None:
    with pytest.raises(UsageError, match="pod flag"):
        parse_run_args(["img", "--hostname=x"])


def test_unknown_flags_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown flag: --bogus"):
        parse_run_args(["--bogus", "img"])
    with pytest.raises(UsageError, match="unknown flag"):
        parse_run_args(["img", "--bogus=1"])
    with pytest.raises(UsageError, match="shorthand"):
        parse_run_args(["-x", "img"])


def test_value_flag_at_the_end_needs_its_value() -> None:
    with pytest.raises(UsageError, match="needs an argument"):
        parse_run_args(["img", "--name"])


def test_bool_flags_never_consume_the_next_argument() -> None:
    parsed = parse_run_args(["--interactive", "img", "--readonly-rootfs", "img2"])
    assert parsed.flag_bool("--interactive")
    assert parsed.apps[0].flags == {"--readonly-rootfs": ["true"]}
    assert [a.image for a in parsed.apps] == ["img", "img2"]
    assert not parse_run_args(["--interactive=false", "img"]).flag_bool("--interactive")


def test_bare_net_means_default_network() -> None:
    parsed = parse_run_args(["--net", "img"])
    assert parsed.pod["--net"] == [""]
    assert [a.image for a in parsed.apps] == ["img"]


def test_global_flags_are_collected_for_the_global_parser() -> None:
    parsed = parse_run_args(["--dir", "/d", "--insecure-options=image", "--debug", "img"])
    assert parsed.globals == ["--dir=/d", "--insecure-options=image", "--debug=true"]
    assert parsed.pod == {}


def test_repeatable_flags_keep_every_value_and_last_wins() -> None:
    parsed = parse_run_args(
        ["--volume=a,kind=empty", "--volume=b,kind=empty", "--net=none", "--net=host", "i"]
    )
    assert parsed.pod["--volume"] == ["a,kind=empty", "b,kind=empty"]
    assert parsed.last("--net") == "host"


def test_help_is_noticed_anywhere() -> None:
    assert parse_run_args(["img", "--help"]).help
    assert parse_run_args(["-h"]).help


def test_allowed_pod_flags_limit_what_a_command_accepts() -> None:
    with pytest.raises(UsageError, match="unknown flag: --interactive"):
        parse_run_args(["--interactive", "img"], allowed_pod={"--net"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-overlay", "img"], "--no-overlay=true is not supported"),
        (["--mds-register=true", "img"], "metadata service"),
        (["--ipc=parent", "img"], "private IPC"),
        (["img", "--stdout=tty"], "attaching"),
    ],
)
def test_compatibility_flags_refuse_values_they_cannot_honour(
    argv: list[str], message: str
) -> None:
    from rkt.cli.run_args import reject_unsupported

    with pytest.raises(UsageError, match=message):
        reject_unsupported(parse_run_args(argv))


def test_compatibility_flags_accept_rkts_defaults() -> None:
    from rkt.cli.run_args import reject_unsupported

    reject_unsupported(parse_run_args(["--no-overlay=false", "--ipc=auto", "img", "--stdin=null"]))


@pytest.mark.parametrize(
    "tokens",
    [
        [],
        ["--dir=/d", "--insecure-options=image,http", "--debug=true"],
        ["--debug=false", "--trust-keys-from-https=1", "--user-config=/u"],
        ["--local-config=/l", "--system-config=/s", "--dir=/a", "--dir=/b"],
    ],
)
def test_run_grammar_globals_match_the_argparse_globals(tokens: list[str]) -> None:
    from rkt.cli.globals import parse_globals
    from rkt.cli.parser import global_parser
    from rkt.cli.quickparse import options_from

    assert parse_globals(tokens) == options_from(global_parser().parse_args(tokens))


def test_run_grammar_globals_refuse_bad_values() -> None:
    from rkt.cli.globals import parse_globals

    with pytest.raises(UsageError, match="invalid boolean"):
        parse_globals(["--debug=maybe"])
    with pytest.raises(UsageError, match="unknown value"):
        parse_globals(["--insecure-options=bogus"])


def test_command_usage_lists_its_own_flags_then_the_global_ones() -> None:
    from rkt.cli.commands import list as list_command
    from rkt.cli.parser import command_parser

    parser = command_parser("list", "list pods", list_command.add_arguments)
    assert parser.format_usage().startswith("usage: rkt list [--full]")
    assert parser.format_usage().rstrip().endswith("[global flags]")
    text = parser.format_help()
    assert "list pods" in text and "--insecure-options" in text


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        ("app_sandbox", ["--no-overlay=true"], "--no-overlay=true is not supported"),
        ("app_sandbox", ["--uuid-file-save=/nonexistent/u"], 'no directory "/nonexistent"'),
        ("app_sandbox", ["--pull-policy=bogus"], '"bogus" is not one of new, update, never'),
        ("app_add", ["0123abcd", "img", "--stdin=stream"], "--stdin=stream is not supported"),
        ("app_add", ["0123abcd", "img", "--stderr=tty"], "--stderr=tty is not supported"),
    ],
)
def test_app_sandbox_and_app_add_refuse_what_they_cannot_honour(
    command: str, argv: list[str], message: str
) -> None:
    """As run and prepare do: before any pod is made or looked up."""
    module = __import__(f"rkt.cli.commands.{command}", fromlist=["run_raw"])
    with pytest.raises(UsageError, match=message):
        module.run_raw(argv)


def test_prepare_refuses_the_flags_of_run_prepared() -> None:
    from rkt.cli.commands import prepare

    for flag in ("--net=host", "--dns=192.0.2.1", "--interactive", "--private-users", "--ipc=auto"):
        name = flag.split("=")[0]
        with pytest.raises(UsageError, match=f"^{name} is a flag of rkt run-prepared"):
            prepare.run_raw([flag, "img"])
