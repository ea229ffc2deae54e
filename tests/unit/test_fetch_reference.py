"""Image references: rkt's classification of fetch/run arguments (reference §2.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rkt.errors import UsageError
from rkt.fetch import reference
from rkt.fetch.reference import (
    DockerRef,
    ImageIdRef,
    NameRef,
    PathRef,
    UrlRef,
    parse_image_reference,
)

HEX = "ab" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"sha512-{HEX}", ImageIdRef(f"sha512-{HEX}")),
        ("sha512-ABCDEF0123", ImageIdRef("sha512-abcdef0123")),
        ("/var/tmp/app.aci", PathRef(Path("/var/tmp/app.aci"))),
        ("./app", PathRef(Path("./app"))),
        ("../images/app.aci", PathRef(Path("../images/app.aci"))),
        ("stage1-coreos.aci", PathRef(Path("stage1-coreos.aci"))),
        ("file:///srv/images/app.aci", PathRef(Path("/srv/images/app.aci"))),
        ("file://localhost/srv/my%20app.aci", PathRef(Path("/srv/my app.aci"))),
        ("https://example.com/app.aci", UrlRef("https://example.com/app.aci")),
        ("HTTP://example.com/app.aci", UrlRef("HTTP://example.com/app.aci")),
        ("docker://busybox", DockerRef("docker://busybox")),
        ("docker://quay.io:5000/coreos/etcd:v3", DockerRef("docker://quay.io:5000/coreos/etcd:v3")),
        ("example.com/app", NameRef("example.com/app")),
        ("busybox", NameRef("busybox")),
        ("example.com/app:1.0", NameRef("example.com/app", (("version", "1.0"),))),
        (
            "example.com/app,version=1.0,os=linux",
            NameRef("example.com/app", (("os", "linux"), ("version", "1.0"))),
        ),
        (
            "example.com/app:v2,arch=aarch64",
            NameRef("example.com/app", (("arch", "aarch64"), ("version", "v2"))),
        ),
        # a colon means name:version even with an .aci tail, as in rkt
        ("example.com/app:1.0.aci", NameRef("example.com/app", (("version", "1.0.aci"),))),
    ],
)
def test_parse_image_reference_classifies_like_rkt(
    text: str, expected: reference.ImageRef, tmp_path: Path
) -> None:
    got = parse_image_reference(text, cwd=tmp_path)
    # The kinds are NamedTuples: equal fields alone would not tell a UrlRef from a DockerRef.
    assert type(got) is type(expected) and got == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("ftp://example.com/app.aci", 'unsupported URL scheme "ftp"'),
        ("https:///app.aci", "without a host"),
        ("file://otherhost/app.aci", "must not name a host"),
        ("docker://", "without an image name"),
        ("Example.com/App", "not a valid image name"),
        ("example.com/app:", "empty version"),
        ("example.com/app,os", "key=value"),
        ("example.com/app,OS=linux", 'invalid label name "OS"'),
        ("example.com/app:1.0,version=2.0", 'label "version" given twice'),
        ("example.com/app,name=x", '"name" cannot be used'),
        (f"sha512-{HEX}ab", "longer than a sha512"),
    ],
)
def test_parse_image_reference_rejects_bad_arguments(
    text: str, fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError) as info:
        parse_image_reference(text, cwd=tmp_path)
    assert fragment in info.value.message
    assert "\n" not in info.value.message
    assert info.value.exit_code == 2


def test_existing_file_in_cwd_is_a_path_even_without_dot_slash(tmp_path: Path) -> None:
    (tmp_path / "myimage").write_bytes(b"aci")
    (tmp_path / "example.com").mkdir()
    (tmp_path / "example.com" / "app").write_bytes(b"aci")
    for text in ("myimage", "example.com/app"):
        got = parse_image_reference(text, cwd=tmp_path)
        assert isinstance(got, PathRef) and got == PathRef(Path(text))


def test_existing_directory_does_not_make_a_path(tmp_path: Path) -> None:
    (tmp_path / "busybox").mkdir()
    assert parse_image_reference("busybox", cwd=tmp_path) == NameRef("busybox")


def test_sha512_with_non_hex_tail_is_a_name(tmp_path: Path) -> None:
    assert parse_image_reference("sha512-xyz", cwd=tmp_path) == NameRef("sha512-xyz")


def test_with_defaults_keeps_user_labels_and_fills_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr("platform.system", lambda: "Linux")
    ref = NameRef("example.com/app", (("os", "freebsd"),))
    assert ref.with_defaults().label_map() == {
        "os": "freebsd",
        "arch": "amd64",
        "version": "latest",
    }
    assert ref.label_map() == {"os": "freebsd"}  # the user's labels stay separate
    assert ref.version is None


@pytest.mark.parametrize(
    ("machine", "arch"),
    [("x86_64", "amd64"), ("aarch64", "aarch64"), ("arm64", "aarch64"), ("i686", "i386"),
     ("armv7l", "armv7l"), ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("RISCV64", "riscv64")],
)  # fmt: skip
def test_host_arch_maps_machine_to_appc_arch(
    machine: str, arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("platform.machine", lambda: machine)
    assert reference.host_arch() == arch


def test_name_ref_prints_in_rkt_spelling() -> None:
    ref = parse_image_reference("example.com/app:1.0,os=linux")
    assert str(ref) == "example.com/app:1.0,os=linux"
    assert isinstance(ref, NameRef) and ref.version == "1.0"
