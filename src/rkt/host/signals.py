"""``signal`` for rkt's start path: the C module ``_signal`` at run time, ``signal`` for the type
checker.

``signal`` wraps ``_signal`` to turn numbers into enum members, so importing it imports ``enum``
(~0.5-0.8 ms of a start, docs/architecture.md "Paths"). rkt only passes signal numbers on and
compares them, which ``_signal``'s functions and constants do as well. Use::

    from rkt.host.signals import signal

Imports only ``_signal``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import signal as signal
else:
    import _signal as signal

__all__ = ["signal"]
