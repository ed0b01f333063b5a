"""Attribute plumbing shared by img2dcm and pdf2dcm.

``--study-from``/``--series-from`` copy exactly the attributes the DCMTK img2dcm
manual lists; ``-k`` is applied last, as in DCMTK (``gggg,eeee=value``,
``Keyword=value``, and dcmodify's path form ``Sequence[0].Keyword=value``); the
type 1 / type 2 checks follow DCMTK's ``--insert-type2`` / ``--invent-type1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from node.tools.convert.dataset_ops import new_uid
from node.tools.convert.errors import InputError

__all__ = [
    "PATIENT_STUDY_KEYWORDS",
    "SERIES_KEYWORDS",
    "apply_keys",
    "check_type1",
    "check_type2",
    "copy_levels",
    "read_reference",
]

#: img2dcm manual: what --study-from copies (patient and study level).
PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientSex",
    "PatientBirthDate",
    "SpecificCharacterSet",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
#: ... and what --series-from adds.
SERIES_KEYWORDS = ("SeriesInstanceUID", "SeriesNumber", "Manufacturer")

_PATH_PART = re.compile(
    r"^(?P<tag>\(?[0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)?|[A-Za-z][A-Za-z0-9]*)"
    r"(?:\[(?P<index>\d+|\*)\])?$"
)
_NUMERIC = {
    "US": int,
    "SS": int,
    "UL": int,
    "SL": int,
    "UV": int,
    "SV": int,
    "FL": float,
    "FD": float,
}


def read_reference(path: Path) -> Dataset:
    """Read a DICOM file used as template or study/series source."""
    try:
        return dcmread(path, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: cannot read DICOM file: {exc}") from None


def copy_levels(target: Dataset, source: Dataset, *, series: bool) -> None:
    """Copy patient/study (and with `series`, series) attributes as img2dcm does.

    Type 2 attributes absent from `source` are inserted empty; the UIDs are type 1
    and must be present.
    """
    keywords = PATIENT_STUDY_KEYWORDS + (SERIES_KEYWORDS if series else ())
    for keyword in keywords:
        if keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
            if not source.get(keyword):
                raise InputError(f"the study/series file has no {keyword} (type 1)")
        if keyword in source:
            target[keyword] = source[keyword]
        elif keyword != "SpecificCharacterSet":
            setattr(target, keyword, "")


def _tag_of(text: str) -> int:
    text = text.strip("()")
    if "," in text:
        group, element = text.split(",")
        return int(Tag(int(group, 16), int(element, 16)))
    tag = tag_for_keyword(text)
    if tag is None:
        raise InputError(f"unknown attribute keyword {text!r}")
    return int(tag)


def _convert(vr: str, value: str) -> object:
    if vr in _NUMERIC:
        parts = [_NUMERIC[vr](v) for v in value.split("\\") if v != ""]
        return parts[0] if len(parts) == 1 else parts
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"):
        raise InputError(f"cannot set a {vr} value from the command line")
    return value


def apply_keys(ds: Dataset, keys: Iterable[str]) -> None:
    """Apply ``-k`` assignments, in order, creating sequence items as needed."""
    for key in keys:
        path, _, value = key.partition("=")
        parts = [p for p in path.strip().split(".") if p]
        if not parts:
            raise InputError(f"bad -k value {key!r}")
        current = ds
        for i, part in enumerate(parts):
            match = _PATH_PART.match(part)
            if match is None:
                raise InputError(f"bad -k path element {part!r} in {key!r}")
            tag = _tag_of(match["tag"])
            last = i == len(parts) - 1
            if match["index"] is not None:
                if last:
                    raise InputError(f"-k {key!r}: a path must end with an attribute")
                if match["index"] == "*":
                    raise InputError("-k: wildcard item selection is not supported")
                index = int(match["index"])
                if tag not in current:
                    current.add_new(tag, "SQ", DicomSequence())
                items = current[tag].value
                while len(items) <= index:
                    items.append(Dataset())
                current = items[index]
                continue
            if not last:
                raise InputError(f"-k {key!r}: {part} needs an item index, e.g. {part}[0]")
            if tag in current:
                vr = current[tag].VR
            else:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    raise InputError(f"-k {key!r}: unknown tag, its VR is not known") from None
            if " or " in vr:
                vr = vr.split(" or ")[0]
            converted = _convert(vr, value) if value != "" else None
            current.add_new(tag, vr, converted)


def check_type2(ds: Dataset, keywords: Sequence[str], insert: bool) -> list[str]:
    """Insert missing type 2 attributes empty, or list them as errors."""
    errors = []
    for keyword in keywords:
        if keyword not in ds:
            if insert:
                setattr(ds, keyword, "" if keyword != "AcquisitionContextSequence" else [])
            else:
                errors.append(f"missing type 2 attribute {keyword}")
    return errors


def check_type1(
    ds: Dataset, defaults: dict[str, str | None], invent: bool, root_uid: str | None
) -> list[str]:
    """Type 1 attributes must exist; empty ones get a value (UIDs: a new UID) when inventing."""
    errors = []
    for keyword, default in defaults.items():
        if keyword not in ds:
            errors.append(f"missing type 1 attribute {keyword}")
            continue
        if ds[keyword].value in (None, "", []):
            if not invent:
                errors.append(f"empty type 1 attribute {keyword}")
                continue
            tag = tag_for_keyword(keyword)
            vr = dictionary_VR(tag) if tag is not None else ""
            if vr == "UI":
                setattr(ds, keyword, new_uid(root_uid))
            elif default is not None:
                setattr(ds, keyword, default)
            else:
                errors.append(f"empty type 1 attribute {keyword} and no value to invent")
    return errors


def describe(tag: int) -> str:
    """'Keyword (gggg,eeee)' for messages."""
    return f"{keyword_for_tag(tag) or 'private'} ({Tag(tag).group:04X},{Tag(tag).element:04X})"
