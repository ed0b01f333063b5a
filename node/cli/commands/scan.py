"""``node-ctl scan -d DIR -t gggg,eeee [-t ...] [-r] [-p]``, like gdcmscanner."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.cli.commands._progress import ProgressBar, add_progress_args
from node.tools.scan import BadTag, files_under, parse_tag, scan, summarize, tag_label


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "scan",
        help="read some attributes from every file of a directory (like gdcmscanner)",
        description="Prints each tag's distinct values with their counts; -p adds the "
        "value of each tag for each file.",
    )
    p.add_argument("-d", "--dir", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "-t",
        "--tag",
        action="append",
        required=True,
        metavar="gggg,eeee|KEYWORD",
        help="tag to look for (repeatable)",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="recurse into directories")
    p.add_argument(
        "-p",
        "--print",
        dest="print_files",
        action="store_true",
        help="print the values of every file",
    )
    p.add_argument("--json", action="store_true", help="one object per file, in a list")
    add_progress_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        tags = [parse_tag(t) for t in args.tag]
    except BadTag as exc:
        print(f"node-ctl scan: error: {exc}", file=sys.stderr)
        return 2
    if not args.dir.is_dir():
        print(f"node-ctl scan: error: not a directory: {args.dir}", file=sys.stderr)
        return 2
    files = files_under(args.dir, recursive=args.recursive)
    bar = ProgressBar("files", enabled=ProgressBar.wanted(args.progress) and len(files) > 1)
    rows = list(scan(files, tags, on_progress=lambda n: bar.update(n, len(files))))
    bar.close()
    if args.json:
        json.dump(
            [
                {
                    "file": str(r.path),
                    "readable": r.readable,
                    "values": {f"{t:08X}": v for t, v in r.values.items()},
                }
                for r in rows
            ],
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    readable = sum(1 for r in rows if r.readable)
    print(f"{len(files)} file(s), {readable} DICOM")
    print("Values:")
    for tag, counts in summarize(rows, tags).items():
        print(f"{tag_label(tag)}:")
        for value, count in sorted(counts.items()):
            print(f"  [{value}] x{count}")
    if args.print_files:
        print("Mapping:")
        for row in rows:
            state = "could be read" if row.readable else "could not be read"
            print(f"Filename: {row.path} ({state})")
            for tag, value in row.values.items():
                if value is not None:
                    print(f"  {tag_label(tag)} -> [{value}]")
    return 0
