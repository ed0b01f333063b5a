"""``node-ctl convert IN OUT``: change transfer syntax and tidy datasets (gdcmconv parity).

Files or directories (``-r`` to recurse). Flags follow gdcmconv where they can;
``-r`` means recursive here, so the JPEG 2000 rate is only ``--rate``. Each output
gets one line saying what was done, including any repair of the input; each
failure one line on stderr. The exit code is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.cli.commands._jobs import add_jobs_arg
from node.tools._parallel import parallel_map

_SYNTAX_FLAGS = (
    ("-X", "--explicit", "explicit", "Explicit VR Little Endian"),
    ("-M", "--implicit", "implicit", "Implicit VR Little Endian"),
    ("-d", "--deflated", "deflated", "Deflated Explicit VR Little Endian"),
    ("-w", "--raw", "raw", "decompress: Explicit VR Little Endian"),
    ("-R", "--rle", "rle", "RLE Lossless"),
    ("-J", "--jpeg", "jpeg", "JPEG: Lossless SV1, with --lossy Baseline (8 bits)/Extended (12)"),
    ("-L", "--jpegls", "jpegls", "JPEG-LS Lossless, with --lossy Near-Lossless"),
    ("-K", "--j2k", "j2k", "JPEG 2000 Lossless, with --lossy irreversible"),
)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def _pair(text: str) -> tuple[float, float]:
    values = _floats(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX: {text!r}")
    return values[0], values[1]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="transcode DICOM files (gdcmconv): raw, RLE, JPEG, JPEG-LS, J2K, deflated...",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="DICOM file or directory")
    parser.add_argument("output", type=Path, help="output file or directory")
    parser.add_argument("-r", "--recursive", action="store_true", help="recurse into IN")
    syntax = parser.add_argument_group("transfer syntax (default: keep the input's)")
    choice = syntax.add_mutually_exclusive_group()
    for short, long, family, text in _SYNTAX_FLAGS:
        choice.add_argument(
            short, long, dest="family", action="store_const", const=family, help=text
        )
    syntax.add_argument("-Y", "--lossy", action="store_true", help="use the lossy variant")
    syntax.add_argument(
        "-F",
        "--force",
        action="store_true",
        help="re-encode even when already in the target syntax",
    )
    syntax.add_argument(
        "-q",
        "--quality",
        type=_floats,
        metavar="Q",
        help="JPEG quality 1..100; with --j2k, PSNR in dB per layer (a,b,...)",
    )
    syntax.add_argument(
        "-e",
        "--allowed-error",
        type=int,
        metavar="N",
        help="JPEG-LS near-lossless maximum error (default 2)",
    )
    syntax.add_argument(
        "--rate",
        type=_floats,
        metavar="R",
        help="JPEG 2000 compression ratio per layer (a,b,...; default 10)",
    )
    syntax.add_argument(
        "--verify",
        action="store_true",
        help="decode the result and check it (bit-identical if lossless)",
    )
    data = parser.add_argument_group("dataset")
    data.add_argument("--remove-private-tags", action="store_true")
    data.add_argument("--remove-retired", action="store_true")
    data.add_argument("--remove-gl", action="store_true", help="remove group lengths")
    data.add_argument(
        "-C", "--check-meta", action="store_true", help="rebuild the File Meta Information"
    )
    data.add_argument("--root-uid", help="root of new UIDs (lossy results)")
    image = parser.add_argument_group("image")
    image.add_argument("--generate-icon", action="store_true")
    image.add_argument("--icon-minmax", type=_pair, metavar="MIN,MAX")
    image.add_argument("--icon-auto-minmax", action="store_true")
    image.add_argument("--planar-configuration", type=int, choices=(0, 1))
    image.add_argument(
        "-S", "--split", type=int, metavar="N", help="fragments of at most N bytes (even)"
    )
    image.add_argument(
        "-P",
        "--photometric-interpretation",
        metavar="PI",
        help="lossless PI change (MONOCHROME1<->2, PALETTE COLOR->RGB)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    add_jobs_arg(parser)
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> Any:
    from node.tools.convert import TranscodeOptions

    quality = psnr = None
    if args.quality:
        if args.family == "j2k":
            psnr = args.quality
        else:
            quality = int(round(args.quality[0]))
    return TranscodeOptions(
        force=args.force,
        quality=quality,
        allowed_error=args.allowed_error,
        rate=args.rate,
        psnr=psnr,
        remove_private_tags=args.remove_private_tags,
        remove_retired=args.remove_retired,
        remove_group_length=args.remove_gl,
        check_meta=args.check_meta,
        generate_icon=args.generate_icon or bool(args.icon_minmax or args.icon_auto_minmax),
        icon_minmax=args.icon_minmax,
        icon_auto_minmax=args.icon_auto_minmax,
        planar_configuration=args.planar_configuration,
        split=args.split,
        photometric_interpretation=args.photometric_interpretation,
        root_uid=args.root_uid,
        verify=args.verify,
    )


def _pairs(args: argparse.Namespace) -> Iterator[tuple[Path, Path]]:
    if not args.input.is_dir():
        out = args.output
        if out.is_dir():
            out = out / args.input.name
        yield args.input, out
        return
    pattern = "**/*" if args.recursive else "*"
    for path in sorted(args.input.glob(pattern)):
        if path.is_file() and not path.name.startswith("."):
            yield path, args.output / path.relative_to(args.input)


def _convert_one(src: Path, dst: Path, args: argparse.Namespace, options: Any) -> str:
    from node.tools.convert.repair import read_with_repairs
    from node.tools.convert.syntaxes import TARGETS, resolve_family
    from node.tools.convert.transcode import source_syntax, transcode_dataset, write_dataset

    ds, repairs = read_with_repairs(src)
    family = args.family
    if family is None:
        current = source_syntax(ds)
        target = current if current in TARGETS else resolve_family("explicit", False, 8)
        if target != current:
            repairs.append(f"{current.name} is not written: converted to {target.name}")
    else:
        bits = int(ds.get("BitsStored", 8) or 8)
        target = resolve_family(family, args.lossy, bits)
    result = transcode_dataset(ds, target, options)
    write_dataset(result.dataset, dst)
    notes = repairs + result.notes
    what = {
        "none": "no pixel data",
        "kept": "pixel data kept",
        "refragmented": "fragments rewritten",
        "encoded": "pixel data re-encoded",
    }
    line = f"{src} -> {dst}: {result.target_syntax.name}, {what[result.pixels]}"
    if result.lossy and result.ratio:
        line += f", lossy {result.ratio:.1f}:1, new SOP Instance UID"
    if notes:
        line += "; " + "; ".join(notes)
    return line


def run(args: argparse.Namespace) -> int:
    import logging

    if not getattr(args, "verbose", 0):
        # pydicom logs each oddity it meets while reading; we report them as repairs.
        logging.getLogger("pydicom").setLevel(logging.ERROR)

    if args.lossy and args.family in (None, "explicit", "implicit", "deflated", "raw", "rle"):
        print("node-ctl convert: --lossy needs --jpeg, --jpegls or --j2k", file=sys.stderr)
        return 2
    if not args.input.exists():
        print(f"node-ctl convert: {args.input}: no such file or directory", file=sys.stderr)
        return 2
    if args.input.is_dir() and args.output.exists() and not args.output.is_dir():
        print("node-ctl convert: IN is a directory, OUT must be one too", file=sys.stderr)
        return 2
    try:
        options = _options(args)
    except ValueError as exc:
        print(f"node-ctl convert: {exc}", file=sys.stderr)
        return 2
    many = args.input.is_dir()
    failures = done = 0
    pairs = list(_pairs(args))

    def one(pair: tuple[Path, Path]) -> tuple[str, str]:
        return _convert_or_report(pair[0], pair[1], args, options, many)

    for kind, text in parallel_map(one, pairs, args.jobs if many else 1):
        if kind == "done":
            done += 1
            if not args.quiet:
                print(text)
        elif kind == "skipped":
            print(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)
            failures += 1
    if many and not args.quiet:
        print(f"{done} converted, {failures} failed")
    return 1 if failures else 0


def _convert_or_report(
    src: Path, dst: Path, args: argparse.Namespace, options: Any, many: bool
) -> tuple[str, str]:
    """One file: ``("done", line)``, ``("skipped", message)`` or ``("failed", message)``.

    Runs in a worker process for a directory, so it returns text rather than printing.
    """
    from node.tools.convert import ConvertError, EncodeRefused, InputError, NotAnImage

    try:
        try:
            return "done", _convert_one(src, dst, args, options)
        except NotAnImage as exc:
            if not many:
                return "failed", f"node-ctl convert: {src}: {exc}"
            return "done", _fallback_explicit(src, dst, options, str(exc))
    except InputError as exc:
        text = str(exc).removeprefix(f"{src}: ")
        if many:
            return "skipped", f"node-ctl convert: {src}: skipped: {text}"
        return "failed", f"node-ctl convert: {src}: {text}"
    except (EncodeRefused, ConvertError) as exc:
        return "failed", f"node-ctl convert: {src}: {exc}"
    except OSError as exc:
        return "failed", f"node-ctl convert: {src}: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one line per file, never a traceback
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        return "failed", f"node-ctl convert: {src}: unexpected error: {first}"


def _fallback_explicit(src: Path, dst: Path, options: Any, why: str) -> str:
    """In a directory, objects without pixels (SR, PDF...) still go to OUT, uncompressed."""
    from dataclasses import replace

    from node.tools.convert.repair import read_with_repairs
    from node.tools.convert.transcode import transcode_dataset, write_dataset

    ds, repairs = read_with_repairs(src)
    opts = replace(options, generate_icon=False, photometric_interpretation=None)
    result = transcode_dataset(ds, "1.2.840.10008.1.2.1", opts)
    write_dataset(result.dataset, dst)
    notes = "; ".join(repairs + result.notes)
    return f"{src} -> {dst}: {why}: written as Explicit VR Little Endian" + (
        f"; {notes}" if notes else ""
    )
