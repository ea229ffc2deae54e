"""Orchestration of rkt commands (fetch, prepare, run, gc): never prints or exits."""
