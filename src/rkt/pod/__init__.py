"""Pods on disk: state machine, listing, status (see pod.py)."""
