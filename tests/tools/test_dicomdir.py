"""DICOMDIR: file IDs, record types, dcmmkdir's invented keys, in-place and media export.

Every DICOMDIR written here is read back with pydicom's ``FileSet`` and checked with DCMTK
``dcmdump``, dicom3tools ``dciodvfy`` and GDCM ``gdcmdump`` (see ``validate``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from node.tools.dicomdir import (
    FileIdAllocator,
    InvalidFileID,
    InvalidValue,
    NothingToWrite,
    OutputError,
    SourceInstance,
    UnknownProfile,
    export_files,
    export_media,
    file_id_for,
    is_conformant,
    make_dicomdir,
    record_type_for,
)
from node.tools.dicomdir._fileid import Resolver
from node.tools.dicomdir._invent import Inventor
from node.tools.dicomdir._tree import TreeBuilder
from node.tools.dicomdir._writer import write_dicomdir

# -- helpers --------------------------------------------------------------------------------


def make_instance(path: Path, **attrs: object) -> Path:
    """A small CT image (4x4, 12 bits) with ``attrs`` set; ``None`` removes an attribute."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "DIR^Test"
    ds.PatientID = "PID1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1471.99.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.1471.99.1.1"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101112"
    ds.StudyID = "S1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    for keyword, value in attrs.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def validate(
    dicomdir: Path, require_binary: Callable[[str], str], *, expect_instances: int
) -> FileSet:
    """Read back with pydicom and check with dcmdump, dciodvfy and gdcmdump (no errors)."""
    fs = FileSet(dicomdir)
    assert len(fs) == expect_instances
    for instance in fs:
        assert Path(instance.path).is_file()
    dump = subprocess.run(
        [require_binary("dcmdump"), "-q", str(dicomdir)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    assert dump.returncode == 0 and "E:" not in dump.stderr, dump.stderr
    verify = subprocess.run(
        [require_binary("dciodvfy"), str(dicomdir)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    report = verify.stdout + verify.stderr
    assert "BasicDirectory" in report
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert errors == [], errors[:10]
    gdcm = subprocess.run(
        [require_binary("gdcmdump"), str(dicomdir)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    assert gdcm.returncode == 0
    assert "DirectoryRecordSequence" in gdcm.stdout or "(0004,1220)" in gdcm.stdout
    return fs


def records(dicomdir: Path) -> list[Dataset]:
    return list(pydicom.dcmread(dicomdir).DirectoryRecordSequence)


# -- file IDs -------------------------------------------------------------------------------


def test_file_id_rules(tmp_path: Path) -> None:
    assert is_conformant(["DICOM", "PA000001", "IM_0001"])
    assert not is_conformant(["dicom"])
    assert not is_conformant(["TOOLONGNAME"])
    assert not is_conformant(["A"] * 9)
    assert not is_conformant([])
    good = tmp_path / "SUB" / "IM1"
    assert file_id_for(good, tmp_path) == ("SUB", "IM1")
    with pytest.raises(InvalidFileID):
        file_id_for(tmp_path / "sub" / "im1.dcm", tmp_path)
    assert file_id_for(tmp_path / "sub" / "im1.", tmp_path, map_filenames=True) == ("SUB", "IM1")
    with pytest.raises(InvalidFileID, match="outside"):
        file_id_for(tmp_path.parent / "X", tmp_path)


def test_allocator_numbers_per_folder() -> None:
    allocator = FileIdAllocator()
    patient = allocator.child((), "PATIENT")
    assert patient == ("DICOM", "PA000001")
    study = allocator.child(patient, "STUDY")
    series = allocator.child(study, "SERIES")
    assert allocator.child(series, "IMAGE") == (*series, "IM000001")
    assert allocator.child(series, "SR DOCUMENT") == (*series, "SR000002")
    other = allocator.child(allocator.child(patient, "STUDY"), "SERIES")
    assert other[-1] == "SE000001"  # numbering restarts in each folder
    assert all(is_conformant(allocator.child(other, "RT DOSE")) for _ in range(3))


# -- record types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sop_class", "record_type"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "IMAGE"),
        ("1.2.840.10008.5.1.4.1.1.88.33", "SR DOCUMENT"),
        ("1.2.840.10008.5.1.4.1.1.88.77", "SR DOCUMENT"),  # Waveform Annotation SR
        ("1.2.840.10008.5.1.4.1.1.78.6", "SR DOCUMENT"),  # Spectacle Prescription Report
        ("1.2.840.10008.5.1.4.1.1.88.59", "KEY OBJECT DOC"),
        ("1.2.840.10008.5.1.4.1.1.11.1", "PRESENTATION"),
        ("1.2.840.10008.5.1.4.1.1.11.8", "PRESENTATION"),
        ("1.2.840.10008.5.1.4.1.1.481.2", "RT DOSE"),
        ("1.2.840.10008.5.1.4.1.1.481.3", "RT STRUCTURE SET"),
        ("1.2.840.10008.5.1.4.1.1.481.5", "RT PLAN"),
        ("1.2.840.10008.5.1.4.1.1.481.8", "RT PLAN"),
        ("1.2.840.10008.5.1.4.1.1.481.4", "RT TREAT RECORD"),
        ("1.2.840.10008.5.1.4.1.1.481.12", "RADIOTHERAPY"),
        ("1.2.840.10008.5.1.4.1.1.104.1", "ENCAP DOC"),
        ("1.2.840.10008.5.1.4.1.1.104.3", "ENCAP DOC"),
        ("1.2.840.10008.5.1.4.1.1.9.1.1", "WAVEFORM"),
        ("1.2.840.10008.5.1.4.1.1.9.4.1", "WAVEFORM"),
        ("1.2.840.10008.5.1.4.1.1.4.2", "SPECTROSCOPY"),
        ("1.2.840.10008.5.1.4.1.1.66", "RAW DATA"),
        ("1.2.840.10008.5.1.4.1.1.66.1", "REGISTRATION"),
        ("1.2.840.10008.5.1.4.1.1.66.3", "REGISTRATION"),
        ("1.2.840.10008.5.1.4.1.1.66.2", "FIDUCIAL"),
        ("1.2.840.10008.5.1.4.1.1.67", "VALUE MAP"),
        ("1.2.840.10008.5.1.4.1.1.78.1", "MEASUREMENT"),
        ("1.2.840.10008.5.1.4.39.1", "PALETTE"),
        ("1.2.840.10008.5.1.4.38.1", "HANGING PROTOCOL"),
        ("1.2.840.10008.5.1.4.1.1.66.4", "IMAGE"),  # Segmentation
        ("1.2.3.4.5.6.7", "IMAGE"),  # private
    ],
)
def test_record_types(sop_class: str, record_type: str) -> None:
    assert record_type_for(sop_class) == record_type


# -- dcmmkdir parity for invented keys --------------------------------------------------------


def test_invents_type1_keys_as_dcmmkdir(
    tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    """Same files, same invented values as ``dcmmkdir +I`` (counters, prefixes, date sources)."""
    root = tmp_path / "set"
    bare = {"PatientID": None, "StudyID": None, "SeriesNumber": None, "InstanceNumber": None}
    make_instance(root / "A" / "F1", StudyDate=None, StudyTime=None, SeriesDate="20230304",
                  SeriesTime="050607", **bare)  # fmt: skip
    make_instance(root / "A" / "F2", StudyDate=None, StudyTime=None, SeriesDate="20230304",
                  SeriesTime="050607", **bare)  # fmt: skip
    make_instance(
        root / "B" / "F3",
        PatientName="OTHER^P",
        StudyInstanceUID="1.2.826.0.1.3680043.10.1471.99.2",
        SeriesInstanceUID="1.2.826.0.1.3680043.10.1471.99.2.1",
        **bare,
    )
    ours = make_dicomdir([root])
    assert ours.referenced == 3
    reference = tmp_path / "REF"
    subprocess.run(  # the files in our (sorted) order: the counters follow the order
        [require_binary("dcmmkdir"), "-q", "+I", "+D", str(reference), "A/F1", "A/F2", "B/F3"],
        check=True,
        cwd=root,
    )

    def keyed(path: Path) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        context: dict[str, str] = {}
        for record in records(path):
            kind = record.DirectoryRecordType
            for keyword in ("PatientID", "StudyID", "StudyDate", "StudyTime", "SeriesNumber"):
                if keyword in record:
                    context[keyword] = str(record[keyword].value)
            if kind == "IMAGE":
                file_id = "/".join(record.ReferencedFileID)
                out[file_id] = {**context, "InstanceNumber": str(record.InstanceNumber)}
        return out

    ours_keys = keyed(root / "DICOMDIR")
    theirs = keyed(reference)
    assert set(ours_keys) == {"A/F1", "A/F2", "B/F3"}
    for file_id, values in theirs.items():
        mine = ours_keys[file_id]
        for keyword in ("PatientID", "StudyID", "SeriesNumber", "InstanceNumber"):
            assert mine[keyword] == values[keyword], (file_id, keyword)
        if file_id.startswith("A/"):  # dates taken from the series, as dcmmkdir does
            assert mine["StudyDate"] == values["StudyDate"] == "20230304"
            assert mine["StudyTime"] == values["StudyTime"] == "050607"
    assert {(i.record_type, i.keyword, i.value) for i in ours.inventions} >= {
        ("PATIENT", "PatientID", "DCMTKPAT000000"),
        ("STUDY", "StudyID", "DCMTKSTUDY000000"),
        ("SERIES", "SeriesNumber", "0"),
        ("IMAGE", "InstanceNumber", "1"),
    }


def test_missing_uids_and_modality_are_invented_and_reported(tmp_path: Path) -> None:
    root = tmp_path / "set"
    make_instance(root / "F1", StudyInstanceUID=None, SeriesInstanceUID=None, Modality=None)
    make_instance(root / "F2", StudyInstanceUID=None, SeriesInstanceUID=None, Modality=None)
    report = make_dicomdir([root], root_uid="1.2.826.0.1.3680043.10.1471.7")
    invented = {(i.record_type, i.keyword): i.value for i in report.inventions}
    assert invented[("SERIES", "Modality")] == "OT"
    assert invented[("STUDY", "StudyInstanceUID")].startswith("1.2.826.0.1.3680043.10.1471.7.")
    kinds = [r.DirectoryRecordType for r in records(root / "DICOMDIR")]
    assert kinds == ["PATIENT", "STUDY", "SERIES", "IMAGE", "IMAGE"]  # both files, one series


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_acr_nema_values_are_rewritten(tmp_path: Path) -> None:
    root = tmp_path / "set"
    make_instance(root / "F1", StudyDate="1997.04.24", StudyTime="14:04:38", PatientSex="N/A")
    report = make_dicomdir([root])
    study = next(r for r in records(root / "DICOMDIR") if r.DirectoryRecordType == "STUDY")
    assert study.StudyDate == "19970424" and study.StudyTime == "140438"
    patient = next(r for r in records(root / "DICOMDIR") if r.DirectoryRecordType == "PATIENT")
    assert "PatientSex" not in patient  # Type 3 with an invalid value: left out
    assert any("rewritten" in w for w in report.warnings)


# -- in place ---------------------------------------------------------------------------------


def test_in_place_skips_what_cannot_be_referenced(
    tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    root = tmp_path / "set"
    first = make_instance(root / "P1" / "IM1", InstanceNumber=2)
    make_instance(root / "P1" / "IM2", InstanceNumber=1)
    make_instance(root / "P1" / "lower.dcm")
    make_instance(root / "P1" / "im4.", InstanceNumber=4)
    duplicate = root / "P1" / "IM3"
    shutil.copyfile(first, duplicate)
    (root / "README").write_text("not DICOM\n")
    report = make_dicomdir([root], fileset_id="NODE TEST", descriptor=root / "README")
    reasons = {Path(s.source).name: s.reason for s in report.skipped}
    assert "ISO 9660" in reasons["lower.dcm"] and "ISO 9660" in reasons["im4."]
    assert "duplicate SOP Instance UID" in reasons["IM3"]
    assert "README" not in reasons  # the descriptor is not a skipped input
    fs = validate(root / "DICOMDIR", require_binary, expect_instances=2)
    assert fs.ID == "NODE TEST"
    assert fs.descriptor_file_id == "README"
    images = [r for r in records(root / "DICOMDIR") if r.DirectoryRecordType == "IMAGE"]
    assert [str(r.InstanceNumber) for r in images] == ["1", "2"]  # sorted like dcmmkdir

    # dcmmkdir +m: lower case is upper-cased and a trailing period dropped; "." inside stays bad
    mapped = make_dicomdir([root], map_filenames=True)
    assert mapped.referenced == 3
    assert [Path(s.source).name for s in mapped.skipped if "ISO 9660" in s.reason] == ["lower.dcm"]
    ids = [tuple(r.ReferencedFileID) for r in records(root / "DICOMDIR") if "ReferencedFileID" in r]
    assert ("P1", "IM4") in ids


def test_in_place_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NothingToWrite):
        make_dicomdir([empty])
    make_instance(tmp_path / "ok" / "IM1")
    with pytest.raises(InvalidValue):
        make_dicomdir([tmp_path / "ok"], fileset_id="lower case id")
    with pytest.raises(InvalidValue):
        make_dicomdir([tmp_path / "ok"], root_uid="1.2.abc")


# -- media export -----------------------------------------------------------------------------

_EXPORT_SAMPLE = (
    "pynetdicom-wheel/pynetdicom/tests/dicom_files/MRImageStorage_ExplicitVRBigEndian.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm",
    "cornerstone-wado/testImages/CT1_J2KR",
    "cornerstone-wado/testImages/no-pixel-spacing.dcm",  # RLE, PALETTE COLOR
    "pydicom-wheel/pydicom/data/test_files/image_dfl.dcm",  # deflated
    "pydicom-data/data_store/data/OBXXXX1A_expb.dcm",  # big endian palette
    "pydicom-wheel/pydicom/data/test_files/rtdose.dcm",  # implicit VR
    "pydicom-wheel/pydicom/data/test_files/rtplan.dcm",
    "pydicom-wheel/pydicom/data/test_files/rtstruct.dcm",  # no preamble, no meta
    "pydicom-wheel/pydicom/data/test_files/test-SR.dcm",
    "pydicom-wheel/pydicom/data/test_files/waveform_ecg.dcm",
    "pydicom-wheel/pydicom/data/palettes/hotiron.dcm",  # top-level PALETTE record
    "highdicom/data/test_files/seg_image_ct_binary.dcm",
)


def _sample(corpus_dir: Path) -> list[Path]:
    paths = [corpus_dir / name for name in _EXPORT_SAMPLE]
    missing = [p for p in paths if not p.is_file()]
    assert not missing, missing
    return paths


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the corpus files' old values
def test_export_converts_for_std_gen_cd(
    tmp_path: Path, corpus_dir: Path, require_binary: Callable[[str], str]
) -> None:
    sources = _sample(corpus_dir)
    descriptor = tmp_path / "readme.txt"
    descriptor.write_text("dicom-node media\n")
    out = tmp_path / "media"
    report = export_files(sources, out, fileset_id="NODE", descriptor=descriptor)
    assert report.skipped == []
    assert report.referenced == len(sources)
    fs = validate(out / "DICOMDIR", require_binary, expect_instances=len(sources))
    assert fs.descriptor_file_id == "README"
    kinds = {r.DirectoryRecordType for r in records(out / "DICOMDIR")}
    assert kinds >= {
        "IMAGE",
        "RT DOSE",
        "RT PLAN",
        "RT STRUCTURE SET",
        "SR DOCUMENT",
        "WAVEFORM",
        "PALETTE",
    }
    by_uid = {str(pydicom.dcmread(p, force=True).SOPInstanceUID): p for p in sources}
    for instance in fs:
        assert is_conformant(Path(instance.path).relative_to(out).parts)
        written = pydicom.dcmread(instance.path)
        assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert instance.TransferSyntaxUID == ExplicitVRLittleEndian
        original = pydicom.dcmread(by_uid[instance.SOPInstanceUID], force=True)
        syntax = str(getattr(original.file_meta, "TransferSyntaxUID", ""))
        lossy = syntax in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
        if "PixelData" in original and not lossy and original.get("BitsAllocated", 8) > 1:
            np.testing.assert_array_equal(written.pixel_array, original.pixel_array)
    # the medium is readable by DCMTK as a DICOMDIR of the general purpose profile
    check = subprocess.run(
        [require_binary("dcmmkdir"), "-q", "-W", "-Pgp", "+D", str(tmp_path / "CHECK"),
         "+id", str(out), "+r", "DICOM"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_export_keeps_compressed_syntaxes_of_the_profile(tmp_path: Path, corpus_dir: Path) -> None:
    jpeg, j2k = corpus_dir / _EXPORT_SAMPLE[1], corpus_dir / _EXPORT_SAMPLE[2]
    report = export_files([jpeg, j2k], tmp_path / "dvd", profile="STD-GEN-DVD-JPEG")
    assert report.referenced == 2 and report.converted == 1
    fs = FileSet(tmp_path / "dvd" / "DICOMDIR")
    syntaxes = {instance.TransferSyntaxUID for instance in fs}
    assert syntaxes == {"1.2.840.10008.1.2.4.50", ExplicitVRLittleEndian}
    copied = next(i for i in fs if i.TransferSyntaxUID == "1.2.840.10008.1.2.4.50")
    assert Path(copied.path).read_bytes() == jpeg.read_bytes()  # byte for byte


def test_export_errors(tmp_path: Path) -> None:
    src = make_instance(tmp_path / "in" / "IM1")
    with pytest.raises(UnknownProfile):
        export_files([src], tmp_path / "out", profile="STD-NOPE")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(OutputError, match="not an empty folder"):
        export_files([src], busy)


def test_export_from_index_headers(tmp_path: Path) -> None:
    """What a node will feed: (path, header from its index, syntax); the file is not read first."""
    path = make_instance(tmp_path / "store" / "abc.dcm", TransferSyntaxUID=None)
    header = Dataset()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime",
                    "StudyID", "SeriesInstanceUID", "Modality", "SeriesNumber",
                    "InstanceNumber", "SOPClassUID", "SOPInstanceUID"):  # fmt: skip
        header[keyword] = pydicom.dcmread(path)[keyword]
    instance = SourceInstance(path, header, str(ExplicitVRLittleEndian))
    report = export_media([instance], tmp_path / "media")
    assert report.referenced == 1 and report.converted == 0
    assert len(FileSet(tmp_path / "media" / "DICOMDIR")) == 1


def test_implicit_input_is_converted(tmp_path: Path) -> None:
    src = make_instance(tmp_path / "in" / "IM1")
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(src, enforce_file_format=True)
    report = export_files([src], tmp_path / "out")
    assert report.converted == 1
    written = next(iter(FileSet(tmp_path / "out" / "DICOMDIR")))
    assert pydicom.dcmread(written.path).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


# -- scale ----------------------------------------------------------------------------------


def test_ten_thousand_instances_in_one_linear_pass(
    tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    """10,000 instances (100 series of 100) go through the builder and the writer.

    No wall-clock assertion: the run time is visible in ``pytest --durations``; the docs give
    the measured figures.  What is checked is the structure dcmdump and dciodvfy see.
    """
    instances = []
    for i in range(10_000):
        header = Dataset()
        header.PatientID = f"P{i // 2000}"
        header.PatientName = "SCALE^TEST"
        header.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1471.5.{i // 1000}"
        header.StudyDate, header.StudyTime, header.StudyID = "20240101", "120000", "1"
        header.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1471.5.{i // 1000}.{i // 100}"
        header.Modality, header.SeriesNumber = "CT", i // 100 % 10
        header.SOPClassUID = CTImageStorage
        header.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1471.6.{i}"
        header.InstanceNumber = 100 - i % 100
        instances.append(SourceInstance(tmp_path / str(i), header, str(ExplicitVRLittleEndian)))
    builder = TreeBuilder(Inventor(None), FileIdAllocator())
    builder.add_all(instances)
    out = tmp_path / "DICOMDIR"
    write_dicomdir(builder.roots, out, sop_instance_uid=generate_uid())
    ds = pydicom.dcmread(out)
    kinds = [r.DirectoryRecordType for r in ds.DirectoryRecordSequence]
    assert kinds.count("IMAGE") == 10_000
    assert kinds.count("SERIES") == 100 and kinds.count("STUDY") == 10
    assert kinds.count("PATIENT") == 5
    first_series = kinds.index("SERIES")
    numbers = [int(r.InstanceNumber) for r in ds.DirectoryRecordSequence[first_series + 1 :][:100]]
    assert numbers == sorted(numbers)
    verify = subprocess.run([require_binary("dciodvfy"), str(out)], capture_output=True, text=True)
    assert not [line for line in (verify.stdout + verify.stderr).splitlines() if "Error" in line]


def test_resolver_matches_path_resolve(tmp_path: Path) -> None:
    real = tmp_path / "real"
    make_instance(real / "IM1")
    (tmp_path / "LINKDIR").symlink_to(real, target_is_directory=True)
    (real / "IM2").symlink_to(real / "IM1")
    resolve = Resolver()
    for path in (
        real / "IM1",
        tmp_path / "LINKDIR" / "IM1",
        real / "IM2",
        tmp_path / "LINKDIR" / "IM2",
        real / "sub" / ".." / "IM1",
        Path(os.path.relpath(real / "IM1")),
    ):
        assert resolve(path) == path.resolve(), path
    assert file_id_for(tmp_path / "LINKDIR" / "IM1", real, resolver=resolve) == ("IM1",)


def test_workers_give_the_serial_result(tmp_path: Path) -> None:
    """Headers read by worker processes and consumed as they arrive: same records, same
    order, same report as one process."""
    for n in range(1, 13):
        make_instance(
            tmp_path / "CD" / f"ST{n % 3}" / f"IM{n}",
            InstanceNumber=n,
            StudyInstanceUID=f"1.2.3.{n % 3}",
            SeriesInstanceUID=f"1.2.3.{n % 3}.1",
            PatientID=None if n % 3 == 0 else f"P{n % 3}",
        )
    (tmp_path / "CD" / "ST1" / "NOTDICOM").write_text("x")
    reports, records = [], []
    for jobs in (1, 2):
        report = make_dicomdir(
            [tmp_path / "CD"], jobs=jobs, root_uid="1.2.826.0.1.3680043.10.1471.9"
        )
        reports.append((report.referenced, [s.source for s in report.skipped], report.inventions))
        records.append(
            [
                {k: str(v.value) for k, v in r.items() if k.group != 0x0004 or k >= 0x00041430}
                for r in pydicom.dcmread(tmp_path / "CD" / "DICOMDIR").DirectoryRecordSequence
            ]
        )
    assert reports[0] == reports[1]
    assert records[0] == records[1]
    assert reports[0][0] == 12 and len(reports[0][1]) == 1
