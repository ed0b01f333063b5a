"""``node-ctl anonymize``: PS3.15 de-identification, re-identification and gdcmanon's dumb mode.

Flags follow ``gdcmanon`` (``-e``/``-d``, ``-c cert.pem``, ``-k key.pem``, ``--dumb``
with ``--empty/--remove/--replace``, ``-r``, ``--continue``, ``--root-uid``), plus the
options of PS3.15 Table E.1-1 and ``--fill-region`` for burned-in text.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from node.cli.commands._jobs import add_jobs_arg
from node.tools.anonymize import (
    AnonymizeError,
    Deidentifier,
    EditKind,
    FileOutcome,
    JsonUidStore,
    OptionError,
    Options,
    PrivateTag,
    Region,
    SecretUidMap,
    StoredUidMap,
    apply_edits,
    fill_regions,
    load_certificate,
    load_private_key,
    parse_edit,
    process_tree,
    reidentify,
)
from node.tools.anonymize.files import Processor

logger = logging.getLogger(__name__)

_OPTION_FLAGS = (
    ("--retain-safe-private", "Retain Safe Private Option (privates of the safe list stay)"),
    ("--retain-uids", "Retain UIDs Option"),
    ("--retain-device-identity", "Retain Device Identity Option"),
    ("--retain-institution-identity", "Retain Institution Identity Option"),
    ("--retain-patient-characteristics", "Retain Patient Characteristics Option"),
    ("--retain-full-dates", "Retain Longitudinal Temporal Information, Full Dates"),
    (
        "--retain-modified-dates",
        "Retain Longitudinal Temporal Information, Modified Dates (per-patient shift)",
    ),
    ("--clean-descriptors", "Clean Descriptors Option"),
    ("--clean-structured-content", "Clean Structured Content Option"),
    ("--clean-graphics", "Clean Graphics Option (refused: cannot be done safely)"),
)


def register(subparsers: Any) -> None:
    """Add the ``anonymize`` parser."""
    p = subparsers.add_parser(
        "anonymize",
        help="de-identify (PS3.15 E.1), re-identify, or edit attributes (gdcmanon --dumb)",
        description=(
            "De-identify DICOM files with the PS3.15 Table E.1-1 basic profile and options "
            "(reversibly with -c cert.pem), re-identify them (-d -k key.pem), or empty/remove/"
            "replace given attributes (--dumb). IN and OUT are files or directories."
        ),
    )
    p.add_argument("input", metavar="IN", type=Path, help="DICOM file or directory")
    p.add_argument("output", metavar="OUT", type=Path, help="output file or directory")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "-e",
        "--de-identify",
        dest="mode",
        action="store_const",
        const="deidentify",
        help="de-identify (default)",
    )
    mode.add_argument(
        "-d",
        "--re-identify",
        dest="mode",
        action="store_const",
        const="reidentify",
        help="restore the original attributes from the Encrypted Attributes Sequence",
    )
    mode.add_argument(
        "--dumb",
        dest="mode",
        action="store_const",
        const="dumb",
        help="only the --empty/--remove/--replace edits (and --fill-region)",
    )
    p.set_defaults(mode="deidentify")
    p.add_argument("-r", "--recursive", action="store_true", help="process sub-directories")
    p.add_argument(
        "--continue",
        dest="keep_going",
        action="store_true",
        help="skip files that are not DICOM instead of stopping",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_jobs_arg(p)

    crypto = p.add_argument_group("reversible de-identification")
    crypto.add_argument(
        "-c",
        "--certificate",
        action="append",
        type=Path,
        default=[],
        help="X.509 certificate (PEM/DER, RSA) to encrypt the originals for (repeatable)",
    )
    crypto.add_argument("-k", "--key", type=Path, help="RSA private key (PEM/DER) for -d")
    crypto.add_argument("-p", "--password", help="passphrase of the private key")
    crypto.add_argument(
        "--aes128",
        dest="cipher",
        action="store_const",
        const="aes128",
        help="AES-128-CBC content encryption (default)",
    )
    crypto.add_argument(
        "--aes256", dest="cipher", action="store_const", const="aes256", help="AES-256-CBC"
    )
    crypto.add_argument(
        "--aes192", dest="cipher", action="store_const", const="aes192", help="not offered"
    )
    crypto.add_argument(
        "--des3", dest="cipher", action="store_const", const="des3", help="not offered"
    )
    p.set_defaults(cipher="aes128")

    consistency = p.add_argument_group("consistent replacement")
    consistency.add_argument(
        "--root-uid", help="root of new UIDs (default 2.25. UUID-derived UIDs)"
    )
    consistency.add_argument(
        "--secret-file",
        type=Path,
        help="file holding the secret that keys UIDs, date shifts and pseudonyms",
    )
    consistency.add_argument("--secret", help="the secret itself (prefer --secret-file)")
    consistency.add_argument(
        "--uid-map", type=Path, help="JSON file of original->new UIDs, read and extended"
    )

    profile = p.add_argument_group("PS3.15 Table E.1-1 options")
    for flag, text in _OPTION_FLAGS:
        profile.add_argument(flag, action="store_true", help=text)
    profile.add_argument(
        "--safe-private",
        action="append",
        default=[],
        metavar="gggg,xxee,CREATOR",
        help="a safe private attribute kept by --retain-safe-private (repeatable)",
    )
    profile.add_argument(
        "--safe-private-file", type=Path, help="file of safe private attributes, one a line"
    )
    profile.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="process instances with Burned In Annotation = YES",
    )
    profile.add_argument(
        "--no-pseudonyms",
        action="store_true",
        help="empty Patient's Name and ID instead of consistent pseudonyms",
    )

    dumb = p.add_argument_group("dumb mode (--dumb)")
    for name, text in (
        ("--empty", "gggg,eeee or gggg,ee,CREATOR: make empty"),
        ("--clear", "same as --empty"),
        ("--remove", "gggg,eeee or gggg,ee,CREATOR: remove"),
        ("--replace", "gggg,eeee=VALUE, gggg,ee,CREATOR=VALUE or gggg,eeee,VALUE"),
    ):
        dumb.add_argument(name, action="append", default=[], metavar="TAG", help=text)
    dumb.add_argument("--force", action="store_true", help="allow editing Type 1 attributes")

    pixels = p.add_argument_group("burned-in text")
    pixels.add_argument(
        "--fill-region",
        action="append",
        default=[],
        metavar="x0,x1,y0,y1[:F[-G]]",
        help="blank a rectangle (inclusive, 0-based) on all frames or frames F..G",
    )
    pixels.add_argument("--fill", type=int, default=0, metavar="V", help="fill value (0)")
    p.set_defaults(func=run)


def _secret(args: argparse.Namespace) -> bytes | None:
    if args.secret_file is not None:
        try:
            data = args.secret_file.read_bytes().strip()
        except OSError as exc:
            raise OptionError(f"--secret-file {args.secret_file}: {exc.strerror}") from None
        if not data:
            raise OptionError(f"--secret-file {args.secret_file} is empty")
        return data
    if args.secret:
        return str(args.secret).encode("utf-8")
    return None


def _options(args: argparse.Namespace) -> Options:
    safe = [PrivateTag.parse(text) for text in args.safe_private]
    if args.safe_private_file is not None:
        try:
            lines = args.safe_private_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise OptionError(f"--safe-private-file: {exc.strerror}") from None
        safe += [PrivateTag.parse(line) for line in lines if line.strip() and line[0] != "#"]
    return Options(
        retain_safe_private=args.retain_safe_private,
        safe_private=frozenset(safe),
        retain_uids=args.retain_uids,
        retain_device_identity=args.retain_device_identity,
        retain_institution_identity=args.retain_institution_identity,
        retain_patient_characteristics=args.retain_patient_characteristics,
        retain_full_dates=args.retain_full_dates,
        retain_modified_dates=args.retain_modified_dates,
        clean_descriptors=args.clean_descriptors,
        clean_structured_content=args.clean_structured_content,
        clean_graphics=args.clean_graphics,
        allow_burned_in=args.allow_burned_in,
        pseudonymize_patient=not args.no_pseudonyms,
    )


def _build(args: argparse.Namespace) -> tuple[Processor, JsonUidStore | None]:
    """The per-file processor for the chosen mode (options checked once, up front)."""
    regions = [Region.parse(text) for text in args.fill_region]
    edits = (
        [parse_edit(EditKind.EMPTY, t) for t in args.empty + args.clear]
        + [parse_edit(EditKind.REMOVE, t) for t in args.remove]
        + [parse_edit(EditKind.REPLACE, t) for t in args.replace]
    )
    if edits and args.mode != "dumb":
        raise OptionError("--empty/--clear/--remove/--replace need --dumb")

    def fill(ds: Any) -> list[str]:
        return fill_regions(ds, regions, args.fill).notes if regions else []

    if args.mode == "reidentify":
        if args.key is None:
            raise OptionError("-d/--re-identify needs -k/--key (the RSA private key)")
        password = args.password.encode("utf-8") if args.password else None
        key = load_private_key(args.key, password)

        def reid(ds: Any) -> list[str]:
            reidentify(ds, key, in_place=True)
            return []

        return reid, None
    if args.mode == "dumb":
        if not edits and not regions:
            raise OptionError("--dumb needs at least one --empty/--remove/--replace/--fill-region")

        def dumb(ds: Any) -> list[str]:
            notes = fill(ds)
            return notes + apply_edits(ds, edits, force=args.force)

        return dumb, None

    options = _options(args)
    secret = _secret(args)
    recipients = [load_certificate(path) for path in args.certificate]
    store: JsonUidStore | None = None
    uid_map = None
    if args.uid_map is not None:
        store = JsonUidStore(args.uid_map)
        generate = SecretUidMap(secret, args.root_uid).replace if secret else None
        uid_map = StoredUidMap(store, generate, root=args.root_uid)
    if secret is None and store is None:
        logger.info("no --secret-file/--uid-map: replacements are consistent within this run")
    engine = Deidentifier(
        options,
        secret=secret,
        uid_map=uid_map,
        root_uid=args.root_uid,
        recipients=recipients,
        cipher=args.cipher,
    )

    def deid(ds: Any) -> list[str]:
        notes = fill(ds)
        return notes + engine.deidentify(ds, in_place=True, pixels_cleaned=bool(regions)).notes

    return deid, store


class _Progress:
    """A one-line progress bar on stderr (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, index: int, total: int, outcome: FileOutcome) -> None:
        if outcome.status == "failed":
            self._clear()
            print(f"FAILED {outcome.source}: {outcome.message}", file=sys.stderr)
        for note in outcome.notes:
            self._clear()
            print(f"note: {outcome.source}: {note}", file=sys.stderr)
        if self.enabled and total > 1:
            width = 30
            filled = width * index // total
            bar = "#" * filled + "." * (width - filled)
            print(f"\r[{bar}] {index}/{total}", end="", file=sys.stderr, flush=True)
            if index == total:
                self._clear()

    def _clear(self) -> None:
        if self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Process IN into OUT; 0 when every file was done or skipped, 1 if any failed."""
    source: Path = args.input
    target: Path = args.output
    if not source.exists():
        print(f"node-ctl anonymize: {source}: no such file or directory", file=sys.stderr)
        return 2
    if source.is_dir() and target.exists() and not target.is_dir():
        print(f"node-ctl anonymize: {target}: IN is a directory, OUT must be one", file=sys.stderr)
        return 2
    if source.resolve() == target.resolve():
        print("node-ctl anonymize: OUT must differ from IN", file=sys.stderr)
        return 2
    try:
        processor, store = _build(args)
    except AnonymizeError as exc:
        print(f"node-ctl anonymize: {exc}", file=sys.stderr)
        return 2
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    try:
        summary = process_tree(
            source,
            target,
            processor,
            recursive=args.recursive,
            keep_going=args.keep_going,
            progress=_Progress(not args.no_progress),
            # a --uid-map file is extended as files are processed: one process only
            jobs=1 if store is not None else args.jobs,
        )
    finally:
        if store is not None:
            store.save()
    print(f"anonymize: {summary.done} done, {summary.skipped} skipped, {summary.failed} failed")
    for outcome in summary.outcomes:
        if outcome.status == "skipped":
            logger.info("skipped %s: %s", outcome.source, outcome.message)
    return 0 if summary.failed == 0 else 1
