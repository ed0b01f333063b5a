"""Small DICOM helpers and tags shared by the anonymizer modules."""

from __future__ import annotations

from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
BURNED_IN_ANNOTATION = 0x00280301
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
LONGITUDINAL_MODIFIED = 0x00280303
ENCRYPTED_ATTRIBUTES = 0x04000500
MODIFIED_ATTRIBUTES = 0x04000550
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003

#: Attributes the de-identifier adds: re-identification removes them unless the original
#: had them (then their original is in the Modified Attributes item).
ADDED_TAGS = (
    PATIENT_IDENTITY_REMOVED,
    DEIDENTIFICATION_METHOD,
    DEIDENTIFICATION_METHOD_CODES,
    LONGITUDINAL_MODIFIED,
)


def vr_of(ds: Dataset, tag: int) -> str:
    """The VR of ``tag`` in ``ds`` without decoding its value."""
    vr = ds.get_item(tag).VR
    if vr and vr != "UN":
        return str(vr)
    # Implicit VR, or a public attribute written as UN (pydicom decodes it with its real
    # VR, a sequence included): the dictionary knows better.
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return str(vr or "UN")


def charset_of(ds: Dataset) -> str | list[str]:
    """The Python encodings of ``ds``'s Specific Character Set (default repertoire if none)."""
    elem = ds.get(SPECIFIC_CHARACTER_SET)
    if elem is None or not elem.value:
        return "iso8859"
    return convert_encodings(elem.value)
