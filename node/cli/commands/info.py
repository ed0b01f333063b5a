"""``node-ctl info FILE|DIR [-r] [--md5sum] [--check-compression]``, like gdcminfo."""

from __future__ import annotations

import argparse
import json
import sys

from node.cli.commands._files import MissingPath, expand
from node.tools.dump import UnreadableFile, read_dataset
from node.tools.info import InfoError, format_info, image_info


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "info",
        help="SOP class, syntax, geometry and pixel format of images (like gdcminfo)",
        description="--md5sum hashes the decoded pixel values: unchanged by a lossless "
        "conversion. --check-compression reads the JPEG/JPEG-LS/JPEG 2000 stream header.",
    )
    p.add_argument("paths", metavar="FILE|DIR", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true", help="recurse into directories")
    p.add_argument("--md5sum", action="store_true", help="md5 of the decoded pixel data")
    p.add_argument(
        "--check-compression", action="store_true", help="lossless or lossy, from the stream"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file, in a list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        files = list(expand(args.paths, args.recursive))
    except MissingPath as exc:
        print(f"node-ctl info: error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    results = []
    for path in files:
        try:
            ds = read_dataset(path)
            info = image_info(ds, md5sum=args.md5sum, compression=args.check_compression)
        except (UnreadableFile, InfoError) as exc:
            print(f"node-ctl info: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            results.append({"file": str(path), **info.as_dict()})
            continue
        if len(files) > 1:
            print(f"# {path}")
        print("\n".join(format_info(info)))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 1 if failed else 0
