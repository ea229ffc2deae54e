"""Global options and the merged configuration kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rkt.config import load_config
from rkt.errors import ConfigError, UsageError
from rkt.settings import InsecureOptions


def test_insecure_composites_expand_as_rkt() -> None:
    assert InsecureOptions.parse("all-fetch").names() == ["image", "tls", "http", "pubkey"]
    assert InsecureOptions.parse("all-run").names() == ["capabilities", "paths", "seccomp"]
    assert len(InsecureOptions.parse("all").names()) == 8
    assert InsecureOptions.parse("none").names() == []
    assert InsecureOptions.parse("image,http").names() == ["image", "http"]


def test_unknown_insecure_option_is_usage_error() -> None:
    with pytest.raises(UsageError, match='unknown value "imgae"'):
        InsecureOptions.parse("imgae")


def _write(base: Path, kind: str, name: str, doc: dict[str, object]) -> None:
    d = base / f"{kind}.d"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps(doc))


def test_config_later_dirs_override_earlier(tmp_path: Path) -> None:
    system, local = tmp_path / "sys", tmp_path / "local"
    _write(system, "paths", "a.json", {"rktKind": "paths", "rktVersion": "v1", "data": "/sys"})
    _write(local, "paths", "a.json", {"rktKind": "paths", "rktVersion": "v1", "data": "/local"})
    _write(
        local,
        "dockerAuth",
        "r.json",
        {
            "rktKind": "dockerAuth",
            "rktVersion": "v1",
            "registries": ["r.example"],
            "credentials": {"user": "u", "password": "p"},
        },
    )
    config = load_config(system, local)
    assert config.paths["data"] == "/local"
    assert config.docker_auth["r.example"].user == "u"
    kinds = [e["rktKind"] for e in config.to_json()["stage0"]]
    assert kinds == ["dockerAuth", "paths"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rktKind": "paths", "rktVersion": "v2"}, "unsupported rktVersion"),
        ({"rktKind": "paths", "rktVersion": "v1", "data": "relative"}, "absolute path"),
        (
            {
                "rktKind": "auth",
                "rktVersion": "v1",
                "type": "aws",
                "domains": ["x"],
                "credentials": {},
            },
            "not supported",
        ),
    ],
)
def test_invalid_config_names_the_file(
    tmp_path: Path, doc: dict[str, object], message: str
) -> None:
    kind = str(doc["rktKind"])
    _write(tmp_path, kind, "bad.json", doc)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(tmp_path / "none", tmp_path)
    assert "bad.json" in str(err.value)


def test_rkt_config_prints_one_line_with_pretty_print_false(tmp_path: Path) -> None:
    """``rkt config`` indents by default; ``--pretty-print=false`` gives one line, as
    ``cat-manifest`` and ``image cat-manifest`` do."""
    import subprocess

    from tests.conftest import REPO

    dirs = [f"--{kind}-config={tmp_path / kind}" for kind in ("system", "local", "user")]
    rkt = str(REPO / ".venv" / "bin" / "rkt")
    outs = [
        subprocess.run(
            [rkt, "config", *flag, *dirs], capture_output=True, text=True, check=True
        ).stdout
        for flag in ([], ["--pretty-print=false"], ["--pretty-print"])
    ]
    assert outs[0] == outs[2] == '{\n  "stage0": []\n}\n'
    assert outs[1] == '{"stage0": []}\n'
