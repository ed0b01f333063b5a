"""``node-ctl dump FILE|DIR [-r]``: print datasets as dcmdump/gdcmdump do."""

from __future__ import annotations

import argparse
import sys

from node.cli.commands._files import MissingPath, expand
from node.tools.dump import SHORT_VALUE, UnreadableFile, dump, read_dataset


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "dump",
        help="print DICOM files element by element (like dcmdump / gdcmdump)",
        description="Tag, VR, value, length, VM and keyword of every element; sequences "
        "nested; private elements with their creator. Several files get a header each.",
    )
    p.add_argument("paths", metavar="FILE|DIR", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true", help="recurse into directories")
    p.add_argument("--meta", action="store_true", help="print the file meta information too")
    p.add_argument("-L", "--print-all", action="store_true", help="print long values completely")
    p.add_argument(
        "--width",
        type=int,
        default=SHORT_VALUE,
        metavar="N",
        help=f"shorten values longer than N characters ({SHORT_VALUE})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        files = list(expand(args.paths, args.recursive))
    except MissingPath as exc:
        print(f"node-ctl dump: error: {exc}", file=sys.stderr)
        return 2
    width = None if args.print_all else args.width
    failed = 0
    for index, path in enumerate(files, start=1):
        if len(files) > 1:
            print(f"# node-ctl dump ({index}/{len(files)}): {path}")
        try:
            ds = read_dataset(path)
        except UnreadableFile as exc:
            print(f"node-ctl dump: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        sys.stdout.write(dump(ds, meta=args.meta, width=width))
        if len(files) > 1:
            print()
    return 1 if failed else 0
