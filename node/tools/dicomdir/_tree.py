"""The record tree of a file-set, built in one pass with dictionary lookups.

Why not ``pydicom.fileset.FileSet.add``: it scans every instance already added to detect a
duplicate, so adding n files costs O(n^2) (minutes at 10,000 files).  Here patients, studies,
series and SOP instances are found through dictionaries, so each file costs O(1) and the
whole tree O(n); only the final ordering sorts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from node.tools.dicomdir._fileid import FileIdAllocator
from node.tools.dicomdir._invent import Inventor, can_invent, has_value
from node.tools.dicomdir._records import (
    CHARSET_VRS,
    NOT_REFERENCED,
    RECORD_KEYS,
    TOP_LEVEL_TYPES,
    record_type_for,
)
from node.tools.dicomdir._values import clean_element, is_valid_uid

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceInstance:
    """One instance to reference: where its bytes are and its header (no pixel data needed).

    The header must carry the record keys (patient, study, series and instance attributes) and
    the SOP Class/Instance UIDs; ``transfer_syntax_uid`` is how the bytes at ``path`` are
    encoded.  A node feeds these from its index; :func:`scan` reads them from files.
    """

    path: Path
    header: Dataset
    transfer_syntax_uid: str
    part10: bool = True

    @property
    def sop_class_uid(self) -> str:
        return str(self.header.get("SOPClassUID", "") or "")

    @property
    def sop_instance_uid(self) -> str:
        return str(self.header.get("SOPInstanceUID", "") or "")


@dataclass(frozen=True)
class Skipped:
    """An input that is not referenced, and why."""

    source: str
    reason: str


@dataclass(eq=False)
class Record:
    """A directory record: its type, its keys, and (for a leaf) the instance it references."""

    record_type: str
    keys: dict[str, DataElement]
    source: str
    children: list[Record] = field(default_factory=list)
    file_id: tuple[str, ...] | None = None
    instance: SourceInstance | None = None
    folder: tuple[str, ...] = ()

    def value(self, keyword: str) -> str:
        """The string value of a key (``""`` when absent or empty)."""
        elem = self.keys.get(keyword)
        return "" if elem is None or elem.value is None else str(elem.value)


class MissingKey(Exception):
    """A Type 1 key is missing and no neutral value can be invented (the file is skipped)."""


class TreeBuilder:
    """Adds instances to the PATIENT/STUDY/SERIES/leaf tree in O(1) each.

    With an ``allocator`` (building a media folder) every new patient, study and series gets a
    folder and every leaf a file name under it; without one (referencing files in place) the
    caller passes each file's ID.
    """

    def __init__(self, inventor: Inventor, allocator: FileIdAllocator | None = None) -> None:
        self.inventor = inventor
        self.allocator = allocator
        self.roots: list[Record] = []
        self.skipped: list[Skipped] = []
        self.warnings: list[str] = []
        self._patients: dict[tuple[str, ...], Record] = {}
        self._studies: dict[str, tuple[Record, Record]] = {}
        self._series: dict[str, tuple[Record, Record]] = {}
        self._instances: dict[str, Record] = {}
        self.leaves: list[Record] = []
        #: Other files with the SOP Instance UID of a leaf, in case the kept one fails later.
        self.alternates: dict[str, list[SourceInstance]] = {}

    # -- public ---------------------------------------------------------------------------

    def add(self, instance: SourceInstance, file_id: tuple[str, ...] | None = None) -> bool:
        """Add one instance; ``False`` (and an entry in :attr:`skipped`) when it is not added."""
        source = str(instance.path)
        sop_class = instance.sop_class_uid
        sop_instance = instance.sop_instance_uid
        if sop_class in NOT_REFERENCED:
            self.skipped.append(Skipped(source, "is itself a DICOMDIR"))
            return False
        if not sop_class or not sop_instance:
            self.skipped.append(Skipped(source, "no SOP Class UID or SOP Instance UID"))
            return False
        first = self._instances.get(sop_instance)
        if first is not None:
            self.skipped.append(
                Skipped(source, f"duplicate SOP Instance UID {sop_instance} (kept {first.source})")
            )
            self.alternates.setdefault(sop_instance, []).append(instance)
            return False
        if not is_valid_uid(sop_instance):
            self.warnings.append(
                f"{source}: SOP Instance UID {sop_instance!r} is not a valid UID (copied as is)"
            )
        record_type = record_type_for(sop_class)
        try:
            if record_type in TOP_LEVEL_TYPES:
                parent = None
                leaf = self._leaf(record_type, instance)
                self.roots.append(leaf)
            else:
                parent = self._series_for(instance)
                leaf = self._leaf(record_type, instance)
                parent.children.append(leaf)
        except MissingKey as exc:
            self.skipped.append(Skipped(source, str(exc)))
            return False
        if self.allocator is not None:
            leaf.file_id = self.allocator.child(parent.folder if parent else (), record_type)
        else:
            leaf.file_id = file_id
        self._instances[sop_instance] = leaf
        self.leaves.append(leaf)
        return True

    def add_all(self, instances: Iterable[SourceInstance]) -> None:
        for instance in instances:
            self.add(instance)

    # -- levels ---------------------------------------------------------------------------

    def _patient_for(self, instance: SourceInstance) -> Record:
        header = instance.header
        if has_value(header, "PatientID"):
            key: tuple[str, ...] = (
                "id",
                str(header.PatientID),
                str(header.get("IssuerOfPatientID", "") or ""),
            )
        else:
            key = ("name", str(header.get("PatientName", "") or ""))
        patient = self._patients.get(key)
        if patient is None:
            patient = self._record("PATIENT", instance, {})
            self._allocate_folder(patient, ())
            self._patients[key] = patient
            self.roots.append(patient)
        return patient

    def _study_for(self, instance: SourceInstance) -> Record:
        header = instance.header
        if has_value(header, "StudyInstanceUID"):
            uid = str(header.StudyInstanceUID)
            found = self._studies.get(uid)
            if found is not None:
                self._check_parent(instance, "study", uid, found[0])
                return found[1]
            patient = self._patient_for(instance)
            overrides: dict[str, str] = {}
        else:
            patient = self._patient_for(instance)
            patient_id = patient.value("PatientID")
            uid = self.inventor.uid(patient_id, "study")
            found = self._studies.get(uid)
            if found is not None:
                return found[1]
            overrides = {"StudyInstanceUID": uid}
        study = self._record("STUDY", instance, overrides)
        self._allocate_folder(study, patient.folder)
        patient.children.append(study)
        self._studies[uid] = (patient, study)
        return study

    def _series_for(self, instance: SourceInstance) -> Record:
        header = instance.header
        if has_value(header, "SeriesInstanceUID"):
            uid = str(header.SeriesInstanceUID)
            found = self._series.get(uid)
            if found is not None:
                self._check_parent(instance, "series", uid, found[0])
                return found[1]
            study = self._study_for(instance)
            overrides: dict[str, str] = {}
        else:
            study = self._study_for(instance)
            modality = str(header.get("Modality", "") or "")
            uid = self.inventor.uid(study.value("StudyInstanceUID"), modality, "series")
            found = self._series.get(uid)
            if found is not None:
                return found[1]
            overrides = {"SeriesInstanceUID": uid}
        series = self._record("SERIES", instance, overrides)
        self._allocate_folder(series, study.folder)
        study.children.append(series)
        self._series[uid] = (study, series)
        return series

    def _check_parent(self, instance: SourceInstance, level: str, uid: str, parent: Record) -> None:
        """Warn (as dcmmkdir does) when an instance disagrees with the record it joins."""
        header = instance.header
        if level == "study" and has_value(header, "PatientID"):
            expected = parent.value("PatientID")
            if str(header.PatientID) != expected:
                self.warnings.append(
                    f"{instance.path}: study {uid} already filed under patient {expected!r}, "
                    f"file says {header.PatientID!r}"
                )
        if level == "series" and has_value(header, "StudyInstanceUID"):
            expected = parent.value("StudyInstanceUID")
            if str(header.StudyInstanceUID) != expected:
                self.warnings.append(
                    f"{instance.path}: series {uid} already filed under study {expected}, "
                    f"file says {header.StudyInstanceUID}"
                )

    def _leaf(self, record_type: str, instance: SourceInstance) -> Record:
        leaf = self._record(record_type, instance, {})
        leaf.instance = instance
        return leaf

    def _allocate_folder(self, record: Record, parent_folder: tuple[str, ...]) -> None:
        if self.allocator is not None:
            record.folder = self.allocator.child(parent_folder, record.record_type)

    # -- keys -----------------------------------------------------------------------------

    def _record(
        self, record_type: str, instance: SourceInstance, overrides: dict[str, str]
    ) -> Record:
        header = instance.header
        source = str(instance.path)
        present: dict[str, DataElement] = {}
        for key in RECORD_KEYS[record_type]:
            elem = _source_element(header, key.keyword)
            if elem is None:
                continue
            cleaned, note = clean_element(elem)
            if note:
                self.warnings.append(f"{source}: {record_type} record: {note}")
            if cleaned is not None:
                present[key.keyword] = cleaned
                if cleaned.VR == "UI" and not is_valid_uid(str(cleaned.value)):
                    self.warnings.append(
                        f"{source}: {key.keyword} {cleaned.value!r} is not a valid UID "
                        "(copied as is: the record must match the file)"
                    )
        # Missing keys are checked before anything is invented, so a skipped file does not
        # consume a number of dcmmkdir's counters.
        for key in RECORD_KEYS[record_type]:
            if (
                key.type == "1"
                and key.keyword not in overrides
                and key.keyword not in present
                and not can_invent(key.keyword)
            ):
                raise MissingKey(
                    f"{record_type} record key {key.keyword} (Type 1) is missing and has no "
                    "neutral value to invent"
                )
        keys: dict[str, DataElement] = {}
        for key in RECORD_KEYS[record_type]:
            keyword = key.keyword
            if keyword in overrides:
                keys[keyword] = _element(keyword, overrides[keyword])
                self.inventor.note(source, record_type, keyword, overrides[keyword])
            elif keyword in present:
                keys[keyword] = present[keyword]
            elif key.type == "1":
                value = self.inventor.value_for(keyword, header)
                if value is None:  # pragma: no cover - guarded by the loop above
                    raise MissingKey(f"{record_type} record key {keyword} is missing")
                keys[keyword] = _element(keyword, value)
                self.inventor.note(source, record_type, keyword, value)
            elif key.type == "2":
                keys[keyword] = _element(keyword, None)
        charset = header.get("SpecificCharacterSet")
        if charset and any(elem.VR in CHARSET_VRS for elem in keys.values()):
            keys["SpecificCharacterSet"] = header["SpecificCharacterSet"]
        elif not charset and any(_non_ascii(elem) for elem in keys.values()):
            # pydicom decoded the bytes as Latin-1 (its default); say so in the record.
            keys["SpecificCharacterSet"] = _element("SpecificCharacterSet", "ISO_IR 100")
            self.warnings.append(
                f"{source}: non-ASCII text without Specific Character Set, recorded as ISO_IR 100"
            )
        return Record(record_type, keys, source)


def _non_ascii(elem: DataElement) -> bool:
    if elem.VR not in CHARSET_VRS or elem.VR == "SQ" or elem.value is None:
        return False
    return not str(elem.value).isascii()


def _source_element(header: Dataset, keyword: str) -> DataElement | None:
    """The header element for a record key, or ``None`` when it has no value.

    VerificationDateTime of an SR DOCUMENT record lives in the file's Verifying Observer
    Sequence; the record takes the latest one (PS3.3 F.5.23 and C.17.2).
    """
    if has_value(header, keyword):
        return header[keyword]
    if keyword == "VerificationDateTime" and has_value(header, "VerifyingObserverSequence"):
        stamps = [
            str(item.VerificationDateTime)
            for item in header.VerifyingObserverSequence
            if has_value(item, "VerificationDateTime")
        ]
        if stamps:
            return _element(keyword, max(stamps))
    return None


def _element(keyword: str, value: str | None) -> DataElement:
    tag = tag_for_keyword(keyword)
    if tag is None:  # pragma: no cover - keywords come from our own table
        raise KeyError(keyword)
    vr = dictionary_VR(tag)
    if vr == "SQ":
        return DataElement(tag, vr, [])
    return DataElement(tag, vr, value)
