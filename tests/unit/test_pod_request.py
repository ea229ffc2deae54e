"""Flag syntax of run/prepare turned into a PodRequest: volumes, mounts, environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkt.cli.pod_request import parse_env, parse_mount, parse_volume, pod_request, read_env_files
from rkt.cli.run_args import parse_run_args
from rkt.errors import UsageError
from rkt.stage0.request import MountSpec, VolumeSpec


def test_host_volume() -> None:
    vol = parse_volume("data,kind=host,source=/srv,readOnly=true,recursive=false")
    assert vol == VolumeSpec("data", "host", source="/srv", read_only=True, recursive=False)


def test_empty_volume_with_mode_and_owner() -> None:
    vol = parse_volume("scratch,kind=empty,mode=0700,uid=10,gid=20")
    assert vol == VolumeSpec("scratch", "empty", mode="0700", uid=10, gid=20)


@pytest.mark.parametrize(
    "text, message",
    [
        ("kind=host,source=/x", "must start with the volume name"),
        (",kind=host", "must start with the volume name"),
        ("v,kind=tmpfs", "kind must be host or empty"),
        ("v", "kind must be host or empty"),
        ("v,kind=host,source=/x,color=red", "unknown field"),
        ("v,kind=empty,mode=999", "mode must be octal"),
        ("v,kind=empty,mode=77777", "mode must be octal"),
        ("v,kind=empty,uid=root", "uid and gid must be numbers"),
        ("v,kind=empty,gid=-1", "uid and gid must be numbers"),
        ("v,kind=empty,uid=4294967296", "uid and gid must be numbers"),
        ("Data,kind=empty", "not a valid AC Name"),
        ("v" * 201 + ",kind=empty", "is 201 characters long; at most 200"),
        ("v,kind=host", "kind=host needs an absolute source="),
        ("v,kind=host,source=relative", "kind=host needs an absolute source="),
        ("v,kind=host,readOnly=maybe", "invalid boolean"),
        ("v,kind=host,source", "is not KEY=VALUE"),
    ],
)
def test_bad_volumes_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_volume(text)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--volume=v,kind=empty", "--volume=v,kind=empty", "img"], 'volume "v" given twice'),
        (["img", "--mount=volume=nope,target=/x"], 'volume "nope" is not defined by --volume'),
        (["--mount=volume=nope,target=/x", "img"], 'volume "nope" is not defined by --volume'),
        (["img", "--name=a", "img2", "--name=a"], 'app name "a" is used twice'),
        (["img", "--name=Bad_Name"], "not a valid AC Name"),
        (["img", "--name=" + "a" * 201], "is 201 characters long; at most 200"),
        (["img", "--working-dir=relative"], "must be an absolute path"),
    ],
)
def test_what_the_flags_alone_get_wrong_is_refused_by_the_request(
    argv: list[str], message: str
) -> None:
    """Refused before any pod exists: rkt run creates its pod before it reads an image."""
    with pytest.raises(UsageError, match=message):
        pod_request(parse_run_args(argv))


def test_a_mounted_volume_and_distinct_names_make_a_request() -> None:
    argv = ["--volume=v,kind=empty", "img", "--name=a", "--mount=volume=v,target=/x", "img2"]
    req = pod_request(parse_run_args(argv))
    assert [a.name for a in req.apps] == ["a", None]
    assert req.apps[0].mounts == (MountSpec("v", "/x"),)


def test_mount() -> None:
    assert parse_mount("volume=data,target=/var/data") == MountSpec("data", "/var/data")


@pytest.mark.parametrize(
    "text, message",
    [
        ("volume=data", "needs exactly volume=NAME,target=PATH"),
        ("volume=data,target=/x,readOnly=true", "needs exactly"),
        ("volume=data,target=relative", "absolute path"),
        ("data", "is not KEY=VALUE"),
    ],
)
def test_bad_mounts_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_mount(text)


def test_env_pairs_keep_equals_in_values() -> None:
    assert parse_env(["A=1", "B=x=y", "C="], "--set-env") == (("A", "1"), ("B", "x=y"), ("C", ""))


@pytest.mark.parametrize("value", ["NOEQUALS", "=value"])
def test_bad_env_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="--set-env"):
        parse_env([value], "--set-env")


def test_env_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("# comment\n\nA=1\n  B=2  \n")
    assert read_env_files([str(env)]) == (("A", "1"), ("B", "2"))


def test_missing_env_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--set-env-file"):
        read_env_files([str(tmp_path / "nope")])


def test_pod_request_merges_shared_and_per_app_flags() -> None:
    parsed = parse_run_args(
        [
            "--volume=v,kind=empty",
            "--environment=A=1",
            "--mount=volume=v,target=/shared",
            "img1",
            "--environment=B=2",
            "--name=one",
            "img2",
            "--environment=A=3",
        ]
    )
    req = pod_request(parsed)
    one, two = req.apps
    assert one.name == "one" and one.environment == (("A", "1"), ("B", "2"))
    assert two.environment == (("A", "1"), ("A", "3"))
    assert one.mounts == two.mounts == (MountSpec("v", "/shared"),)
    assert req.volumes == (VolumeSpec("v", "empty"),)


def test_pod_request_needs_an_image_or_a_pod_manifest() -> None:
    with pytest.raises(UsageError, match="at least one image"):
        pod_request(parse_run_args(["--net=host"]))
    with pytest.raises(UsageError, match="cannot be combined"):
        pod_request(parse_run_args(["--pod-manifest=/m.json", "img"]))


def test_pod_request_checks_pull_policy_and_gids() -> None:
    with pytest.raises(UsageError, match="--pull-policy"):
        pod_request(parse_run_args(["--pull-policy=sometimes", "img"]))
    with pytest.raises(UsageError, match="--supplementary-gids"):
        pod_request(parse_run_args(["img", "--supplementary-gids=1,x"]))
    req = pod_request(parse_run_args(["img", "--supplementary-gids=1,2", "--readonly-rootfs"]))
    assert req.apps[0].supplementary_gids == (1, 2)
    assert req.apps[0].readonly_rootfs is True


def test_pod_request_stage1_choice() -> None:
    req = pod_request(parse_run_args(["--stage1-path=/s1.aci", "img"]))
    assert req.stage1.path == Path("/s1.aci")
    assert req.stage1.given() == ["path"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--pod-manifest={tmp}/missing.json"],
            '--pod-manifest "{tmp}/missing.json": no such file',
        ),
        (["--pod-manifest={tmp}"], '--pod-manifest "{tmp}": is not a file'),
        (["--uuid-file-save={tmp}", "img"], '--uuid-file-save "{tmp}": is a directory'),
        (["--uuid-file-save={tmp}/no/x", "img"], 'no directory "{tmp}/no"'),
        (["--stage1-path=/s.aci", "--stage1-name=x", "img"], "only one stage1 may be chosen"),
        (["--set-env-file={tmp}/binary", "img"], '--set-env-file "{tmp}/binary": not UTF-8 text'),
    ],
)
def test_what_the_flags_alone_get_wrong_is_refused_before_a_pod_exists(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "binary").write_bytes(b"\xff\xfe=1\n")
    args = [a.format(tmp=tmp_path) for a in argv]
    with pytest.raises(UsageError, match=message.format(tmp=tmp_path).replace("(", "\\(")):
        pod_request(parse_run_args(args))


def test_a_relative_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage1 is exec'd from the pod directory: ``rkt --dir=data run`` must still find it."""
    from rkt.cli.globals import global_options

    monkeypatch.chdir(tmp_path)
    opts = global_options(
        data_dir="data",
        local_config=str(tmp_path / "etc"),
        system_config=str(tmp_path / "lib"),
        user_config="",
        insecure_options="",
        trust_keys_from_https=False,
        debug=False,
    )
    assert str(opts.dir) == str(tmp_path / "data")


def test_a_uuid_file_that_is_not_text_holds_no_uuid(tmp_path: Path) -> None:
    from rkt.errors import PodError
    from rkt.paths import Path as RktPath
    from rkt.pod.pod import read_uuid_file

    (tmp_path / "uuid").write_bytes(b"\xff\xfe")
    with pytest.raises(PodError, match="does not contain a pod UUID"):
        read_uuid_file(RktPath(str(tmp_path / "uuid")))


@pytest.mark.parametrize("flag", ["--set-env", "--environment"])
def test_an_environment_name_appc_refuses_is_a_usage_error(flag: str) -> None:
    args = [f"{flag}=A B=1", "img"] if flag == "--set-env" else ["img", f"{flag}=A B=1"]
    with pytest.raises(UsageError, match=f'{flag}: "A B" is not a valid environment'):
        pod_request(parse_run_args(args))
    # annotations and labels are not environment names
    req = pod_request(parse_run_args(["--user-annotation=a b=1", "img", "--annotation=x y=2"]))
    assert req.user_annotations == (("a b", "1"),)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set-env=A=\udcff", "img"], r'--set-env "A=\xff" is not UTF-8 text'),
        (["img", "--environment=B=x\udcfe"], r'--environment "B=x\xfe" is not UTF-8 text'),
        (["img", "--", "a\udcff"], r'image "img": argument "a\xff" is not UTF-8 text'),
        (["--user-annotation=k=\udcff", "img"], r'--user-annotation "k=\xff" is not UTF-8 text'),
    ],
)
def test_what_the_pod_manifest_cannot_hold_is_refused(argv: list[str], message: str) -> None:
    # the pod manifest is JSON: a byte that is not UTF-8 cannot be written into it
    with pytest.raises(UsageError) as err:
        pod_request(parse_run_args(argv))
    assert str(err.value) == message


def test_inherit_env_refuses_an_environment_that_is_not_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ODD", "\udcff")
    with pytest.raises(UsageError, match=r'the environment variable "ODD=\\xff" is not UTF-8'):
        pod_request(parse_run_args(["--inherit-env", "img"]))
    pod_request(parse_run_args(["img"]))  # not inherited: not looked at


def test_a_host_path_flag_is_not_manifest_text(tmp_path: Path) -> None:
    save = tmp_path / "uuid\udcff"
    assert pod_request(parse_run_args([f"--uuid-file-save={save}", "img"])).apps
