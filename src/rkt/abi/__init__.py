"""The stage0 <-> stage1 contract (docs/stage1-abi.md), as constants both sides import.

Pure: no I/O, imports nothing from rkt. A third-party stage1 needs only docs/stage1-abi.md.
"""

from __future__ import annotations

INTERFACE_VERSION = 3
MIN_INTERFACE_VERSION = 1


def interface_version(value: object) -> int | None:
    """The version an ``interface-version`` annotation's value declares: ASCII digits, blanks
    around them allowed; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() else None


# Entrypoint annotations in the stage1 image manifest.
ANN_RUN = "coreos.com/rkt/stage1/run"
ANN_ENTER = "coreos.com/rkt/stage1/enter"
ANN_GC = "coreos.com/rkt/stage1/gc"
ANN_STOP = "coreos.com/rkt/stage1/stop"
ANN_APP_ADD = "coreos.com/rkt/stage1/app/add"
ANN_APP_START = "coreos.com/rkt/stage1/app/start"
ANN_APP_STOP = "coreos.com/rkt/stage1/app/stop"
ANN_APP_RM = "coreos.com/rkt/stage1/app/rm"
ANN_INTERFACE_VERSION = "coreos.com/rkt/stage1/interface-version"
REQUIRED_ENTRYPOINTS = (ANN_RUN, ANN_ENTER, ANN_GC, ANN_STOP)

# Environment.
ENV_LOCK_FD = "RKT_LOCK_FD"

# Interface versions: 1 = run/enter/stop/gc with --net=host|none; 2 adds CNI networks (--net=NAME,
# --local-config, --dns*, --hosts-entry, --port) and --private-users.
V2_NETWORKS = 2
# 3 adds mutable pods: ``run --mutable`` and the app/add, app/start, app/stop, app/rm entrypoints.
V3_MUTABLE = 3
ANN_POD_MUTABLE = "coreos.com/rkt/stage1/mutable"  # pod manifest annotation (rkt's), "true"
APP_ENTRYPOINTS = (ANN_APP_ADD, ANN_APP_START, ANN_APP_STOP, ANN_APP_RM)

# Paths relative to the pod directory.
POD_MANIFEST = "pod"
POD_CREATED = "pod-created"
PID_FILE = "pid"
PPID_FILE = "ppid"
SUBCGROUP_FILE = "subcgroup"
STAGE1_DIR = "stage1"
STAGE1_MANIFEST = "stage1/manifest"
STAGE1_ROOTFS = "stage1/rootfs"
STAGE1_CONFIG = "stage1/config.json"
APPSINFO_DIR = "appsinfo"
OVERLAY_DIR = "overlay"
VOLUMES_DIR = "volumes"
# Pod annotation ``<prefix><volume>`` = ``<app>``: the implicit empty volume of a Docker/OCI
# VOLUME, filled once per pod with the image content of ``<app>`` at its mount path (§2).
COPY_UP_ANNOTATION = "rkt.local/copy-up/"
STATUS_DIR = "stage1/rootfs/rkt/status"
LOGS_DIR = "stage1/rootfs/rkt/logs"
ENV_DIR = "stage1/rootfs/rkt/env"
SUPERVISOR_STATUS = "stage1/rootfs/rkt/supervisor-status"
STAGE2_DIR = "stage1/rootfs/opt/stage2"
MUTABLE_LOCK = "pod.lck"  # stage0's flock for manifest updates of a mutable pod (rkt's name)


def appsinfo(app: str) -> str:
    return f"{APPSINFO_DIR}/{app}"


def app_status(app: str) -> str:
    return f"{STATUS_DIR}/{app}"


def app_status_json(app: str) -> str:
    return f"{STATUS_DIR}/{app}.json"


def app_log(app: str) -> str:
    return f"{LOGS_DIR}/{app}.log"


def app_overlay(app: str) -> str:
    return f"{OVERLAY_DIR}/{app}"


def stage2_rootfs(app: str) -> str:
    return f"{STAGE2_DIR}/{app}/rootfs"
