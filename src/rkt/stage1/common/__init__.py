"""What every stage1 flavor shares: argv parsing per the ABI, the pod directory, status and log
files, and the resolution of an app's launch (environment, user, groups, capabilities).

Imports only the standard library, ``rkt.abi``, ``rkt.errors``, ``rkt.schema`` and ``rkt.host``.
"""
