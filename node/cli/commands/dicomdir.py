"""``node-ctl dicomdir``: write a DICOMDIR (gdcmgendir, dcmmkdir) or build a media folder.

Two modes:

- in place: ``node-ctl dicomdir DIR`` writes ``DIR/DICOMDIR`` referencing the DICOM files
  under DIR (``-o`` elsewhere; every file must sit under the DICOMDIR's folder and have an
  ISO 9660 name, or ``+m`` maps lower case names);
- media export: ``node-ctl dicomdir --export OUT INPUT...`` builds OUT with ``DICOMDIR`` and
  ``DICOM/PA000001/ST000001/SE000001/IM000001``..., converting files the profile does not
  allow (``--profile STD-GEN-CD``: Explicit VR Little Endian only).

Flags follow dcmmkdir and gdcmgendir.  Invented Type 1 values and skipped files are reported
one per line on stderr (``W:`` lines as dcmmkdir prints them); ``--strict`` turns either into
exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from node.cli.commands._jobs import add_jobs_arg


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dicomdir",
        help="write a DICOMDIR, or build a DICOM media folder (--export)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prefix_chars="-+",  # DCMTK's +x flags
    )
    parser.add_argument("inputs", nargs="*", type=Path, metavar="INPUT", help="files or folders")
    held = parser.add_argument_group("studies held by a node (with --export)")
    held.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="UID",
        help="export this study from the node's store (repeatable)",
    )
    held.add_argument("-c", "--config", type=Path, help="the node's config file (or NODE_CONFIG)")
    held.add_argument("--ae", help="AE title whose records to export (default: the first)")
    mode = parser.add_argument_group("output")
    mode.add_argument(
        "-o",
        "+D",
        "--output",
        type=Path,
        help="DICOMDIR to write (in place; default INPUT/DICOMDIR)",
    )
    mode.add_argument(
        "--export", type=Path, metavar="DIR", help="build a media folder DIR (must be empty)"
    )
    mode.add_argument(
        "--profile",
        default="STD-GEN-CD",
        help="media application profile for --export (default STD-GEN-CD)",
    )
    reading = parser.add_argument_group("reading")
    reading.add_argument(
        "-r",
        "+r",
        "--recurse",
        dest="recurse",
        action="store_true",
        default=True,
        help="recurse into folders (default)",
    )
    reading.add_argument("--no-recurse", dest="recurse", action="store_false")
    reading.add_argument(
        "+m",
        "--map-filenames",
        action="store_true",
        help="accept lower-case names and a trailing period (upper-cased in the file IDs)",
    )
    ids = parser.add_argument_group("DICOMDIR identifiers")
    ids.add_argument("+F", "--fileset-id", default="", help="File-set ID (default empty)")
    ids.add_argument("+R", "--descriptor", type=Path, help="file-set descriptor file (README)")
    ids.add_argument(
        "+C",
        "--char-set",
        dest="charset",
        default="ISO_IR 100",
        help="character set of the descriptor (default ISO_IR 100)",
    )
    ids.add_argument("--root-uid", help="UID root for the DICOMDIR and invented UIDs")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a file was skipped or a Type 1 value invented (dcmmkdir -I)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    add_jobs_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from node.tools.dicomdir import DicomdirError, export_files, make_dicomdir

    if args.study:
        if args.export is None:
            print("node-ctl dicomdir: --study needs --export DIR", file=sys.stderr)
            return 2
        try:
            args.inputs = list(args.inputs) + stored_study_files(args.config, args.ae, args.study)
        except (LookupError, OSError, ValueError) as exc:
            print(f"node-ctl dicomdir: {exc}", file=sys.stderr)
            return 1
    if not args.inputs:
        print("node-ctl dicomdir: nothing to do: give files, folders or --study", file=sys.stderr)
        return 2
    for item in args.inputs:
        if not item.exists():
            print(f"node-ctl dicomdir: {item}: no such file or folder", file=sys.stderr)
            return 1
    try:
        if args.export is not None:
            if args.output is not None:
                print(
                    "node-ctl dicomdir: --output and --export exclude each other", file=sys.stderr
                )
                return 2
            report = export_files(
                args.inputs,
                args.export,
                recursive=args.recurse,
                profile=args.profile,
                fileset_id=args.fileset_id,
                descriptor=args.descriptor,
                descriptor_charset=args.charset,
                root_uid=args.root_uid,
                jobs=args.jobs,
            )
        else:
            report = make_dicomdir(
                args.inputs,
                output=args.output,
                recursive=args.recurse,
                map_filenames=args.map_filenames,
                fileset_id=args.fileset_id,
                descriptor=args.descriptor,
                descriptor_charset=args.charset,
                root_uid=args.root_uid,
                jobs=args.jobs,
            )
    except DicomdirError as exc:
        print(f"node-ctl dicomdir: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        for skipped in report.skipped:
            print(f"W: skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
        for invention in report.inventions:
            print(
                f"W: {invention.record_type} record (origin: {invention.source}) "
                f"inventing {invention.keyword}: {invention.value}",
                file=sys.stderr,
            )
        for warning in report.warnings:
            print(f"W: {warning}", file=sys.stderr)
        converted = f", {report.converted} converted" if args.export is not None else ""
        print(
            f"{report.dicomdir}: {report.referenced} instance(s){converted}, "
            f"{len(report.skipped)} skipped, {len(report.inventions)} value(s) invented"
        )
    if args.strict and (report.skipped or report.inventions):
        return 1
    return 0


def stored_study_files(config: Path | None, ae_title: str | None, studies: list[str]) -> list[Path]:
    """The files of ``studies`` in a node's store, read from its index (offline, read-only).

    The index is SQLite in WAL mode or PostgreSQL, so this may run beside the live node.
    """
    from config import load
    from node.app import open_storage

    settings = load(config)
    if not settings.ae_table:
        raise LookupError("the configuration has no AETable entry")
    entry = settings.ae(ae_title) if ae_title else settings.ae_table[0]
    if entry is None:
        raise LookupError(f"AE title {ae_title} is not in the AETable")
    index, stores = open_storage(settings)
    try:
        instances = index.instances(entry.title, study_uids=studies)
    finally:
        index.engine.dispose()
    found = {instance.study_instance_uid for instance in instances}
    missing = [uid for uid in studies if uid not in found]
    if missing:
        raise LookupError(f"{entry.title} holds no study {', '.join(missing)}")
    return [stores[entry.title].absolute(instance.path) for instance in instances]
