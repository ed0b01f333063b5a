"""One module per ``node-ctl`` subcommand (or family of subcommands).

Each module defines ``register(subparsers)``, which adds its parsers and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit
code) as the default.  ``node.cli.main`` discovers the modules, so adding a command
means adding a file here and nothing else.
"""
