"""The one exception tree of rkt; every class carries the exit code the CLI maps it to.

    RktError (254)                    anything rkt refuses or fails to do
    ├── UsageError (2)                bad flags, bad arguments
    ├── ConfigError                   unreadable or invalid configuration files
    ├── PrivilegeError                the caller lacks root or the rkt / rkt-admin group
    ├── ManifestError                 an image or pod manifest violates the appc spec
    ├── ArchiveError                  an archive is corrupt, or hostile (escapes its target)
    ├── ImageError                    an image cannot be found, fetched, verified or rendered
    │   ├── NotFoundError             no image (or pod) matches a name, ID or prefix
    │   ├── AmbiguousError            an ID prefix matches more than one object
    │   ├── SignatureError            unsigned, tampered, or signed by an untrusted key
    │   └── FetchError                transport failure (HTTP status, TLS, connection)
    ├── TrustError                    keys cannot be read, parsed or stored
    ├── StoreError                    the image store is inconsistent or cannot be written
    └── PodError                      pod lifecycle failures
        └── NetworkError              CNI networks: bad configs, plugin failures

This module imports nothing from rkt: every layer may raise these. Library code raises them with a
one-line, lower-case message naming the object (no trailing period); only ``rkt.cli.main`` turns
them into an exit code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_ERROR = 254
EXIT_INTERNAL = 255


class RktError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with, ``hint`` an optional second line."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


def named(exc: RktError, subject: str) -> RktError:
    """``exc`` with ``subject`` (``image "X"``) before its message, same kind and hint, for an
    error found inside an object that did not name it; ``exc`` itself when its message names
    an image already or its kind takes more than a message."""
    if exc.message.startswith(('image "', 'dependency "')):
        return exc
    if type(exc).__init__ is not RktError.__init__:
        return exc
    return type(exc)(f"{subject}: {exc.message}", hint=exc.hint)


class naming:
    """``with naming('image "X"', ArchiveError, ...):``: an error of those kinds raised inside
    leaves ``named`` after the subject (a plain class: contextlib is not on the start path)."""

    def __init__(self, subject: str, *kinds: type[RktError]) -> None:
        self.subject = subject
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, self.kinds):
            renamed = named(exc, self.subject)
            if renamed is not exc:
                raise renamed from exc


class UsageError(RktError):
    exit_code = EXIT_USAGE


class ConfigError(RktError):
    pass


class PrivilegeError(RktError):
    pass


class ManifestError(RktError):
    pass


class ArchiveError(RktError):
    pass


class ImageError(RktError):
    pass


class NotFoundError(ImageError):
    pass


class AmbiguousError(ImageError):
    pass


class SignatureError(ImageError):
    pass


class FetchError(ImageError):
    pass


class TrustError(RktError):
    pass


class StoreError(RktError):
    pass


class PodError(RktError):
    pass


class NetworkError(PodError):
    """A pod network cannot be set up or torn down (a CNI plugin failed, a bad net.d config)."""
