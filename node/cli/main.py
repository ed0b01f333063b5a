"""Entry point of ``node-ctl``: discovers the subcommand modules and dispatches.

Why discovery: each tool (anonymize, convert, dicomdir, SCU, admin...) owns its
command module; nobody has to edit a central list to add one.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from node import __version__
from node.cli import commands


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with every command module registered.

    ``only``: register just the command module of that name (see :func:`main`).
    """
    return _build(only)[0]


def _build(only: str | None) -> tuple[argparse.ArgumentParser, set[str]]:
    """The parser and the command names registered in it."""
    parser = argparse.ArgumentParser(
        prog="node-ctl",
        description="dicom-node control: SCU operations, offline DICOM tools, node admin.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    for name in [only] if only is not None else names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser, set(subparsers.choices)


def _command_module(argv: Sequence[str]) -> str | None:
    """The command module named like the first word of ``argv``, if there is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word.startswith("_"):
        return None
    names = {info.name for info in pkgutil.iter_modules(commands.__path__)}
    return word if word in names else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``node-ctl``; returns the process exit code.

    Why not always the full parser: importing every command module costs most of a second
    (pynetdicom, httpx, pydantic), which an offline tool run over a folder should not pay.
    When the command is named like its module (``anonymize``, ``dicomdir``...), only that
    module is imported; anything else (help, other names) gets the full parser.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    only = _command_module(argv)
    parser, registered = _build(only)
    if only is not None and only not in registered:
        parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("node-ctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
