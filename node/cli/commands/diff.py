"""``node-ctl diff A B [--meta] [--truncate N]``: attribute differences, like gdcmdiff.

Exit status as diff(1): 0 same, 1 different, 2 trouble.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from node.tools.diff import diff_datasets, format_difference
from node.tools.dump import UnreadableFile, read_dataset


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "diff",
        help="differences between two DICOM files (like gdcmdiff)",
        description="'-' only in A, '+' only in B, '!' differs; sequences compared item by "
        "item. Exit 0 when the files match, 1 when they differ, 2 on error.",
    )
    p.add_argument("a", metavar="A", type=Path)
    p.add_argument("b", metavar="B", type=Path)
    p.add_argument("--meta", action="store_true", help="compare the file meta information too")
    p.add_argument(
        "--truncate", type=int, default=64, metavar="N", help="show at most N characters (64)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        a, b = read_dataset(args.a), read_dataset(args.b)
    except UnreadableFile as exc:
        print(f"node-ctl diff: error: {exc}", file=sys.stderr)
        return 2
    differences = diff_datasets(a, b, meta=args.meta)
    if args.json:
        json.dump([asdict(d) for d in differences], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for d in differences:
            print(format_difference(d, truncate=args.truncate))
    return 1 if differences else 0
