"""Isolators (appc ace.md "Isolators"): quantities, typed views, per-app consistency rules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rkt.errors import ManifestError
from rkt.schema._fields import Loc
from rkt.schema.isolators import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    CapabilitySet,
    CPUResource,
    CPUShares,
    Isolator,
    MemoryResource,
    NoNewPrivileges,
    OOMScoreAdj,
    SeccompSet,
    parse_isolator,
    parse_isolators,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        ("128974848", Decimal(128974848)),
        ("125952Ki", Decimal(128974848)),
        ("123Mi", Decimal(128974848)),
        ("250m", Decimal("0.25")),
        ("0.3", Decimal("0.3")),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("+2", Decimal(2)),
        ("-1", Decimal(-1)),
        ("1k", Decimal(1000)),
        ("1K", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1G", Decimal(10**9)),
        ("2T", Decimal(2 * 10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ti", Decimal(2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("2e3", Decimal(2000)),
        ("2E3", Decimal(2000)),
        ("5e-1", Decimal("0.5")),
        ("1e+2", Decimal(100)),
        ("100n", Decimal("1e-7")),
        ("3u", Decimal("3e-6")),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1KiB", "1 G", "1g", "1mi", "1.2.3", "--1", "e3", "1e", "0x10", "1Gi\n", "1e99"],
)
def test_parse_quantity_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(ManifestError, match="is not a valid quantity"):
        parse_quantity(text)


def test_capability_table_covers_linux_caps_0_to_40() -> None:
    assert len(CAPABILITIES) == 41
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert len(DEFAULT_CAPABILITIES) == 14
    assert CAPABILITIES.keys() >= DEFAULT_CAPABILITIES


@pytest.mark.parametrize(
    ("name", "value", "typed"),
    [
        (
            "resource/cpu",
            {"request": "250m", "limit": "500m"},
            CPUResource(Decimal("0.25"), Decimal("0.5")),
        ),
        ("resource/cpu", {"limit": "2"}, CPUResource(Decimal(2), Decimal(2))),
        ("resource/memory", {"request": "1G", "limit": "2G"}, MemoryResource(10**9, 2 * 10**9)),
        ("resource/memory", {"limit": "1.5"}, MemoryResource(2, 2)),
        ("resource/memory", {"limit": 1024}, MemoryResource(1024, 1024)),
        (
            "os/linux/capabilities-retain-set",
            {"set": ["CAP_NET_ADMIN"]},
            CapabilitySet("retain", ("CAP_NET_ADMIN",)),
        ),
        (
            "os/linux/capabilities-remove-set",
            {"set": ["CAP_MKNOD"]},
            CapabilitySet("remove", ("CAP_MKNOD",)),
        ),
        (
            "os/linux/seccomp-remove-set",
            {"errno": "ENOTSUP", "set": ["reboot", "@rkt/default-blacklist"]},
            SeccompSet("remove", ("reboot", "@rkt/default-blacklist"), "ENOTSUP"),
        ),
        (
            "os/linux/seccomp-retain-set",
            {"errno": "", "set": ["@appc.io/all"]},
            SeccompSet("retain", ("@appc.io/all",), None),
        ),
        ("os/linux/no-new-privileges", True, NoNewPrivileges(True)),
        ("os/linux/cpu-shares", 1024, CPUShares(1024)),
        ("os/linux/oom-score-adj", -1000, OOMScoreAdj(-1000)),
        ("os/linux/selinux-context", {"user": "system_u"}, None),
        ("example.com/custom", [1, 2], None),
    ],
)
def test_parse_isolator_gives_typed_view(name: str, value: Any, typed: object) -> None:
    assert parse_isolator(Isolator(name, value)) == typed


def test_cpu_limit_in_millicores() -> None:
    cpu = parse_isolator(Isolator("resource/cpu", {"limit": "1.5"}))
    assert isinstance(cpu, CPUResource)
    assert cpu.limit_millicores == 1500
    # the largest the kernel's CFS quota can enforce (in rkt's 100 ms period) is accepted
    top = parse_isolator(Isolator("resource/cpu", {"limit": "175921860"}))
    assert isinstance(top, CPUResource) and top.limit_millicores is not None
    assert top.limit_millicores * 100 <= (1 << 44) - 1  # its quota in µs


def test_capability_bounding_sets() -> None:
    remove = CapabilitySet("remove", ("CAP_MKNOD", "CAP_SYS_ADMIN"))
    assert remove.bounding_set() == DEFAULT_CAPABILITIES - {"CAP_MKNOD"}
    assert CapabilitySet("retain", ("CAP_SYS_ADMIN",)).bounding_set() == {"CAP_SYS_ADMIN"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("resource/cpu", "1", 'isolator "resource/cpu": must be a JSON object'),
        ("resource/cpu", {}, 'must have a "request" or a "limit"'),
        ("resource/cpu", {"limit": "lots"}, 'field "limit": "lots" is not a valid quantity'),
        ("resource/cpu", {"limit": True}, 'field "limit": must be a quantity string'),
        (
            "resource/cpu",
            {"limit": "175921861"},
            'field "limit": "175921861" is more than the kernel can enforce (at most 175921860',
        ),
        ("resource/cpu", {"limit": "1e17"}, '"1e17" is more than the kernel can enforce'),
        ("resource/memory", {"limit": "-1G"}, 'field "limit": "-1G" must not be negative'),
        (
            "resource/memory",
            {"request": "2G", "limit": "1G"},
            'field "request": must not be greater than the limit',
        ),
        ("os/linux/capabilities-retain-set", {"set": []}, 'field "set": must not be empty'),
        ("os/linux/capabilities-retain-set", {}, 'field "set": must not be empty'),
        (
            "os/linux/capabilities-remove-set",
            {"set": ["CAP_FLY"]},
            'field "set[0]": "CAP_FLY" is not a Linux capability',
        ),
        (
            "os/linux/capabilities-remove-set",
            {"set": ["net_admin"]},
            '"net_admin" is not a Linux capability',
        ),
        ("os/linux/capabilities-retain-set", {"set": [1]}, 'field "set[0]": must be a string'),
        ("os/linux/seccomp-retain-set", {"set": ["Reboot"]}, '"Reboot" is not a syscall name'),
        (
            "os/linux/seccomp-retain-set",
            {"set": ["read"], "errno": "eperm"},
            'field "errno": "eperm" is not an errno name',
        ),
        ("os/linux/no-new-privileges", "yes", 'must be true or false, not "yes"'),
        ("os/linux/cpu-shares", 1, "1 is out of range (2..262144)"),
        ("os/linux/cpu-shares", "1024", 'must be an integer, not "1024"'),
        ("os/linux/oom-score-adj", 1001, "1001 is out of range (-1000..1000)"),
        ("os/linux/oom-score-adj", True, "must be an integer, not true"),
    ],
)
def test_invalid_isolator_values_are_refused(name: str, value: Any, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_isolator(Isolator(name, value))
    assert message in str(info.value)
    assert str(info.value).startswith(f'isolator "{name}"')


def _isolators(*entries: Any) -> tuple[Isolator, ...]:
    return parse_isolators({"isolators": list(entries)}, "isolators", Loc("image manifest", "app"))


def test_parse_isolators_keeps_unknown_isolators_verbatim() -> None:
    parsed = _isolators(
        {"name": "resource/cpu", "value": {"limit": "1"}},
        {"name": "example.com/thing", "value": {"any": ["json", 1]}},
    )
    assert parsed[1] == Isolator("example.com/thing", {"any": ["json", 1]})
    assert parsed[1].to_dict() == {"name": "example.com/thing", "value": {"any": ["json", 1]}}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"value": 1}], 'field "app.isolators[0].name": is required'),
        ([{"name": "resource/cpu"}], 'field "app.isolators[0].value": is required'),
        ([{"name": "Bad", "value": 1}], '"Bad" is not a valid AC Identifier'),
        (["x"], 'field "app.isolators[0]": must be a JSON object'),
        (
            [{"name": "resource/cpu", "value": {"limit": "x"}}],
            'image manifest: field "app.isolators[0].value.limit": "x" is not a valid quantity',
        ),
        (
            [{"name": "os/linux/cpu-shares", "value": 2}] * 2,
            'field "app.isolators[1].name": isolator "os/linux/cpu-shares" may be given only once',
        ),
        (
            [
                {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_KILL"]}},
                {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_KILL"]}},
            ],
            "cannot be used together",
        ),
        (
            [
                {"name": "os/linux/seccomp-retain-set", "value": {"set": ["read"]}},
                {"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"]}},
            ],
            '"os/linux/seccomp-retain-set" and "os/linux/seccomp-remove-set" cannot be used',
        ),
    ],
)
def test_parse_isolators_refuses_inconsistent_lists(entries: list[Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        _isolators(*entries)
    assert message in str(info.value)


def test_unknown_isolators_may_repeat() -> None:
    assert len(_isolators(*[{"name": "example.com/x", "value": None}] * 2)) == 2
