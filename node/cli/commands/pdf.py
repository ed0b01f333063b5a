"""``node-ctl pdf2dcm PDF OUT`` and ``node-ctl dcm2pdf DCM PDF`` (gdcmpdf, DCMTK pdf2dcm).

The PDF goes in and comes out byte for byte; its document information (title,
author, creator, producer, creation date) is mapped as gdcmpdf maps it, and
explicit options (``--title``, ``--patient-name`` ...) win over it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    to_dicom = subparsers.add_parser(
        "pdf2dcm",
        help="encapsulate a PDF as Encapsulated PDF Storage (gdcmpdf)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    to_dicom.add_argument("pdf", type=Path, metavar="PDF")
    to_dicom.add_argument("output", type=Path, metavar="OUT")
    to_dicom.add_argument("--title", help="Document Title (default: the PDF's Title)")
    to_dicom.add_argument("--patient-name", help="default: the PDF's Author, as gdcmpdf")
    to_dicom.add_argument("--patient-id")
    to_dicom.add_argument("--patient-birthdate", metavar="YYYYMMDD")
    to_dicom.add_argument("--patient-sex", choices=("M", "F", "O"))
    levels = to_dicom.add_mutually_exclusive_group()
    levels.add_argument("-stf", "--study-from", type=Path, metavar="FILE")
    levels.add_argument("-sef", "--series-from", type=Path, metavar="FILE")
    to_dicom.add_argument("-ii", "--instance-inc", action="store_true")
    to_dicom.add_argument("-k", "--key", action="append", default=[], metavar="KEY=VALUE")
    to_dicom.add_argument("--root-uid", metavar="UID")
    to_dicom.add_argument("--quiet", action="store_true")
    to_dicom.set_defaults(func=run_pdf2dcm)

    to_pdf = subparsers.add_parser(
        "dcm2pdf", help="extract the PDF of an Encapsulated PDF object (DCMTK dcm2pdf)"
    )
    to_pdf.add_argument("dicom", type=Path, metavar="DCM")
    to_pdf.add_argument("pdf", type=Path, metavar="PDF")
    to_pdf.set_defaults(func=run_dcm2pdf)


def run_pdf2dcm(args: argparse.Namespace) -> int:
    from node.tools.convert import ConvertError
    from node.tools.convert.pdf import PdfOptions, pdf_to_dataset
    from node.tools.convert.transcode import write_dataset

    try:
        data = args.pdf.read_bytes()
        modified = _dt.datetime.fromtimestamp(args.pdf.stat().st_mtime)
        options = PdfOptions(
            title=args.title,
            patient_name=args.patient_name,
            patient_id=args.patient_id,
            patient_birth_date=args.patient_birthdate,
            patient_sex=args.patient_sex,
            study_from=args.study_from,
            series_from=args.series_from,
            instance_inc=args.instance_inc,
            keys=tuple(args.key),
            root_uid=args.root_uid,
            modified=modified,
        )
        ds = pdf_to_dataset(data, options)
        write_dataset(ds, args.output)
    except ConvertError as exc:
        print(f"node-ctl pdf2dcm: {args.pdf}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"node-ctl pdf2dcm: {exc.filename or args.pdf}: {exc.strerror}", file=sys.stderr)
        return 1
    if not args.quiet:
        title = str(ds.get("DocumentTitle", "") or "")
        print(f"{args.output}: Encapsulated PDF, {len(data)} bytes, title {title!r}")
    return 0


def run_dcm2pdf(args: argparse.Namespace) -> int:
    from node.tools.convert import ConvertError
    from node.tools.convert.pdf import dataset_to_pdf
    from node.tools.convert.repair import read_with_repairs

    try:
        ds, _ = read_with_repairs(args.dicom)
        data = dataset_to_pdf(ds)
        args.pdf.write_bytes(data)
    except ConvertError as exc:
        print(f"node-ctl dcm2pdf: {args.dicom}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"node-ctl dcm2pdf: {exc.filename or args.pdf}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
