"""``node-ctl studies``: the studies a running node holds, filtered as C-FIND filters.

Filters follow C-FIND matching: ``--patient-name 'DOE^J*'`` (wildcards, any case),
``--date 20240101-20240131`` (ranges: ``A-B``, ``A-``, ``-B``), ``--modality CT``,
``--study UID`` (``\\``-separated list), or findscu's ``-k 0010,0010=DOE*``.  Asks the
node's admin API (``GET /studies``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from node.cli._api_client import AdminClient, add_api_arguments, print_table, run_with_client


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "studies",
        help="list the studies a running node holds (admin API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    filters = parser.add_argument_group("filters (C-FIND matching)")
    filters.add_argument("--patient-id", metavar="ID", help="PatientID")
    filters.add_argument("--patient-name", metavar="NAME", help="PatientName, e.g. 'DOE^J*'")
    filters.add_argument("--date", metavar="RANGE", help="StudyDate: YYYYMMDD or a range A-B")
    filters.add_argument("--modality", help="a modality in the study, e.g. CT or CT\\\\MR")
    filters.add_argument("--accession", metavar="NUMBER", help="AccessionNumber")
    filters.add_argument("--study", metavar="UID", help="StudyInstanceUID")
    filters.add_argument("--ae", help="AE title whose records to list (default: the first)")
    filters.add_argument(
        "-k",
        "--key",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="findscu-style filter: -k 0010,0010=DOE* or -k PatientName=DOE* (repeatable; "
        f"keys: {', '.join(_KEY_OPTIONS)})",
    )
    page = parser.add_argument_group("output")
    page.add_argument("--limit", type=int, default=100, help="at most N studies (default 100)")
    page.add_argument("--offset", type=int, default=0, help="skip the first N")
    page.add_argument("--json", action="store_true", help="print the JSON answer")
    add_api_arguments(parser)
    parser.set_defaults(func=run)


#: The filters ``-k`` can set: keyword -> the option (``args`` attribute) it stands for.
_KEY_OPTIONS = {
    "PatientID": "patient_id",
    "PatientName": "patient_name",
    "StudyDate": "date",
    "ModalitiesInStudy": "modality",
    "Modality": "modality",
    "AccessionNumber": "accession",
    "StudyInstanceUID": "study",
}


class KeyError_(ValueError):  # noqa: N801 - KeyError is a builtin
    """A ``-k`` that names no filter of the studies listing."""


def apply_keys(args: argparse.Namespace) -> None:
    """Fold ``-k KEY=VALUE`` (a tag ``gggg,eeee`` or a keyword) into the filter options."""
    for spec in args.key:
        key, sep, value = spec.partition("=")
        key = key.strip().strip("()")
        if "," in key:
            from pydicom.datadict import keyword_for_tag

            group, _, element = key.partition(",")
            try:
                key = keyword_for_tag(int(group, 16) << 16 | int(element, 16)) or key
            except ValueError:
                pass
        option = _KEY_OPTIONS.get(key)
        if not sep or option is None:
            raise KeyError_(f"-k {spec}: not KEY=VALUE with a key among {', '.join(_KEY_OPTIONS)}")
        setattr(args, option, value)


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def run(args: argparse.Namespace) -> int:
    try:
        apply_keys(args)
    except KeyError_ as exc:
        print(f"node-ctl studies: {exc}", file=sys.stderr)
        return 2

    def body(client: AdminClient) -> int:
        page = client.get(
            "/studies",
            ae=args.ae,
            PatientID=args.patient_id,
            PatientName=args.patient_name,
            StudyDate=args.date,
            Modality=args.modality,
            AccessionNumber=args.accession,
            StudyInstanceUID=args.study,
            limit=args.limit,
            offset=args.offset,
        )
        if args.json:
            print(json.dumps(page, indent=2))
            return 0
        rows = [
            [
                _date(s["StudyDate"]),
                s["PatientID"],
                s["PatientName"],
                "/".join(s["ModalitiesInStudy"]),
                str(s["NumberOfStudyRelatedSeries"]),
                str(s["NumberOfStudyRelatedInstances"]),
                s["AccessionNumber"],
                s["StudyInstanceUID"],
                s["StudyDescription"],
            ]
            for s in page["items"]
        ]
        headers = ["date", "patient id", "name", "mod", "series", "inst", "accession", "uid"]
        print_table(rows, [*headers, "description"])
        shown = len(page["items"])
        more = f"; more: --offset {args.offset + shown}" if page["more"] else ""
        print(f"{shown} study(ies) in {page['ae']}{more}", file=sys.stderr)
        return 0

    return run_with_client("studies", args, body)
