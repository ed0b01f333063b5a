"""``node-ctl img2dcm IMG... OUT``: images to a DICOM object (DCMTK img2dcm / gdcmimg).

JPEG is encapsulated as is (baseline, extended, progressive), never decoded; BMP,
PNG, PGM/PPM and raw files are stored uncompressed. Several images become the frames
of one multi-frame object. Options keep DCMTK's names (``-df``, ``-stf``, ``-sef``,
``-ii``, ``-k``, ``+i2``/``-i2``, ``+i1``/``-i1``, ``-sc``/``-nsc``/``-vlp``); the raw
input options are gdcmimg's (``--size``, ``--depth``, ``--spp``, ``--endian``,
``--sign``, ``--offset``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _size(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W,H[,FRAMES]: {text!r}") from None
    if len(values) not in (2, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected W,H[,FRAMES]: {text!r}")
    return values


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "img2dcm",
        help="convert JPEG/BMP/PNG/PNM/raw images to DICOM (img2dcm, gdcmimg)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prefix_chars="-+",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMG", help="image file(s)")
    parser.add_argument("output", type=Path, metavar="OUT", help="DICOM file to write")
    source = parser.add_argument_group("input")
    source.add_argument(
        "-i",
        "--input-format",
        choices=("jpeg", "bmp", "png", "pnm", "raw"),
        type=str.lower,
        help="input format (default: from the file's magic)",
    )
    source.add_argument(
        "-df",
        "--dataset-from",
        type=Path,
        metavar="FILE",
        help="use the data set of this DICOM file as template",
    )
    levels = source.add_mutually_exclusive_group()
    levels.add_argument(
        "-stf",
        "--study-from",
        type=Path,
        metavar="FILE",
        help="patient and study attributes from this DICOM file",
    )
    levels.add_argument(
        "-sef",
        "--series-from",
        type=Path,
        metavar="FILE",
        help="patient, study and series attributes from this DICOM file",
    )
    source.add_argument(
        "-ii", "--instance-inc", action="store_true", help="Instance Number = the file's + 1"
    )
    jpeg = parser.add_argument_group("JPEG")
    jpeg.add_argument("-dp", "--disable-progr", action="store_true")
    jpeg.add_argument("-de", "--disable-ext", action="store_true")
    jpeg.add_argument("-jf", "--insist-on-jfif", action="store_true")
    jpeg.add_argument(
        "-ka",
        "--keep-appn",
        action="store_true",
        help="keep APPn segments (JFIF is always removed)",
    )
    jpeg.add_argument("-rc", "--remove-com", action="store_true")
    raw = parser.add_argument_group("raw input (gdcmimg)")
    raw.add_argument("-s", "--size", type=_size, metavar="W,H[,F]")
    raw.add_argument("--depth", type=int, default=8, help="8, 16, 32 or Bits Stored (12)")
    raw.add_argument("--spp", type=int, default=1, choices=(1, 3), help="samples per pixel")
    raw.add_argument("--endian", type=str.upper, choices=("LSB", "MSB"), default="LSB")
    raw.add_argument("--sign", type=int, choices=(0, 1), default=0)
    raw.add_argument("--offset", type=int, default=0, help="bytes to skip")
    checks = parser.add_argument_group("attribute checking")
    checks.add_argument("--do-checks", dest="checks", action="store_true", default=True)
    checks.add_argument("--no-checks", dest="checks", action="store_false")
    checks.add_argument(
        "+i2", "--insert-type2", dest="insert_type2", action="store_true", default=True
    )
    checks.add_argument("-i2", "--no-type2-insert", dest="insert_type2", action="store_false")
    checks.add_argument(
        "+i1", "--invent-type1", dest="invent_type1", action="store_true", default=True
    )
    checks.add_argument("-i1", "--no-type1-invent", dest="invent_type1", action="store_false")
    checks.add_argument(
        "-k",
        "--key",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="gggg,eeee=value or Keyword=value (Seq[0].Keyword=...), last",
    )
    out = parser.add_argument_group("output SOP class")
    klass = out.add_mutually_exclusive_group()
    klass.add_argument(
        "-sc",
        "--sec-capture",
        dest="sop_class",
        action="store_const",
        const="sc",
        help="Secondary Capture (default)",
    )
    klass.add_argument(
        "-nsc",
        "--new-sc",
        dest="sop_class",
        action="store_const",
        const="new-sc",
        help="multi-frame Secondary Capture classes",
    )
    klass.add_argument(
        "-vlp",
        "--vl-photo",
        dest="sop_class",
        action="store_const",
        const="vl-photo",
        help="VL Photographic Image",
    )
    klass.add_argument("-C", "--sop-class-uid", metavar="UID", help="any SOP Class UID")
    out.add_argument("-T", "--study-uid", metavar="UID")
    out.add_argument("-S", "--series-uid", metavar="UID")
    out.add_argument("--root-uid", metavar="UID", help="root of generated UIDs")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run, sop_class="sc")


def run(args: argparse.Namespace) -> int:
    from node.tools.convert import ConvertError
    from node.tools.convert.images import JpegOptions, RawSpec
    from node.tools.convert.img2dcm import Img2DcmOptions, images_to_dataset
    from node.tools.convert.transcode import write_dataset

    raw_spec = None
    if args.size:
        columns, rows = args.size[:2]
        raw_spec = RawSpec(
            columns=columns,
            rows=rows,
            frames=args.size[2] if len(args.size) == 3 else 1,
            depth=args.depth,
            samples=args.spp,
            big_endian=args.endian == "MSB",
            signed=bool(args.sign),
            offset=args.offset,
        )
    options = Img2DcmOptions(
        sop_class=args.sop_class,
        sop_class_uid=args.sop_class_uid,
        input_format=args.input_format,
        jpeg=JpegOptions(
            keep_appn=args.keep_appn,
            insist_on_jfif=args.insist_on_jfif,
            remove_com=args.remove_com,
            disable_progressive=args.disable_progr,
            disable_extended=args.disable_ext,
        ),
        raw=raw_spec,
        dataset_from=args.dataset_from,
        study_from=args.study_from,
        series_from=args.series_from,
        instance_inc=args.instance_inc,
        keys=tuple(args.key),
        checks=args.checks,
        insert_type2=args.insert_type2,
        invent_type1=args.invent_type1,
        study_uid=args.study_uid,
        series_uid=args.series_uid,
        root_uid=args.root_uid,
    )
    try:
        result = images_to_dataset(list(args.inputs), options)
        write_dataset(result.dataset, args.output)
    except ConvertError as exc:
        print(f"node-ctl img2dcm: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"node-ctl img2dcm: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        ds = result.dataset
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        line = (
            f"{args.output}: {ds.SOPClassUID.name}, {ds.file_meta.TransferSyntaxUID.name}, "
            f"{ds.Columns}x{ds.Rows} {ds.PhotometricInterpretation}, {frames} frame(s)"
        )
        if result.notes:
            line += "; " + "; ".join(result.notes)
        print(line)
    return 0
