"""``node-ctl undump TEXT OUT``: build a DICOM file from dcmdump-style text, as dump2dcm."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.tools.undump import UndumpError, undump, write_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "undump",
        help="build a DICOM file from dcmdump-style text (like dump2dcm)",
        description="Lines '(gggg,eeee) VR value' (or 'Keyword value'); '#' starts a "
        "comment; sequences through their item/delimiter lines; group 0002 becomes the "
        "file meta. Use '-' to read the text from stdin. Typical use: a query for find.",
    )
    p.add_argument("text", metavar="TEXT", help="input text file, or - for stdin")
    p.add_argument("output", metavar="OUT", type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.text == "-" else Path(args.text).read_text("utf-8")
        write_file(undump(text), args.output)
    except (UndumpError, OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"node-ctl undump: error: {exc}", file=sys.stderr)
        return 1
    return 0
