"""The lazy command table: command words -> (module, one-line summary).

Kept apart from the modules themselves so that ``rkt --help`` lists every command without importing
any of them (and so without importing httpx, pysequoia or sqlite3).
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("rkt.cli.commands.version", "print the version and exit"),
    "run": ("rkt.cli.commands.run", "run image(s) in a pod"),
    "prepare": ("rkt.cli.commands.prepare", "prepare a pod to run later with run-prepared"),
    "run-prepared": ("rkt.cli.commands.run_prepared", "run a prepared pod"),
    "list": ("rkt.cli.commands.list", "list pods"),
    "status": ("rkt.cli.commands.status", "check the status of a pod"),
    "enter": ("rkt.cli.commands.enter", "enter the namespaces of an app within a pod"),
    "stop": ("rkt.cli.commands.stop", "stop running pods"),
    "rm": ("rkt.cli.commands.rm", "remove exited or prepared pods"),
    "gc": ("rkt.cli.commands.gc", "garbage collect pods no longer in use"),
    "cat-manifest": ("rkt.cli.commands.cat_manifest", "inspect and print the pod manifest"),
    "export": ("rkt.cli.commands.export", "export an app from an exited pod to an ACI"),
    "logs": ("rkt.cli.commands.logs", "print the output of a pod's apps"),
    "config": ("rkt.cli.commands.config", "print the merged configuration as JSON"),
    "fetch": ("rkt.cli.commands.fetch", "fetch image(s) and store them in the local store"),
    "trust": ("rkt.cli.commands.trust", "trust a key for image verification"),
    "app sandbox": ("rkt.cli.commands.app_sandbox", "start an empty mutable pod (for app add)"),
    "app add": ("rkt.cli.commands.app_add", "add an app to a running mutable pod"),
    "app start": ("rkt.cli.commands.app_start", "start an app of a mutable pod"),
    "app stop": ("rkt.cli.commands.app_stop", "stop an app of a mutable pod"),
    "app rm": ("rkt.cli.commands.app_rm", "remove an app from a mutable pod"),
    "app list": ("rkt.cli.commands.app_list", "list the apps of a pod"),
    "app status": ("rkt.cli.commands.app_status", "check the status of an app of a pod"),
    "image build": ("rkt.cli.commands.image_build", "build an ACI from a directory"),
    "image cat-manifest": (
        "rkt.cli.commands.image_cat_manifest",
        "inspect and print the image manifest",
    ),
    "image export": ("rkt.cli.commands.image_export", "export a stored image to an ACI file"),
    "image extract": ("rkt.cli.commands.image_extract", "extract a stored image to a directory"),
    "image fetch": ("rkt.cli.commands.fetch", "fetch image(s) (same as rkt fetch)"),
    "image gc": ("rkt.cli.commands.image_gc", "garbage collect local store"),
    "image list": ("rkt.cli.commands.image_list", "list images in the local store"),
    "image render": ("rkt.cli.commands.image_render", "render a stored image to a directory"),
    "image rm": ("rkt.cli.commands.image_rm", "remove one or more images from the local store"),
    "image verify": (
        "rkt.cli.commands.image_verify",
        "verify stored images and their rendered trees",
    ),
}

# Commands hidden from the listing (aliases).
HIDDEN = {"image fetch"}


def find_command(words: list[str]) -> tuple[str | None, int]:
    """Return the longest command name made of the leading ``words``, and how many words it used."""
    for length in (2, 1):
        if len(words) >= length:
            name = " ".join(words[:length])
            if name in COMMANDS:
                return name, length
    return None, 0


def group_names() -> set[str]:
    """Command words that only group subcommands (``image``)."""
    return {name.split()[0] for name in COMMANDS if " " in name}
