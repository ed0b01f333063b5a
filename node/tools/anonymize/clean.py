"""Cleaning free text: the C action of Clean Descriptors, Clean Structured Content and the
patient/device options.

Why this shape: "clean" in PS3.15 means "replace with values of similar meaning known not
to contain identifying information".  Understanding free text is out of reach, so this
removes what can be known to identify: every name, ID, address, institution and birth
date of the instance being de-identified (collected before anything is changed), plus
anything shaped like a date or a long number.  What remains is the descriptive text
("CT HEAD W/O CONTRAST") the option exists to keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["IDENTIFYING_KEYWORDS", "Identifiers", "clean_text"]

#: Attributes (besides every PN) whose values identify someone or somewhere.
IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientID",
        "OtherPatientIDs",
        "IssuerOfPatientID",
        "AccessionNumber",
        "StudyID",
        "AdmissionID",
        "ServiceEpisodeID",
        "MedicalRecordLocator",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "DetectorID",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence",
        "MilitaryRank",
        "BranchOfService",
        "PatientInsurancePlanCodeSequence",
        "RequestedProcedureID",
        "ScheduledProcedureStepID",
        "PerformedProcedureStepID",
        "FillerOrderNumberImagingServiceRequest",
        "PlacerOrderNumberImagingServiceRequest",
        "PatientBirthDate",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PersonAddress",
        "PersonTelephoneNumbers",
    }
)

_DATE_SHAPES = re.compile(r"\b(\d{4}[-./]?\d{2}[-./]?\d{2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})\b")
_LONG_NUMBER = re.compile(r"\b\d{6,}\b")
_SPACES = re.compile(r"\s{2,}")


class Identifiers:
    """The identifying strings of one instance, matched case-insensitively on word bounds."""

    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str, *, person_name: bool = False) -> None:
        """Remember ``value`` (and, for names and multi-word values, its parts)."""
        value = value.strip()
        if not value:
            return
        self._pattern = None
        self._tokens.add(value)
        separators = r"[\^=\\,\s]+" if person_name else r"[\\,\s]+"
        for part in re.split(separators, value):
            if len(part) >= (2 if person_name else 4):
                self._tokens.add(part)
        if value.isdigit() and len(value) == 8:  # a DA: also the usual written forms
            y, m, d = value[:4], value[4:6], value[6:]
            self._tokens.update({f"{y}-{m}-{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}"})

    def update(self, values: Iterable[str], *, person_name: bool = False) -> None:
        for value in values:
            self.add(value, person_name=person_name)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def pattern(self) -> re.Pattern[str] | None:
        """One regex matching any identifier (longest first), or None when there is none."""
        if self._pattern is None and self._tokens:
            ordered = sorted(self._tokens, key=len, reverse=True)
            alternatives = "|".join(re.escape(t) for t in ordered)
            self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return self._pattern


def clean_text(text: str, identifiers: Identifiers) -> str:
    """``text`` without the instance's identifiers, dates and long numbers."""
    pattern = identifiers.pattern()
    if pattern is not None:
        text = pattern.sub(" ", text)
    text = _DATE_SHAPES.sub(" ", text)
    text = _LONG_NUMBER.sub(" ", text)
    return _SPACES.sub(" ", text).strip()
