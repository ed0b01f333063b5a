"""Values for Type 1 record keys an instance does not provide, as DCMTK's ``dcmmkdir +I`` does.

dcmmkdir (DCMTK 3.6.7, ``dcddirif.cc``) fills, with global counters over the whole file-set:

- PatientID ``DCMTKPAT`` + six digits from 0, StudyID ``DCMTKSTUDY`` + six digits from 0,
  SeriesNumber from 0, InstanceNumber from 1;
- StudyDate / StudyTime from SeriesDate, AcquisitionDate, ContentDate (and the times), else
  the current date and time (this one even without ``+I``).

dcmmkdir refuses a file for any other missing Type 1 key.  So that every readable file-set
still gets a DICOMDIR, we also invent, and report, the keys for which a neutral value exists
(missing UIDs get UIDs derived from the root, Modality ``OT``, content dates from the other
dates, labels ``UNNAMED``, SR flags ``PARTIAL``/``UNVERIFIED``); a key with no neutral value (a
code sequence, a MIME type, a dose summation type) makes the file skipped, with the reason.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from node.tools.dicomdir._values import fix_da, fix_tm

PATIENT_ID_PREFIX = "DCMTKPAT"
STUDY_ID_PREFIX = "DCMTKSTUDY"

#: Where dcmmkdir (and we) look for a date or time when the record's own key is empty.
_DATE_FALLBACKS: dict[str, tuple[str, ...]] = {
    "StudyDate": ("SeriesDate", "AcquisitionDate", "ContentDate"),
    "StudyTime": ("SeriesTime", "AcquisitionTime", "ContentTime"),
    "ContentDate": ("InstanceCreationDate", "SeriesDate", "AcquisitionDate", "StudyDate"),
    "ContentTime": ("InstanceCreationTime", "SeriesTime", "AcquisitionTime", "StudyTime"),
    "PresentationCreationDate": ("InstanceCreationDate", "ContentDate", "StudyDate"),
    "PresentationCreationTime": ("InstanceCreationTime", "ContentTime", "StudyTime"),
    "InstanceCreationDate": ("ContentDate", "SeriesDate", "StudyDate"),
}

#: Neutral constants for keys that carry no clinical meaning of their own.
_CONSTANTS = {
    "Modality": "OT",
    "ContentLabel": "UNNAMED",
    "StructureSetLabel": "UNNAMED",
    "RTPlanLabel": "UNNAMED",
    "CompletionFlag": "PARTIAL",
    "VerificationFlag": "UNVERIFIED",
}


_COUNTED = frozenset({"PatientID", "StudyID", "SeriesNumber", "InstanceNumber"})


def can_invent(keyword: str) -> bool:
    """Whether a missing ``keyword`` gets an invented value (else the file is skipped)."""
    return keyword in _COUNTED or keyword in _DATE_FALLBACKS or keyword in _CONSTANTS


@dataclass(frozen=True)
class Invention:
    """One invented key value, for the report (dcmmkdir prints the same as warnings)."""

    source: str
    record_type: str
    keyword: str
    value: str


def has_value(ds: Dataset, keyword: str) -> bool:
    """Whether ``keyword`` is present with a non-empty value (what Type 1 requires)."""
    elem = ds.get(keyword)
    if elem is None:
        return False
    value = ds[keyword].value
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip(" \0"))
    if isinstance(value, bytes):
        return bool(value.strip(b" \0"))
    if isinstance(value, Sequence):
        return len(value) > 0
    return True


class Inventor:
    """Counters and rules shared by the whole file-set, so invented IDs are unique in it."""

    def __init__(self, root_uid: str | None, now: datetime.datetime | None = None) -> None:
        self._root = _uid_prefix(root_uid)
        self._now = now or datetime.datetime.now()
        self._patient = 0
        self._study = 0
        self._series = 0
        self._instance = 1
        self.inventions: list[Invention] = []

    def uid(self, *entropy: str) -> str:
        """A UID under the root, the same for the same entropy (stable across runs)."""
        return str(generate_uid(self._root, entropy_srcs=list(entropy)))

    def new_uid(self) -> str:
        """A fresh UID under the root (the DICOMDIR's own SOP Instance UID)."""
        return str(generate_uid(self._root))

    def value_for(self, keyword: str, header: Dataset) -> str | None:
        """The value to use for a missing Type 1 ``keyword``, or ``None`` when none is neutral."""
        if keyword == "PatientID":
            value = f"{PATIENT_ID_PREFIX}{self._patient:06d}"
            self._patient += 1
            return value
        if keyword == "StudyID":
            value = f"{STUDY_ID_PREFIX}{self._study:06d}"
            self._study += 1
            return value
        if keyword == "SeriesNumber":
            value = str(self._series)
            self._series += 1
            return value
        if keyword == "InstanceNumber":
            value = str(self._instance)
            self._instance += 1
            return value
        if keyword in _DATE_FALLBACKS:
            fix = fix_da if keyword.endswith("Date") else fix_tm
            for other in _DATE_FALLBACKS[keyword]:
                if has_value(header, other):
                    fixed = fix(str(header[other].value))
                    if fixed:
                        return fixed
            fmt = "%Y%m%d" if keyword.endswith("Date") else "%H%M%S"
            return self._now.strftime(fmt)
        return _CONSTANTS.get(keyword)

    def note(self, source: str, record_type: str, keyword: str, value: str) -> None:
        self.inventions.append(Invention(source, record_type, keyword, value))


def _uid_prefix(root_uid: str | None) -> str | None:
    if not root_uid:
        return None
    return root_uid if root_uid.endswith(".") else root_uid + "."
