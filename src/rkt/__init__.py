"""rkt: a daemonless, pod-native container runtime (a re-implementation of CoreOS rkt)."""

__version__ = "0.1.0"
APPC_VERSION = "0.8.11"
