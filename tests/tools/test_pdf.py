"""pdf2dcm / dcm2pdf: byte-identical round trip, gdcmpdf's metadata mapping, validity."""

from __future__ import annotations

import datetime as dt
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from node.tools.convert import PdfError
from node.tools.convert.pdf import PdfOptions, dataset_to_pdf, pdf_info, pdf_to_dataset
from node.tools.convert.transcode import write_dataset

INFO = (
    b"<< /Title (Report \\(draft\\) \\351t\\351) /Author <FEFF004A006F007300E9> "
    b"/Creator (Writer 2) /Producer (HandMade 1.0) /Subject (not mapped) "
    b"/CreationDate (D:20240131123456+01'00') >>"
)


def minimal_pdf(
    info: bytes | None = INFO, *, object_stream: bool = False, pad: bool = False
) -> bytes:
    """A valid one-page PDF written by hand, with its info dictionary as object 5."""
    content = b"0 0 m 100 100 l S"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    if info is not None and object_stream:
        header = b"5 0 "
        packed = zlib.compress(header + info)
        offsets.append(len(out))
        out += (
            b"6 0 obj\n<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\n"
            b"stream\n" % (len(header), len(packed)) + packed + b"\nendstream\nendobj\n"
        )
    elif info is not None:
        offsets.append(len(out))
        out += b"5 0 obj\n" + info + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = b"/Size %d /Root 1 0 R" % (len(offsets) + 1)
    if info is not None:
        trailer += b" /Info 5 0 R"
    out += b"trailer\n<< " + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    if pad and len(out) % 2 == 0:
        out += b"\n"
    return bytes(out)


def test_round_trip_is_byte_identical(tmp_path: Path) -> None:
    for pad in (False, True):
        pdf = minimal_pdf(pad=pad)
        path = tmp_path / f"doc{pad}.dcm"
        write_dataset(pdf_to_dataset(pdf), path)
        ds = pydicom.dcmread(path)
        assert ds.EncapsulatedDocumentLength == len(pdf)
        assert len(ds.EncapsulatedDocument) % 2 == 0
        assert dataset_to_pdf(ds) == pdf
        del ds.EncapsulatedDocumentLength  # older objects: the pad byte is dropped
        assert dataset_to_pdf(ds) == pdf


def test_metadata_is_mapped_like_gdcmpdf() -> None:
    pdf = minimal_pdf()
    modified = dt.datetime(2023, 5, 6, 7, 8, 9)
    ds = pdf_to_dataset(pdf, PdfOptions(modified=modified))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.DocumentTitle == "Report (draft) été"
    assert ds.PatientName == "José"
    assert ds.Manufacturer == "Writer 2"
    assert ds.SoftwareVersions == "HandMade 1.0"
    assert (ds.ContentDate, ds.ContentTime) == ("20240131", "123456")
    assert ds.AcquisitionDateTime == "20230506070809"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert (ds.Modality, ds.ConversionType, ds.BurnedInAnnotation) == ("DOC", "WSD", "YES")
    assert ds.SpecificCharacterSet == "ISO_IR 192"  # gdcmpdf: a Unicode string was read
    plain = pdf_to_dataset(minimal_pdf(b"<< /Title (Plain \\351) >>"))
    assert (plain.DocumentTitle, plain.SpecificCharacterSet) == ("Plain é", "ISO_IR 100")


def test_info_in_an_object_stream_and_unicode() -> None:
    info = b"<< /Title <FEFF0041004200430020263A> /Author (Ann) >>"
    parsed = pdf_info(minimal_pdf(info, object_stream=True))
    assert parsed.get("Title") == "ABC \u263a" and parsed.get("Author") == "Ann"
    assert parsed.unicode
    assert pdf_to_dataset(minimal_pdf(info, object_stream=True)).SpecificCharacterSet == (
        "ISO_IR 192"
    )


def test_without_or_with_unreadable_info_values_are_empty() -> None:
    assert pdf_info(minimal_pdf(None)).values == {}
    ds = pdf_to_dataset(minimal_pdf(None))
    assert ds.DocumentTitle == "" and ds.PatientName == ""
    encrypted = minimal_pdf().replace(b"/Root 1 0 R", b"/Root 1 0 R /Encrypt 9 0 R")
    assert pdf_info(encrypted).values == {}


def test_options_study_from_and_keys(tmp_path: Path) -> None:
    ref = pydicom.Dataset()
    ref.PatientName = "Doe^Jane"
    ref.PatientID = "P1"
    ref.StudyInstanceUID = pydicom.uid.generate_uid()
    ref.SeriesInstanceUID = pydicom.uid.generate_uid()
    ref.InstanceNumber = 3
    ref_path = tmp_path / "ref.dcm"
    ref.file_meta = pydicom.dataset.FileMetaDataset()
    ref.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    pydicom.dcmwrite(ref_path, ref)
    options = PdfOptions(
        title="Discharge letter",
        patient_sex="F",
        series_from=ref_path,
        instance_inc=True,
        keys=("InstitutionName=Hospital",),
    )
    ds = pdf_to_dataset(minimal_pdf(), options)
    assert ds.DocumentTitle == "Discharge letter"
    assert (ds.PatientName, ds.PatientID, ds.PatientSex) == ("Doe^Jane", "P1", "F")
    assert ds.SeriesInstanceUID == ref.SeriesInstanceUID and ds.InstanceNumber == 4
    assert ds.InstitutionName == "Hospital"


def test_refuses_what_is_not_a_pdf() -> None:
    with pytest.raises(PdfError, match="not a PDF"):
        pdf_to_dataset(b"GIF89a...")
    ds = pdf_to_dataset(minimal_pdf())
    ds.MIMETypeOfEncapsulatedDocument = "text/xml"
    with pytest.raises(PdfError, match="text/xml"):
        dataset_to_pdf(ds)
    with pytest.raises(PdfError, match="no Encapsulated Document"):
        dataset_to_pdf(pydicom.Dataset())


@pytest.mark.interop
def test_valid_and_same_as_gdcmpdf(tmp_path: Path, require_binary: Callable[[str], str]) -> None:
    pdf_path = tmp_path / "doc.pdf"
    pdf_path.write_bytes(minimal_pdf(pad=True))
    ours = tmp_path / "ours.dcm"
    theirs = tmp_path / "gdcm.dcm"
    modified = dt.datetime.fromtimestamp(pdf_path.stat().st_mtime)
    write_dataset(pdf_to_dataset(pdf_path.read_bytes(), PdfOptions(modified=modified)), ours)
    subprocess.run(
        [require_binary("gdcmpdf"), str(pdf_path), str(theirs)], check=True, capture_output=True
    )
    check = subprocess.run(
        [require_binary("dciodvfy"), str(ours)],
        capture_output=True,
        encoding="latin-1",
        check=False,
    )
    assert [
        line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")
    ] == []
    a, b = pydicom.dcmread(ours), pydicom.dcmread(theirs)
    for keyword in (
        "DocumentTitle",
        "PatientName",
        "Manufacturer",
        "SoftwareVersions",
        "ContentDate",
        "SpecificCharacterSet",
        "Modality",
        "ConversionType",
        "MIMETypeOfEncapsulatedDocument",
        "EncapsulatedDocumentLength",
        "BurnedInAnnotation",
    ):
        assert a[keyword].value == b[keyword].value, keyword
    assert str(a.ContentTime)[:6] == str(b.ContentTime)[:6]
    assert str(a.AcquisitionDateTime)[:14] == str(b.AcquisitionDateTime)[:14]
    assert bytes(a.EncapsulatedDocument) == bytes(b.EncapsulatedDocument)
    extracted = tmp_path / "gdcmraw.pdf"
    subprocess.run(
        [require_binary("gdcmraw"), "-i", str(ours), "-t", "42,11", "-o", str(extracted)],
        check=True,
        capture_output=True,
    )
    assert extracted.read_bytes()[: len(pdf_path.read_bytes())] == pdf_path.read_bytes()
