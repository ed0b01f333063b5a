"""From a parsed instance header to what the index keeps: level columns and level attributes.

Why: the index never sees file bytes (Orthanc's ``ServerIndex`` gets a tag summary, too).
Each level (patient, study, series, instance) keeps its indexed columns plus the rest of
its top-level attributes as DICOM JSON (decoded to Unicode, so a query in any character set
can match them).  Which attribute belongs to which level comes from the standard's modules
(``storage/data/levels.json``: Patient / General Study / Patient Study / General Series /
General Equipment / Frame of Reference ...); everything else is instance level.

Bulk values (pixel data, large binary values, long sequences such as per-frame functional
groups) are left in the file: the index keeps what a query can match or return.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import AMBIGUOUS_VR
from sqlalchemy import String

from storage.models import Instance, Patient, Series, Study

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_MAX_BINARY = 256
_MAX_SEQUENCE_ITEMS = 32
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


#: Columns that are part of a natural key: an over-long value must not merge two entities.
_KEY_COLUMNS = frozenset({"patient_id", "issuer_of_patient_id"})
_DIGEST_CHARS = 16


def index_value(column: Any, value: str) -> str:
    """The form of ``value`` that the indexed ``column`` (e.g. ``Patient.patient_id``) keeps.

    Values are stored as sent in the file and in ``attrs``; a column holds at most its
    declared width (PostgreSQL's VARCHAR(n) refuses more, SQLite would keep it), without NUL
    characters or unpaired surrogates (neither can be stored as PostgreSQL text).  A longer
    value is cut to the width; in a key column (PatientID, IssuerOfPatientID) it keeps a
    prefix plus ``~`` and a digest of the whole value, so two over-long IDs that share a
    prefix stay two patients.  A query compares ``index_value(column, wanted)`` with the
    column, and the exact match is decided on ``attrs``.
    """
    if "\0" in value:
        value = value.replace("\0", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    width, key = _width(column)
    if width is None or len(value) <= width:
        return value
    if key:
        digest = hashlib.blake2s(value.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
        return f"{value[: width - _DIGEST_CHARS - 1]}~{digest}"
    return value[:width]


@cache
def _width(column: Any) -> tuple[int | None, bool]:
    """(declared width or None, is a key column) of ``column``: asking the ORM attribute
    for its type on every call cost more than the rest of ``index_value``."""
    width = column.type.length if isinstance(column.type, String) else None
    return width, column.key in _KEY_COLUMNS


def kept_length(column: Any) -> int | None:
    """How many leading characters of a value ``index_value`` keeps intact in ``column``
    (None: no limit): a stored value at least this long may have been cut."""
    width = column.type.length if isinstance(column.type, String) else None
    if width is None:
        return None
    return width - _DIGEST_CHARS - 1 if column.key in _KEY_COLUMNS else width


class HeaderError(ValueError):
    """The dataset lacks what an instance needs to be indexed (its UIDs, mostly)."""


@cache
def level_keywords() -> dict[str, frozenset[str]]:
    """Keyword sets of the PATIENT, STUDY and SERIES levels (IMAGE is everything else)."""
    raw = json.loads(resources.files("storage").joinpath("data/levels.json").read_text())
    return {level: frozenset(raw[level]) for level in ("PATIENT", "STUDY", "SERIES")}


@cache
def level_of_keyword(keyword: str) -> str:
    for level, keywords in level_keywords().items():
        if keyword in keywords:
            return level
    return "IMAGE"


def _value_text(value: Any) -> str:
    """A converted element value as one string (multi-values joined with a backslash)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


@dataclass(frozen=True)
class _Converted:
    """What the index takes from one top-level element: its JSON, text and level."""

    json: dict[str, Any] | None
    text: str
    level: str


#: Conversions of raw elements, keyed by everything the conversion depends on (tag, VR,
#: byte order, VR explicitness, the value's bytes, the dataset's character set).
#:
#: Why: the instances of a series repeat nearly all of their header (patient, study and
#: series attributes, image geometry...), and converting each element with pydicom and
#: then to DICOM JSON cost more than a millisecond per instance.  A hit returns pydicom's
#: own conversion of the same bytes; only what differs (UIDs, positions, numbers) is
#: converted again.  Entries are shared, so their JSON is never modified in place.
_CONVERTED: dict[tuple[Any, ...], _Converted] = {}
_CONVERTED_MAX = 16384
#: Values longer than this are converted every time, not remembered.
_CACHE_VALUE_MAX = 1024


@cache
def _ambiguous(tag: int) -> bool:
    """Does the VR of ``tag`` in Implicit VR depend on other elements (US or SS...)?"""
    try:
        return dictionary_VR(tag) in AMBIGUOUS_VR
    except KeyError:
        return False


@cache
def _level_of_tag(tag: int) -> str:
    keyword = keyword_for_tag(tag)
    return level_of_keyword(keyword) if keyword else "IMAGE"


def _convert(ds: Dataset, tag: int, charset: Any) -> _Converted:
    raw = ds._dict[tag]  # type: ignore[index]
    key: tuple[Any, ...] | None = None
    if (
        isinstance(raw, RawDataElement)
        and isinstance(raw.value, bytes)
        and len(raw.value) <= _CACHE_VALUE_MAX
        and not (raw.VR is None and _ambiguous(tag))
    ):
        key = (tag, raw.VR, raw.is_little_endian, raw.is_implicit_VR, raw.value, charset)
        hit = _CONVERTED.get(key)
        if hit is not None:
            return hit
    elem = ds[tag]
    converted = _Converted(element_json(elem), _value_text(elem.value), _level_of_tag(tag))
    if key is not None:
        if len(_CONVERTED) >= _CONVERTED_MAX:
            _CONVERTED.clear()
        _CONVERTED[key] = converted
    return converted


def _charset_key(ds: Dataset) -> Any:
    raw = ds._dict.get(0x00080005)  # type: ignore[attr-defined]
    if raw is None:
        return None
    value = raw.value
    return (
        tuple(value) if isinstance(value, list) or type(value).__name__ == "MultiValue" else value
    )


@dataclass
class InstanceRecord:
    """Everything the index stores about one instance (columns + attributes per level)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient: dict[str, str] = field(default_factory=dict)
    study: dict[str, str] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)
    instance: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)


def element_json(elem: DataElement) -> dict[str, Any] | None:
    """DICOM JSON of one element, or None when it is bulk that the index does not keep."""
    if elem.tag in _PIXEL_TAGS:
        return None
    if elem.VR in _BINARY_VRS:
        if elem.value is not None and len(elem.value) > _MAX_BINARY:
            return None
    if elem.VR == "SQ" and len(elem.value) > _MAX_SEQUENCE_ITEMS:
        return None
    try:
        return elem.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=_MAX_BINARY)
    except Exception:  # noqa: BLE001 - an undecodable value is simply not indexed
        return None


def extract(ds: Dataset, transfer_syntax_uid: str) -> InstanceRecord:
    """Build the index record of ``ds`` (a header read with ``stop_before_pixels``).

    Raises ``HeaderError`` when a UID the index needs is missing or not a UID at all.  A
    UID that breaks the syntax rules in a minor way (a leading zero, letters from a broken
    generator) is kept as sent, as DCMTK and Orthanc keep it: the file store never uses such
    a value as a path (``storage.files``).
    """
    charset = _charset_key(ds)
    attrs: dict[str, dict[str, Any]] = {level: {} for level in LEVELS}
    texts: dict[int, str] = {}
    for tag in sorted(ds._dict):  # type: ignore[attr-defined]
        if tag >> 16 == 0x0002 or tag & 0x10000 or not tag & 0xFFFF:
            continue  # file meta, private, group length
        converted = _convert(ds, tag, charset)
        texts[tag] = converted.text
        if converted.json is not None:
            attrs[converted.level][f"{tag:08X}"] = converted.json

    def text(keyword: str) -> str:
        return texts.get(_TAGS[keyword], "")

    uids = {}
    for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = text(keyword).rstrip("\0 ")
        if not value:
            raise HeaderError(f"{keyword} missing")
        if len(value) > 64 or not value.isprintable():
            raise HeaderError(f"{keyword} is not a UID (longer than 64 or unprintable)")
        uids[keyword] = value
    record = InstanceRecord(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax_uid,
    )
    name = text("PatientName")
    record.patient = {
        "patient_id": index_value(Patient.patient_id, text("PatientID")),
        "issuer_of_patient_id": index_value(
            Patient.issuer_of_patient_id, text("IssuerOfPatientID")
        ),
        "patient_name": index_value(Patient.patient_name, name),
        "patient_name_key": index_value(Patient.patient_name_key, name.upper()),
        "patient_birth_date": index_value(Patient.patient_birth_date, text("PatientBirthDate")),
        "patient_sex": index_value(Patient.patient_sex, text("PatientSex")),
    }
    record.study = {
        "study_date": index_value(Study.study_date, text("StudyDate")),
        "study_time": index_value(Study.study_time, text("StudyTime")),
        "accession_number": index_value(Study.accession_number, text("AccessionNumber")),
        "study_id": index_value(Study.study_id, text("StudyID")),
        "referring_physician_name": index_value(
            Study.referring_physician_name, text("ReferringPhysicianName")
        ),
        "study_description": index_value(Study.study_description, text("StudyDescription")),
    }
    record.series = {
        "modality": index_value(Series.modality, text("Modality")),
        "series_number": index_value(Series.series_number, text("SeriesNumber")),
        "series_date": index_value(Series.series_date, text("SeriesDate")),
        "series_description": index_value(Series.series_description, text("SeriesDescription")),
    }
    record.instance = {
        "instance_number": index_value(Instance.instance_number, text("InstanceNumber"))
    }
    record.attrs = attrs
    return record


#: Tags of the keywords ``extract`` puts in columns.
_TAGS = {
    keyword: tag_for_keyword(keyword)
    for keyword in (
        "SOPInstanceUID",
        "SOPClassUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "ReferringPhysicianName",
        "StudyDescription",
        "Modality",
        "SeriesNumber",
        "SeriesDate",
        "SeriesDescription",
        "InstanceNumber",
    )
}
