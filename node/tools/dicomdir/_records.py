"""Directory record types and their keys (PS3.3 Annex F.4 and F.5).

Why a table and a few name rules: the standard keeps adding storage SOP classes, and most of
them fall into families whose record type is clear from the SOP class name (every "... SR
Storage" is an SR DOCUMENT, every "... Waveform Storage" a WAVEFORM).  The explicit table holds
the rest; anything unknown, private classes included, gets an IMAGE record as dcmmkdir and
gdcmgendir do.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID

#: Record types that sit directly under the root (no patient above them).
TOP_LEVEL_TYPES = frozenset(
    {"HANGING PROTOCOL", "PALETTE", "IMPLANT", "IMPLANT ASSY", "IMPLANT GROUP"}
)

_BY_UID: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.481.2": "RT DOSE",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT STRUCTURE SET",
    "1.2.840.10008.5.1.4.1.1.481.4": "RT TREAT RECORD",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT PLAN",
    "1.2.840.10008.5.1.4.1.1.481.6": "RT TREAT RECORD",
    "1.2.840.10008.5.1.4.1.1.481.7": "RT TREAT RECORD",
    "1.2.840.10008.5.1.4.1.1.481.8": "RT PLAN",
    "1.2.840.10008.5.1.4.1.1.481.9": "RT TREAT RECORD",
    "1.2.840.10008.5.1.4.1.1.4.2": "SPECTROSCOPY",
    "1.2.840.10008.5.1.4.1.1.66": "RAW DATA",
    "1.2.840.10008.5.1.4.1.1.66.1": "REGISTRATION",
    "1.2.840.10008.5.1.4.1.1.66.2": "FIDUCIAL",
    "1.2.840.10008.5.1.4.1.1.66.3": "REGISTRATION",
    "1.2.840.10008.5.1.4.1.1.66.5": "SURFACE",
    "1.2.840.10008.5.1.4.1.1.66.6": "TRACT",
    "1.2.840.10008.5.1.4.1.1.67": "VALUE MAP",
    "1.2.840.10008.5.1.4.1.1.68.1": "SURFACE SCAN",
    "1.2.840.10008.5.1.4.1.1.68.2": "SURFACE SCAN",
    "1.2.840.10008.5.1.4.1.1.77.1.5.3": "STEREOMETRIC",
    "1.2.840.10008.5.1.4.1.1.78.8": "MEASUREMENT",
    "1.2.840.10008.5.1.4.1.1.88.59": "KEY OBJECT DOC",
    "1.2.840.10008.5.1.4.1.1.90.1": "ASSESSMENT",
    "1.2.840.10008.5.1.4.1.1.131": "PRESENTATION",
    "1.2.840.10008.5.1.4.1.1.200.1": "PLAN",
    "1.2.840.10008.5.1.4.1.1.200.2": "PLAN",
    "1.2.840.10008.5.1.4.1.1.200.7": "PLAN",
    "1.2.840.10008.5.1.4.1.1.200.8": "PLAN",
    "1.2.840.10008.5.1.4.38.1": "HANGING PROTOCOL",
    "1.2.840.10008.5.1.4.39.1": "PALETTE",
    "1.2.840.10008.5.1.4.43.1": "IMPLANT",
    "1.2.840.10008.5.1.4.44.1": "IMPLANT ASSY",
    "1.2.840.10008.5.1.4.45.1": "IMPLANT GROUP",
}

#: Second-generation RT objects (PS3.3 F.4: RADIOTHERAPY record) are 481.10 and above.
_RT_SECOND_GENERATION = "1.2.840.10008.5.1.4.1.1.481."

#: SOP classes that are not instances to reference (a DICOMDIR inside the input folder).
NOT_REFERENCED = frozenset({"1.2.840.10008.1.3.10"})


def record_type_for(sop_class_uid: str) -> str:
    """The directory record type for an instance of ``sop_class_uid``."""
    known = _BY_UID.get(sop_class_uid)
    if known is not None:
        return known
    if sop_class_uid.startswith(_RT_SECOND_GENERATION):
        suffix = sop_class_uid[len(_RT_SECOND_GENERATION) :]
        if suffix.isdigit() and int(suffix) >= 10:
            return "RADIOTHERAPY"
    name = UID(sop_class_uid).name if sop_class_uid else ""
    if name == sop_class_uid:  # unknown to pydicom: private or newer than its dictionary
        return "IMAGE"
    if "Presentation State Storage" in name:
        return "PRESENTATION"
    if (
        name.endswith("SR Storage")
        or name.endswith("Report Storage")
        or name.startswith("Procedure Log")
    ):
        return "SR DOCUMENT"
    if "Waveform Storage" in name:
        return "WAVEFORM"
    if name.startswith("Encapsulated "):
        return "ENCAP DOC"
    if name.endswith("Measurements Storage"):
        return "MEASUREMENT"
    return "IMAGE"


@dataclass(frozen=True)
class Key:
    """One record key: its keyword and its type (``"1"``, ``"1C"``, ``"2"`` or ``"3"``)."""

    keyword: str
    type: str


def _keys(spec: str) -> tuple[Key, ...]:
    out = []
    for item in spec.split():
        keyword, _, kind = item.partition(":")
        out.append(Key(keyword, kind))
    return tuple(out)


_CONTENT_ID = _keys(
    "ContentDate:1 ContentTime:1 InstanceNumber:1 ContentLabel:1 ContentDescription:2 "
    "ContentCreatorName:2"
)

#: Keys of each record type, after the referencing keys (PS3.3 F.5, 2024 edition).  Type 3
#: keys are the ones viewers show in their study browser.
RECORD_KEYS: dict[str, tuple[Key, ...]] = {
    "PATIENT": _keys("PatientName:2 PatientID:1 PatientBirthDate:3 PatientSex:3"),
    "STUDY": _keys(
        "StudyDate:1 StudyTime:1 StudyDescription:2 StudyInstanceUID:1 StudyID:1 AccessionNumber:2"
    ),
    "SERIES": _keys("Modality:1 SeriesInstanceUID:1 SeriesNumber:1"),
    "IMAGE": _keys("InstanceNumber:1"),
    "RT DOSE": _keys("InstanceNumber:1 DoseSummationType:1 DoseComment:3"),
    "RT STRUCTURE SET": _keys(
        "InstanceNumber:1 StructureSetLabel:1 StructureSetDate:2 StructureSetTime:2"
    ),
    "RT PLAN": _keys("InstanceNumber:1 RTPlanLabel:1 RTPlanDate:2 RTPlanTime:2"),
    "RT TREAT RECORD": _keys("InstanceNumber:1 TreatmentDate:2 TreatmentTime:2"),
    "PRESENTATION": _keys(
        "PresentationCreationDate:1 PresentationCreationTime:1 InstanceNumber:1 ContentLabel:1 "
        "ContentDescription:2 ContentCreatorName:2 ReferencedSeriesSequence:1C "
        "BlendingSequence:1C"
    ),
    "WAVEFORM": _keys("ContentDate:1 ContentTime:1 InstanceNumber:1"),
    "SR DOCUMENT": _keys(
        "InstanceNumber:1 CompletionFlag:1 VerificationFlag:1 ContentDate:1 ContentTime:1 "
        "VerificationDateTime:1C ConceptNameCodeSequence:1"
    ),
    "KEY OBJECT DOC": _keys(
        "InstanceNumber:1 ContentDate:1 ContentTime:1 ConceptNameCodeSequence:1"
    ),
    "SPECTROSCOPY": _keys(
        "ImageType:1 ContentDate:1 ContentTime:1 InstanceNumber:1 "
        "ReferencedImageEvidenceSequence:1C NumberOfFrames:1 Rows:1 Columns:1 "
        "DataPointRows:1 DataPointColumns:1"
    ),
    "RAW DATA": _keys("ContentDate:1 ContentTime:1 InstanceNumber:1"),
    "REGISTRATION": _CONTENT_ID,
    "FIDUCIAL": _CONTENT_ID,
    "VALUE MAP": _CONTENT_ID,
    "MEASUREMENT": _CONTENT_ID,
    "SURFACE": _CONTENT_ID,
    "TRACT": _CONTENT_ID,
    "ENCAP DOC": _keys(
        "ContentDate:2 ContentTime:2 InstanceNumber:1 DocumentTitle:2 HL7InstanceIdentifier:1C "
        "ConceptNameCodeSequence:2 MIMETypeOfEncapsulatedDocument:1"
    ),
    "STEREOMETRIC": (),
    "PLAN": (),
    "SURFACE SCAN": _keys("ContentDate:1 ContentTime:1"),
    "ASSESSMENT": _keys("InstanceNumber:1 InstanceCreationDate:1 InstanceCreationTime:2"),
    "RADIOTHERAPY": _keys(
        "InstanceNumber:1 UserContentLabel:1C UserContentLongLabel:1C ContentDescription:2 "
        "ContentCreatorName:2"
    ),
    "HANGING PROTOCOL": _keys(
        "HangingProtocolCreator:1 HangingProtocolCreationDateTime:1 "
        "HangingProtocolDefinitionSequence:1 NumberOfPriorsReferenced:1 "
        "HangingProtocolUserIdentificationCodeSequence:2"
    ),
    "PALETTE": _keys("ContentLabel:1 ContentDescription:2"),
    "IMPLANT": _keys("Manufacturer:1 ImplantName:1 ImplantSize:1C ImplantPartNumber:1"),
    "IMPLANT ASSY": _keys(
        "ImplantAssemblyTemplateName:1 Manufacturer:1 ProcedureTypeCodeSequence:1"
    ),
    "IMPLANT GROUP": _keys("ImplantTemplateGroupName:1 ImplantTemplateGroupIssuer:1"),
}

#: Value representations whose encoding depends on Specific Character Set.
CHARSET_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "SQ"})
