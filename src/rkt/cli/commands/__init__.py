"""One module per subcommand.

Each defines ``add_arguments(parser)`` and ``run(args, opts) -> int``.
"""
