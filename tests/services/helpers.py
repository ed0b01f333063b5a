"""Small builders for service tests: synthetic instances and a pynetdicom SCU."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)


def make_ct(
    patient_id: str = "PID1",
    patient_name: str = "DOE^JOHN",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    study_date: str = "20240102",
    study_time: str = "101500",
    modality: str = "CT",
    charset: str | None = None,
    rows: int = 4,
) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "S1"
    ds.StudyDescription = "CHEST"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (rows * rows * 2 // 256) or b"\0" * (rows * rows * 2)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def scu(*, storage: bool = False, qr: bool = False, get_roles: bool = False) -> AE:
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    if storage:
        for cx in StoragePresentationContexts[:100]:
            ae.add_requested_context(cx.abstract_syntax)
    if qr:
        for sop_class in (
            PatientRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelFind,
            PatientRootQueryRetrieveInformationModelMove,
            StudyRootQueryRetrieveInformationModelMove,
            PatientRootQueryRetrieveInformationModelGet,
            StudyRootQueryRetrieveInformationModelGet,
        ):
            ae.add_requested_context(sop_class)
    return ae


def associate(ae: AE, port: int, called: str = "NODE", **kwargs: object) -> Association:
    assoc = ae.associate("127.0.0.1", port, ae_title=called, **kwargs)
    assert assoc.is_established, "association was not established"
    return assoc
