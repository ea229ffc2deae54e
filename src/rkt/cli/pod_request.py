"""Turn a parsed ``run``/``prepare`` command line into a ``PodRequest`` (flag syntax lives here)."""

from __future__ import annotations

import os

from rkt.cli.flags import parse_bool
from rkt.cli.isolator_flags import isolator_flags
from rkt.cli.run_args import ParsedApp, ParsedRun
from rkt.errors import ManifestError, UsageError
from rkt.paths import Path
from rkt.stage0.request import AppRequest, MountSpec, Pairs, PodRequest, VolumeSpec
from rkt.stage0.stage1_image import Stage1Choice
from rkt.textcheck import is_env_name, is_octal_mode


def _kv_list(text: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise UsageError(f'{flag}: "{part}" is not KEY=VALUE')
        out[key.strip()] = value
    return out


def _ac_name(value: str, what: str) -> str:
    """``value`` if it is an AC Name short enough to name files in the pod (an app's or a
    volume's: schema.names.MAX_FILE_NAME), else the schema's own message as a usage error."""
    from rkt.schema.names import validate_file_name  # every run loads it later anyway

    try:
        return validate_file_name(value, what)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None


def parse_volume(text: str) -> VolumeSpec:
    """``NAME,kind=host,source=PATH[,readOnly=B][,recursive=B]`` or ``NAME,kind=empty,...``."""
    name, _, rest = text.partition(",")
    if not name or "=" in name:
        raise UsageError(f'--volume "{text}": must start with the volume name')
    _ac_name(name, f'--volume "{text}": name')
    fields = _kv_list(rest, "--volume") if rest else {}
    kind = fields.pop("kind", "")
    if kind not in ("host", "empty"):
        raise UsageError(f'--volume "{text}": kind must be host or empty')
    read_only = parse_bool(fields.pop("readOnly", "false"), "--volume readOnly")
    if kind == "host":
        recursive = fields.pop("recursive", None)
        source = fields.pop("source", None)
        if fields:
            raise UsageError(f'--volume "{text}": unknown field(s) {", ".join(fields)}')
        if not source or not source.startswith("/"):
            raise UsageError(f"--volume {name}: kind=host needs an absolute source=")
        return VolumeSpec(
            name,
            "host",
            source=source,
            read_only=read_only,
            recursive=None if recursive is None else parse_bool(recursive, "--volume recursive"),
        )
    mode = fields.pop("mode", "0755")
    if not is_octal_mode(mode):
        raise UsageError(f'--volume "{text}": mode must be octal, like 0755')
    ids = fields.pop("uid", "0"), fields.pop("gid", "0")
    if not all(i.isascii() and i.isdigit() and int(i) < 1 << 32 for i in ids):
        raise UsageError(f'--volume "{text}": uid and gid must be numbers from 0 to 4294967295')
    uid, gid = int(ids[0]), int(ids[1])
    if fields:
        raise UsageError(f'--volume "{text}": unknown field(s) {", ".join(fields)}')
    return VolumeSpec(name, "empty", read_only=read_only, mode=mode, uid=uid, gid=gid)


def parse_mount(text: str) -> MountSpec:
    fields = _kv_list(text, "--mount")
    if set(fields) != {"volume", "target"}:
        raise UsageError(f'--mount "{text}": needs exactly volume=NAME,target=PATH')
    if not fields["target"].startswith("/"):
        raise UsageError(f'--mount "{text}": target must be an absolute path')
    return MountSpec(fields["volume"], fields["target"])


def parse_env(values: list[str], flag: str) -> Pairs:
    """NAME=VALUE pairs; for the environment flags NAME must be a variable name appc accepts
    (checked here, before a pod exists, rather than by the stage1)."""
    environment = flag.startswith(("--set-env", "--environment"))
    pairs = []
    for value in values:
        key, eq, val = value.partition("=")
        if not eq or not key:
            raise UsageError(f'{flag}: "{value}" is not NAME=VALUE')
        if environment and not is_env_name(key):
            raise UsageError(f'{flag}: "{key}" is not a valid environment variable name')
        pairs.append((key, val))
    return tuple(pairs)


def read_env_files(paths: list[str]) -> Pairs:
    pairs: list[tuple[str, str]] = []
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f'--set-env-file "{path}": {exc.strerror}') from exc
        except UnicodeDecodeError as exc:
            raise UsageError(f'--set-env-file "{path}": not UTF-8 text') from exc
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                pairs.extend(parse_env([line], f"--set-env-file {path}"))
    return tuple(pairs)


def _last(flags: dict[str, list[str]], name: str) -> str | None:
    values = flags.get(name)
    return values[-1] if values else None


def _gids(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(g) for g in text.split(",") if g.strip())
    except ValueError as exc:
        raise UsageError(f'--supplementary-gids "{text}": must be numbers') from exc


def _app_request(app: ParsedApp, shared: dict[str, list[str]]) -> AppRequest:
    flags = {
        **shared,
        **{
            k: [*shared.get(k, []), *v] if k in ("--mount", "--environment") else v
            for k, v in app.flags.items()
        },
    }
    readonly = _last(flags, "--readonly-rootfs")
    signature = _last(flags, "--signature")
    name = _last(flags, "--name")
    if name is not None:
        _ac_name(name, "--name")
    working_dir = _last(flags, "--working-dir")
    if working_dir is not None and not working_dir.startswith("/"):
        raise UsageError(f'--working-dir "{working_dir}": must be an absolute path')
    return AppRequest(
        image=app.image,
        name=name,
        exec_=_last(flags, "--exec"),
        args=tuple(app.args),
        has_args=app.has_args,
        user=_last(flags, "--user"),
        group=_last(flags, "--group"),
        supplementary_gids=_gids(_last(flags, "--supplementary-gids")),
        working_dir=working_dir,
        environment=parse_env(flags.get("--environment", []), "--environment"),
        readonly_rootfs=None if readonly is None else parse_bool(readonly, "--readonly-rootfs"),
        mounts=tuple(parse_mount(m) for m in flags.get("--mount", [])),
        signature=Path(signature) if signature else None,
        annotations=parse_env(flags.get("--annotation", []), "--annotation"),
        isolators=isolator_flags(flags),
    )


def _check_names(apps: tuple[AppRequest, ...], volumes: tuple[VolumeSpec, ...]) -> None:
    """What the flags alone can get wrong about names, refused before any pod exists (``rkt
    run`` creates its pod before it reads an image: stage0/headstart.py): a volume given twice,
    a ``--mount`` of a volume no ``--volume`` defines, an app ``--name`` given twice. rkt.stage0
    .prepare checks the same again with the images (an app's default name is its image's)."""
    defined: set[str] = set()
    for vol in volumes:
        if vol.name in defined:
            raise UsageError(f'--volume: volume "{vol.name}" given twice')
        defined.add(vol.name)
    names: set[str] = set()
    for app in apps:
        for mount in app.mounts:
            if mount.volume not in defined:
                raise UsageError(f'--mount: volume "{mount.volume}" is not defined by --volume')
        if app.name is not None:
            if app.name in names:
                raise UsageError(f'--name: app name "{app.name}" is used twice')
            names.add(app.name)


def stage1_choice(parsed: ParsedRun) -> Stage1Choice:
    """The stage1 asked for with ``--stage1-{url,path,name,hash,from-dir}`` (more than one is
    refused here, before a pod exists)."""
    given = [f for f in STAGE1_FLAGS if parsed.last(f)]
    if len(given) > 1:
        raise UsageError(f"only one stage1 may be chosen ({', '.join(given)} given)")
    path = parsed.last("--stage1-path")
    return Stage1Choice(
        url=parsed.last("--stage1-url"),
        path=Path(path) if path else None,
        name=parsed.last("--stage1-name"),
        hash=parsed.last("--stage1-hash"),
        from_dir=parsed.last("--stage1-from-dir"),
    )


STAGE1_FLAGS = (
    "--stage1-url",
    "--stage1-path",
    "--stage1-name",
    "--stage1-hash",
    "--stage1-from-dir",
)


def check_output_file(path: str | None, flag: str) -> None:
    """A file the command will write once its pod exists: refused now if it cannot be."""
    if not path:
        return
    if os.path.isdir(path):
        raise UsageError(f'{flag} "{path}": is a directory')
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f'{flag} "{path}": no directory "{parent}"')


# flags whose values are host paths rkt reads or writes, never written into the pod manifest
_PATH_FLAGS = frozenset(
    {
        "--uuid-file-save",
        "--pod-manifest",
        "--set-env-file",
        "--stage1-path",
        "--stage1-from-dir",
        "--signature",
    }
)


def check_text(parsed: ParsedRun) -> None:
    """What goes into the pod manifest (JSON: UTF-8 text) and is not text (a byte that is not
    UTF-8 in a flag's value, an app's argument or, with ``--inherit-env``, the environment) is
    refused here, before a pod exists, naming it."""
    for flags in (parsed.pod, parsed.shared_app, *(app.flags for app in parsed.apps)):
        for flag, values in flags.items():
            if flag not in _PATH_FLAGS:
                for value in values:
                    _require_text(value, flag)
    for app in parsed.apps:
        for arg in app.args:
            _require_text(arg, f'image "{app.image}": argument')
    if parsed.flag_bool("--inherit-env"):
        for key, value in os.environ.items():
            _require_text(f"{key}={value}", "--inherit-env: the environment variable")


def _require_text(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise UsageError(f'{what} "{shown}" is not UTF-8 text') from None


def pod_request(parsed: ParsedRun, *, pull_policy_default: str = "new") -> PodRequest:
    pod = parsed.pod
    if parsed.last("--pod-manifest") is None and not parsed.apps:
        raise UsageError("at least one image is required")
    if parsed.last("--pod-manifest") is not None and parsed.apps:
        raise UsageError("--pod-manifest cannot be combined with images")
    check_text(parsed)
    policy = parsed.last("--pull-policy", pull_policy_default) or pull_policy_default
    if policy not in ("new", "update", "never"):
        raise UsageError(f'--pull-policy: "{policy}" is not one of new, update, never')
    check_output_file(parsed.last("--uuid-file-save"), "--uuid-file-save")
    manifest = parsed.last("--pod-manifest")
    if manifest is not None and not os.path.isfile(manifest):
        what = "is not a file" if os.path.exists(manifest) else "no such file"
        raise UsageError(f'--pod-manifest "{manifest}": {what}')
    apps = tuple(_app_request(app, parsed.shared_app) for app in parsed.apps)
    volumes = tuple(parse_volume(v) for v in pod.get("--volume", []))
    _check_names(apps, volumes)
    return PodRequest(
        apps=apps,
        volumes=volumes,
        set_env=parse_env(pod.get("--set-env", []), "--set-env"),
        set_env_file=read_env_files(pod.get("--set-env-file", [])),
        inherit_env=parsed.flag_bool("--inherit-env"),
        pull_policy=policy,
        stage1=stage1_choice(parsed),
        pod_manifest=Path(manifest) if manifest else None,
        user_annotations=parse_env(pod.get("--user-annotation", []), "--user-annotation"),
        user_labels=parse_env(pod.get("--user-label", []), "--user-label"),
    )
