"""Synthetic DICOM files for the workloads, written by pydicom into a temporary folder.

Why synthetic: the ingest figures must not depend on what happens to be in a corpus, and the
query figures need a known number of matches for each key.  Every file is a plausible
instance (CT Image Storage, Explicit VR Little Endian, a header of the usual size), so the
receivers do the work they do for a modality's images.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
)

#: Our UID root for benchmark data (under the project's implementation root).
UID_ROOT = "1.2.826.0.1.3680043.10.1471.9."

SURNAMES = (
    "SMITH",
    "JONES",
    "MULLER",
    "GARCIA",
    "ROSSI",
    "DUBOIS",
    "NOVAK",
    "KOWALSKI",
    "JANSEN",
    "SILVA",
)


def uid() -> str:
    """A unique UID short enough to take a ``.1`` suffix (at most 56 characters)."""
    return UID_ROOT + str(secrets.randbits(80))


@dataclass
class StudyInfo:
    """What a generated study holds, so that queries can be built against it."""

    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    modality: str
    series_uids: list[str] = field(default_factory=list)
    series_descriptions: list[str] = field(default_factory=list)
    series_dates: list[str] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


def _pixels(rows: int, columns: int, seed: int) -> bytes:
    """A deterministic 16-bit image that does not compress to nothing."""
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(rows), np.arange(columns)).astype(np.uint16) * 3
    noise = rng.integers(0, 64, size=(rows, columns), dtype=np.uint16)
    return (base + noise).astype("<u2").tobytes()


def ct_dataset(
    info: StudyInfo,
    series_index: int,
    instance_number: int,
    sop_uid: str,
    rows: int,
    columns: int,
    pixel_data: bytes | None,
) -> Dataset:
    """A CT Image Storage instance with the header a scanner writes (without private tags)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_ROOT + "0"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = info.study_date
    ds.SeriesDate = info.series_dates[series_index]
    ds.AcquisitionDate = info.study_date
    ds.ContentDate = info.study_date
    ds.StudyTime = "101500"
    ds.SeriesTime = "101600"
    ds.AcquisitionTime = "101610"
    ds.ContentTime = "101610"
    ds.AccessionNumber = "ACC" + info.patient_id[-6:]
    ds.Modality = info.modality
    ds.Manufacturer = "BENCH"
    ds.InstitutionName = "Benchmark Hospital"
    ds.ReferringPhysicianName = "REFERRER^ANNA"
    ds.StationName = "BENCHCT01"
    ds.StudyDescription = "CHEST ABDOMEN PELVIS"
    ds.SeriesDescription = info.series_descriptions[series_index]
    ds.ManufacturerModelName = "Synthetic 64"
    ds.PatientName = info.patient_name
    ds.PatientID = info.patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.PatientAge = "060Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DeviceSerialNumber = "0001"
    ds.SoftwareVersions = "1.0"
    ds.ProtocolName = "CAP"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = info.study_uid
    ds.SeriesInstanceUID = info.series_uids[series_index]
    ds.StudyID = "1"
    ds.SeriesNumber = str(series_index + 1)
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = str(instance_number)
    ds.ImagePositionPatient = ["-250.0", "-250.0", f"{-instance_number:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = info.study_uid + ".1"
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{-instance_number:.1f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    if pixel_data is not None:
        ds.PixelData = pixel_data
        ds["PixelData"].VR = "OW"
    return ds


def new_study(
    index: int,
    *,
    series: int = 1,
    modality: str = "CT",
    study_date: str = "20200615",
    name: str | None = None,
) -> StudyInfo:
    patient_id = f"BENCH{index:06d}"
    info = StudyInfo(
        patient_id=patient_id,
        patient_name=name or f"{SURNAMES[index % len(SURNAMES)]}^PAT{index:06d}",
        study_uid=uid(),
        study_date=study_date,
        modality=modality,
    )
    for s in range(series):
        info.series_uids.append(uid())
        info.series_descriptions.append(("AX ", "COR ")[(index + s) % 2] + "1.0 MM")
        info.series_dates.append(study_date)
    return info


def write_ct_series(
    folder: Path,
    count: int,
    *,
    info: StudyInfo | None = None,
    rows: int = 512,
    columns: int = 512,
    subfolders: int = 1,
) -> StudyInfo:
    """``count`` CT instances of one series (512x512 16-bit: 0.5 MB each by default).

    With ``subfolders`` > 1 the files are dealt round-robin into ``folder/0``, ``folder/1``...
    so that several ``storescu`` processes can send disjoint shares.
    """
    info = info or new_study(0)
    pixels = _pixels(rows, columns, seed=count)
    targets = [folder / str(i) for i in range(subfolders)] if subfolders > 1 else [folder]
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        sop_uid = uid()
        ds = ct_dataset(info, 0, n + 1, sop_uid, rows, columns, pixels)
        path = targets[n % len(targets)] / f"CT{n:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        info.sop_uids.append(sop_uid)
        info.paths.append(path)
    return info


def write_query_set(folder: Path, studies: int, instances_per_series: int = 1) -> list[StudyInfo]:
    """Small studies spread over 2020 for the C-FIND workload.

    Study ``i``: surname ``SURNAMES[i % 10]`` (so ``SMITH*`` matches a tenth), study date
    spread evenly over the year, modality CT or MR alternately, two series described ``AX``
    and ``COR``, tiny 64x64 images (the query figures must not measure file transfer).
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    pixels = _pixels(64, 64, seed=7)
    first = date(2020, 1, 1)
    for i in range(studies):
        day = first + timedelta(days=(i * 366) // max(studies, 1))
        info = new_study(
            i + 1, series=2, modality=("CT", "MR")[i % 2], study_date=day.strftime("%Y%m%d")
        )
        for s in range(2):
            for n in range(instances_per_series):
                sop_uid = uid()
                ds = ct_dataset(info, s, n + 1, sop_uid, 64, 64, pixels)
                ds.Modality = info.modality
                path = folder / f"Q{i:05d}_{s}_{n:03d}.dcm"
                ds.save_as(path, enforce_file_format=True)
                info.sop_uids.append(sop_uid)
                info.paths.append(path)
        out.append(info)
    return out


def write_large_instance(path: Path, size_bytes: int) -> int:
    """One multi-frame 16-bit instance of about ``size_bytes``, written in streaming fashion.

    The header goes through pydicom; the Pixel Data element is appended by hand in chunks
    (it is the last element), so the benchmark process never holds the whole instance.
    Returns the file size.
    """
    rows = columns = 512
    frame = rows * columns * 2
    frames = max(1, size_bytes // frame)
    info = new_study(999_999)
    ds = ct_dataset(info, 0, 1, uid(), rows, columns, None)
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = "33.3"
    for keyword in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
        del ds[keyword]
    ds.save_as(path, enforce_file_format=True)
    chunk = _pixels(rows, columns, seed=frames)
    length = frames * frame
    with path.open("ab") as fh:
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for _ in range(frames):
            fh.write(chunk)
    return path.stat().st_size
