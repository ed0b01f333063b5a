"""``anonymize.files``: the fast writer against ``save_as``, raw copies and the pixel data."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from node.tools.anonymize import Deidentifier, process_file, read_dicom
from node.tools.anonymize.files import _can_write_fast, _encoding, _meta_for, _write_fast

PIXELS = bytes(range(256)) * 32  # 8 KiB, every byte value


def _source(path: Path, syntax: UID) -> Path:
    """A CT with text, numbers, a nested sequence, a private block and pixel data."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Müller^Hans"
    ds.PatientID = "P1"
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20200102"
    ds.AccessionNumber = "A1"
    ds.InstitutionName = "Hospital"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = 64, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter = "40"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "secret")
    if syntax == JPEGBaseline8Bit:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = encapsulate([PIXELS[:1000], PIXELS[1000:2001]])
    else:
        ds.PixelData = PIXELS
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, implicit_vr=syntax == ImplicitVRLittleEndian,
               little_endian=syntax != ExplicitVRBigEndian, enforce_file_format=True)  # fmt: skip
    return path


SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit]


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_fast_writer_is_save_as_byte_for_byte(tmp_path: Path, syntax: UID) -> None:
    src = _source(tmp_path / "src.dcm", syntax)
    ds = read_dicom(src)
    Deidentifier(secret=b"k" * 32).deidentify(ds, in_place=True)
    ds.file_meta = _meta_for(ds)
    implicit, little = _encoding(syntax, ds)
    assert _can_write_fast(ds, syntax, implicit, little)
    # untouched top-level elements are still raw: the fast writer copies their bytes
    assert any(isinstance(ds.get_item(t), RawDataElement) for t in ds.keys())
    expected = copy.deepcopy(ds)
    expected.save_as(tmp_path / "slow.dcm", enforce_file_format=True)
    _write_fast(ds, str(tmp_path / "fast.dcm"), syntax, implicit, little)
    assert (tmp_path / "fast.dcm").read_bytes() == (tmp_path / "slow.dcm").read_bytes()


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_pixel_data_and_kept_elements_unchanged(tmp_path: Path, syntax: UID) -> None:
    src = _source(tmp_path / "src.dcm", syntax)
    engine = Deidentifier(secret=b"k" * 32)
    outcome = process_file(src, tmp_path / "out.dcm", lambda ds: engine.deidentify(
        ds, in_place=True).notes)  # fmt: skip
    assert outcome.status == "done", outcome.message
    before, after = dcmread(src), dcmread(tmp_path / "out.dcm")
    assert after.PixelData == before.PixelData  # the same bytes, never decoded
    assert after.file_meta.TransferSyntaxUID == syntax
    for keyword in ("Modality", "ImageType", "Rows", "WindowCenter", "PhotometricInterpretation"):
        assert after[keyword].value == before[keyword].value
    assert after.PatientName != before.PatientName
    assert after.SOPInstanceUID != before.SOPInstanceUID
    assert 0x00091001 not in after  # private attributes removed


def test_changed_character_set_goes_through_pydicom(tmp_path: Path) -> None:
    src = _source(tmp_path / "src.dcm", ExplicitVRLittleEndian)
    ds = read_dicom(src)
    ds.SpecificCharacterSet = "ISO_IR 192"  # every text element must be re-encoded
    ds.file_meta = _meta_for(ds)
    assert not _can_write_fast(ds, ExplicitVRLittleEndian, False, True)
