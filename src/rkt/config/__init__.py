"""rkt's configuration files: ``<dir>/<kind>.d/*.json`` in the system, local and user config dirs.

Each file holds one object with ``rktKind`` and ``rktVersion: "v1"`` (rkt's Documentation/
configuration.md). Kinds: ``paths`` (data, stage1-images), ``stage1`` (default stage1 name, version,
location), ``auth`` (HTTP credentials per domain) and ``dockerAuth`` (registry credentials). Later
directories override earlier ones: system < local < user; within a directory files apply in lexical
order. Imports only the standard library and ``rkt.errors``.

No dataclasses here: ``rkt run`` loads the config on every start, and creating a dataclass costs
more at import than reading the config dirs.
"""

from __future__ import annotations

from rkt import jsonio
from rkt.errors import ConfigError
from rkt.paths import Path
from rkt.records import NamedTuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

KINDS = ("auth", "dockerAuth", "paths", "stage1")


class Credentials(NamedTuple):
    kind: str  # "basic" or "oauth"
    user: str = ""
    password: str = ""
    token: str = ""


class Config:
    """The merged configuration, filled in by ``load_config``."""

    __slots__ = ("auth", "docker_auth", "paths", "sources", "stage1")

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self.stage1: dict[str, str] = {}
        self.auth: dict[str, Credentials] = {}  # domain -> credentials
        self.docker_auth: dict[str, Credentials] = {}  # registry -> credentials
        self.sources: list[dict[str, Any]] = []

    def to_json(self) -> dict[str, Any]:
        """The merged view ``rkt config`` prints (secrets included, as rkt does)."""
        entries: list[dict[str, Any]] = []
        for domain, cred in sorted(self.auth.items()):
            creds = (
                {"token": cred.token}
                if cred.kind == "oauth"
                else {"user": cred.user, "password": cred.password}
            )
            entries.append(
                {
                    "rktVersion": "v1",
                    "rktKind": "auth",
                    "domains": [domain],
                    "type": cred.kind,
                    "credentials": creds,
                }
            )
        for registry, cred in sorted(self.docker_auth.items()):
            entries.append(
                {
                    "rktVersion": "v1",
                    "rktKind": "dockerAuth",
                    "registries": [registry],
                    "credentials": {"user": cred.user, "password": cred.password},
                }
            )
        if self.paths:
            entries.append({"rktVersion": "v1", "rktKind": "paths", **self.paths})
        if self.stage1:
            entries.append({"rktVersion": "v1", "rktKind": "stage1", **self.stage1})
        return {"stage0": entries}


def _strings(doc: dict[str, Any], key: str, path: Path) -> list[str]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'config "{path}": "{key}" must be a non-empty list of strings')
    return list(value)


def _credentials(doc: dict[str, Any], path: Path, kind: str) -> Credentials:
    creds = doc.get("credentials")
    if not isinstance(creds, dict):
        raise ConfigError(f'config "{path}": "credentials" must be an object')
    if kind == "oauth":
        token = creds.get("token")
        if not isinstance(token, str) or not token:
            raise ConfigError(f'config "{path}": oauth credentials need a "token"')
        return Credentials("oauth", token=token)
    user, password = creds.get("user"), creds.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise ConfigError(f'config "{path}": basic credentials need "user" and "password"')
    return Credentials("basic", user=user, password=password)


def _apply(config: Config, doc: Any, path: Path) -> None:
    if not isinstance(doc, dict):
        raise ConfigError(f'config "{path}": not a JSON object')
    kind, version = doc.get("rktKind"), doc.get("rktVersion")
    if version != "v1":
        raise ConfigError(f'config "{path}": unsupported rktVersion {version!r} (want "v1")')
    if kind not in KINDS:
        raise ConfigError(f'config "{path}": unknown rktKind {kind!r}')
    if kind == "paths":
        for key in ("data", "stage1-images"):
            if key in doc:
                if not isinstance(doc[key], str) or not doc[key].startswith("/"):
                    raise ConfigError(f'config "{path}": "{key}" must be an absolute path')
                config.paths[key] = doc[key]
    elif kind == "stage1":
        for key in ("name", "version", "location"):
            if key in doc:
                if not isinstance(doc[key], str):
                    raise ConfigError(f'config "{path}": "{key}" must be a string')
                config.stage1[key] = doc[key]
    elif kind == "auth":
        auth_type = doc.get("type")
        if auth_type not in ("basic", "oauth"):
            raise ConfigError(
                f'config "{path}": auth type {auth_type!r} is not supported (basic, oauth)'
            )
        cred = _credentials(doc, path, auth_type)
        for domain in _strings(doc, "domains", path):
            config.auth[domain] = cred
    else:  # dockerAuth
        cred = _credentials(doc, path, "basic")
        for registry in _strings(doc, "registries", path):
            config.docker_auth[registry] = cred
    config.sources.append({"path": str(path), "rktKind": kind})


def load_config(system: Path, local: Path, user: Path | None = None) -> Config:
    """Merge every kind from the three config dirs; unreadable or invalid files are errors."""
    config = Config()
    for base in (system, local, user):
        if base is None:
            continue
        for kind in KINDS:
            kind_dir = base / f"{kind}.d"
            try:
                files = sorted(p for p in kind_dir.iterdir() if p.suffix == ".json")
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError as exc:
                raise ConfigError(f'config dir "{kind_dir}": permission denied') from exc
            for path in files:
                try:
                    doc = jsonio.loads(path.read_bytes())
                except PermissionError as exc:
                    raise ConfigError(f'config "{path}": permission denied') from exc
                except (OSError, ValueError) as exc:
                    raise ConfigError(f'config "{path}": {exc}') from exc
                if doc.get("rktKind") != kind if isinstance(doc, dict) else False:
                    raise ConfigError(
                        f'config "{path}": rktKind {doc.get("rktKind")!r} in the "{kind}.d" dir'
                    )
                _apply(config, doc, path)
    return config
