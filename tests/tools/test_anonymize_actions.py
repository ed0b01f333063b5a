"""The de-identifier on hand-made instances: every kind of action, the options, consistency."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from node.tools.anonymize import (
    BurnedInAnnotationError,
    Deidentifier,
    MemoryUidStore,
    Options,
    PrivateTag,
    SecretUidMap,
    StoredUidMap,
    deidentify,
)
from node.tools.anonymize.dates import patient_key, shift_da, shift_days

CT = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SECRET = b"test secret"
STUDY = "1.2.826.0.1.3680043.10.543.1"
UTC_SYNC = "1.2.840.10008.15.1.1"


def make_ct(
    number: int = 1,
    patient_id: str = "PID-12345",
    name: str = "Doe^John",
    study: str = STUDY,
    referenced: str | None = None,
) -> Dataset:
    """A CT instance carrying identifying values of every kind the profile handles."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = f"{study}.2.{number}"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = f"{study}.2"
    ds.FrameOfReferenceUID = f"{study}.3"
    ds.SynchronizationFrameOfReferenceUID = UTC_SYNC
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = "MERCY"
    ds.PatientBirthDate = "19700412"
    ds.PatientSex = "M"
    ds.PatientAge = "054Y"
    ds.StudyDate = "20240105"
    ds.StudyTime = "101500"
    ds.AcquisitionDate = "20240105"
    ds.AcquisitionDateTime = "20240105101733.250000"
    ds.ContentDate = "20240105"
    ds.ContentTime = "101800"
    ds.AccessionNumber = "ACC98765"
    ds.StudyID = "S778"
    ds.InstitutionName = "Mercy General Hospital"
    ds.StationName = "MERCYCT01"
    ds.DeviceSerialNumber = "SN-554433"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.StudyDescription = "CT HEAD for John Doe"
    ds.SeriesDescription = "AXIAL 5mm"
    ds.ImageComments = "Doe anxious, born 19700412"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.InstanceNumber = number
    other = Dataset()
    other.PatientID = "OLD-777"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    if referenced:
        ref = Dataset()
        ref.ReferencedSOPClassUID = CT
        ref.ReferencedSOPInstanceUID = referenced
        ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.add_new(0x00091001, "LO", "John Doe private")
    ds.add_new(0x00091002, "DS", "1.5")
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60003000, "OW", b"\xff\xff")
    ds.add_new(0x60004000, "LT", "overlay by Dr House")
    ds.add_new(0x50000005, "US", 1)
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "MERCY_CT"
    return ds


def make_sr() -> Dataset:
    """A Comprehensive SR with text, a person name, a date and a UID reference."""
    ds = Dataset()
    ds.SOPClassUID = COMPREHENSIVE_SR
    ds.SOPInstanceUID = f"{STUDY}.9.1"
    ds.StudyInstanceUID = STUDY
    ds.PatientName = "Doe^John"
    ds.PatientID = "PID-12345"
    ds.ContentDate = "20240106"
    ds.ContentTime = "090000"
    ds.ValueType = "CONTAINER"

    def code(value: str, meaning: str) -> Sequence:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        return Sequence([item])

    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = code("121071", "Finding")
    text.TextValue = "John Doe has a small nodule"
    person = Dataset()
    person.RelationshipType = "HAS OBS CONTEXT"
    person.ValueType = "PNAME"
    person.ConceptNameCodeSequence = code("121008", "Person Observer Name")
    person.PersonName = "House^Gregory"
    date = Dataset()
    date.RelationshipType = "HAS OBS CONTEXT"
    date.ValueType = "DATE"
    date.ConceptNameCodeSequence = code("111060", "Study Date")
    date.Date = "20240105"
    uid = Dataset()
    uid.RelationshipType = "HAS OBS CONTEXT"
    uid.ValueType = "UIDREF"
    uid.ConceptNameCodeSequence = code("110180", "Study Instance UID")
    uid.UID = STUDY
    ds.ContentSequence = Sequence([text, person, date, uid])
    return ds


def engine(**options: object) -> Deidentifier:
    return Deidentifier(Options(**options), secret=SECRET)  # type: ignore[arg-type]


def test_basic_profile_actions() -> None:
    original = make_ct()
    out = engine().deidentify(original).dataset
    # X: removed
    for keyword in (
        "StudyDescription",
        "SeriesDescription",
        "ImageComments",
        "PatientAge",
        "AcquisitionDate",
        "AcquisitionDateTime",
        "IssuerOfPatientID",
        "InstitutionName",
        "StationName",
        "DeviceSerialNumber",
    ):
        assert keyword not in out, keyword
    # Z: zero length (Patient's Name and ID get pseudonyms, allowed by Z)
    for keyword in (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "PatientBirthDate",
        "PatientSex",
        "ReferringPhysicianName",
        "ContentDate",
        "ContentTime",
    ):
        assert keyword in out and not out[keyword].value, keyword
    assert str(out.PatientName).startswith("ANON^") and out.PatientID.startswith("ANON")
    # U: replaced, consistently with the secret
    uids = SecretUidMap(SECRET)
    for keyword in (
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
    ):
        assert out[keyword].value == uids.replace(original[keyword].value), keyword
    assert out.SynchronizationFrameOfReferenceUID == UTC_SYNC  # well-known: kept
    assert "OtherPatientIDsSequence" not in out  # X, with the IDs inside
    # kept: not in the table
    assert (out.Modality, out.Manufacturer, out.Rows) == ("CT", "ACME", 4)
    assert out.PixelData == original.PixelData
    # the input is untouched unless in_place
    assert original.PatientName == "Doe^John"


def test_privates_curves_overlays_removed() -> None:
    out = engine().deidentify(make_ct()).dataset
    assert not [t for t in out.keys() if t.group % 2]
    assert not [t for t in out.keys() if t.group in (0x5000, 0x6000)]  # whole groups


def test_retain_safe_private() -> None:
    safe = frozenset({PrivateTag.parse("0009,xx02,ACME PRIVATE")})
    out = engine(retain_safe_private=True, safe_private=safe).deidentify(make_ct()).dataset
    assert out[0x00090010].value == "ACME PRIVATE"
    assert out[0x00091002].value == "1.5"
    assert 0x00091001 not in out


def test_profile_attributes_added() -> None:
    out = engine(retain_modified_dates=True, clean_descriptors=True).deidentify(make_ct()).dataset
    assert out.PatientIdentityRemoved == "YES"
    codes = [
        (i.CodeValue, i.CodingSchemeDesignator) for i in out.DeidentificationMethodCodeSequence
    ]
    assert codes == [("113100", "DCM"), ("113105", "DCM"), ("113107", "DCM")]
    assert "Basic Application Confidentiality Profile" in out.DeidentificationMethod
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert engine().deidentify(make_ct()).dataset.LongitudinalTemporalInformationModified == (
        "REMOVED"
    )


def test_uids_consistent_across_instances_and_references() -> None:
    first = make_ct(1)
    second = make_ct(2, referenced=first.SOPInstanceUID)
    eng = engine()
    a = eng.deidentify(first).dataset
    b = Deidentifier(Options(), secret=SECRET).deidentify(second).dataset  # another engine
    assert a.StudyInstanceUID == b.StudyInstanceUID != STUDY
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    # X/Z/U*: the reference stays, pointing at the new UID of the first instance
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPClassUID == CT


def test_pluggable_uid_map_and_root() -> None:
    store = MemoryUidStore()
    out = (
        Deidentifier(Options(), secret=SECRET, uid_map=StoredUidMap(store))
        .deidentify(make_ct())
        .dataset
    )
    assert store.get(STUDY) == out.StudyInstanceUID
    rooted = Deidentifier(Options(), secret=SECRET, root_uid="1.2.826.0.1.3680043.10.999")
    assert rooted.deidentify(make_ct()).dataset.StudyInstanceUID.startswith(
        "1.2.826.0.1.3680043.10.999."
    )


def test_compound_actions_follow_the_iod() -> None:
    sr = engine().deidentify(make_sr()).dataset
    assert sr.ContentDate == "19000101"  # Z/D, Type 1 in SR Document General: dummy
    ct = engine().deidentify(make_ct()).dataset
    assert ct.ContentDate == ""  # Z/D, Type 2C in General Image: empty
    assert "AcquisitionDate" not in ct  # X/Z, Type 3: removed


def test_pseudonyms() -> None:
    eng = engine()
    a = eng.deidentify(make_ct(1)).dataset
    b = eng.deidentify(make_ct(2)).dataset
    c = eng.deidentify(make_ct(3, patient_id="PID-999", name="Roe^Jane")).dataset
    assert (a.PatientID, a.PatientName) == (b.PatientID, b.PatientName)
    assert a.PatientID != c.PatientID and a.PatientName != c.PatientName
    plain = engine(pseudonymize_patient=False).deidentify(make_ct()).dataset
    assert plain.PatientID == "" and plain.PatientName == ""


def test_retain_options() -> None:
    out = (
        engine(
            retain_uids=True,
            retain_full_dates=True,
            retain_institution_identity=True,
            retain_device_identity=True,
            retain_patient_characteristics=True,
        )
        .deidentify(make_ct())
        .dataset
    )
    assert out.StudyInstanceUID == STUDY
    assert (out.StudyDate, out.StudyTime, out.AcquisitionDate) == ("20240105", "101500", "20240105")
    assert out.InstitutionName == "Mercy General Hospital"
    assert (out.StationName, out.DeviceSerialNumber) == ("MERCYCT01", "SN-554433")
    assert (out.PatientSex, out.PatientAge) == ("M", "054Y")
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert str(out.PatientName).startswith("ANON^")  # never retained


def test_modified_dates_shift_per_patient() -> None:
    eng = engine(retain_modified_dates=True)
    a = eng.deidentify(make_ct(1)).dataset
    b = eng.deidentify(make_ct(2)).dataset
    other = eng.deidentify(make_ct(3, patient_id="PID-999")).dataset
    days = shift_days(SECRET, patient_key("PID-12345", "MERCY"))
    assert a.StudyDate == b.StudyDate == shift_da("20240105", days)
    assert a.PatientBirthDate == ""  # Z in every option column: not even shifted
    assert a.AcquisitionDateTime == shift_da("20240105", days) + "101733.250000"
    assert a.StudyTime == "101500"  # whole days: times unchanged
    assert other.StudyDate != a.StudyDate


def test_clean_descriptors() -> None:
    out = engine(clean_descriptors=True).deidentify(make_ct()).dataset
    assert out.StudyDescription == "CT HEAD for"
    assert out.SeriesDescription == "AXIAL 5mm"
    assert out.ImageComments == "anxious, born"


def test_sr_content_dummy_and_clean() -> None:
    basic = engine().deidentify(make_sr()).dataset.ContentSequence
    assert basic[0].TextValue == "ANONYMIZED"  # D on Content Sequence: text replaced
    assert basic[0].ConceptNameCodeSequence[0].CodeMeaning == "Finding"  # codes kept
    assert basic[1].PersonName == "ANONYMIZED"
    assert basic[2].Date == "19000101"
    assert basic[3].UID == SecretUidMap(SECRET).replace(STUDY)
    cleaned = engine(clean_structured_content=True).deidentify(make_sr()).dataset.ContentSequence
    assert cleaned[0].TextValue == "has a small nodule"


def test_burned_in_annotation() -> None:
    ds = make_ct()
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotationError):
        engine().deidentify(ds)
    assert engine(allow_burned_in=True).deidentify(ds).dataset.BurnedInAnnotation == "YES"


def test_file_meta_follows() -> None:
    out = engine().deidentify(make_ct()).dataset
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_modified_attributes_item() -> None:
    original = make_ct()
    eng = Deidentifier(Options(), secret=SECRET)
    result = eng.deidentify(original)
    assert result.modified.SOPInstanceUID == original.SOPInstanceUID
    # without recipients nothing is recorded but SOP Instance UID
    assert "PatientName" not in result.modified


def test_deterministic_bytes() -> None:
    def encode(ds: Dataset) -> bytes:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    first = encode(deidentify(make_ct(), Options(), secret=SECRET))
    second = encode(deidentify(make_ct(), Options(), secret=SECRET))
    assert first == second
    assert encode(deidentify(make_ct(), Options(), secret=b"other")) != first
    back = dcmread(io.BytesIO(first))
    assert back.PatientIdentityRemoved == "YES"
