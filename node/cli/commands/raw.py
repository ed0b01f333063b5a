"""``node-ctl raw FILE -o OUT [-t gggg,eeee] [--split-frags --pattern %02d.jpg]``, like gdcmraw."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.tools.dump import UnreadableFile, read_dataset
from node.tools.raw import PIXEL_DATA, RawError, write_raw
from node.tools.scan import BadTag, parse_tag


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "raw",
        help="write an element's value bytes to a file (like gdcmraw)",
        description="Pixel Data by default: encapsulated fragments concatenated (no offset "
        "table), or one file per fragment with --split-frags (OUT + pattern % index).",
    )
    p.add_argument("input", metavar="FILE", type=Path, nargs="?")
    p.add_argument("-i", "--input", dest="input_opt", type=Path, help="FILE, gdcmraw style")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT")
    p.add_argument("-t", "--tag", default=None, metavar="gggg,eeee", help="element to extract")
    p.add_argument("-S", "--split-frags", action="store_true", help="one file per fragment")
    p.add_argument("-p", "--pattern", default="%02d", help="suffix appended per fragment (%%02d)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = args.input_opt or args.input
    if source is None:
        print("node-ctl raw: error: no input file", file=sys.stderr)
        return 2
    try:
        tag = parse_tag(args.tag) if args.tag else PIXEL_DATA
        ds = read_dataset(source)
        written = write_raw(ds, args.output, tag=tag, split=args.split_frags, pattern=args.pattern)
    except (BadTag, UnreadableFile, RawError, OSError) as exc:
        print(f"node-ctl raw: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
