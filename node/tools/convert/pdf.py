"""PDF to Encapsulated PDF Storage and back (gdcmpdf / DCMTK pdf2dcm, dcm2pdf parity).

The PDF travels byte for byte: Encapsulated Document (0042,0011) holds it padded to
even length, and Encapsulated Document Length (0042,0015) says how long it really
is, so :func:`dataset_to_pdf` gives back the identical file.

The document information dictionary is mapped as gdcmpdf maps it: Title ->
Document Title, Author -> Patient's Name, Creator -> Manufacturer, Producer ->
Software Versions, CreationDate -> Content Date/Time, and the file's modification
time -> Acquisition DateTime. gdcmpdf asks poppler; we read the dictionary
ourselves (plain objects, and object streams compressed with FlateDecode). Like
gdcmpdf, a PDF whose information cannot be read (encrypted, unusual) still
converts, with empty values.
"""

from __future__ import annotations

import datetime as _dt
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from node.tools.convert.attributes import (
    apply_keys,
    check_type1,
    check_type2,
    copy_levels,
    read_reference,
)
from node.tools.convert.dataset_ops import build_file_meta, new_uid
from node.tools.convert.errors import PdfError

__all__ = [
    "ENCAPSULATED_PDF",
    "PdfInfo",
    "PdfOptions",
    "dataset_to_pdf",
    "pdf_info",
    "pdf_to_dataset",
]

ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")
_MAX_LENGTH = 0xFFFFFFFE  # OB value length must be even and below the undefined length

_INFO_REF = re.compile(rb"/Info\s+(\d+)\s+(\d+)\s+R")
_DATE = re.compile(r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")
_KEYS = ("Title", "Author", "Subject", "Keywords", "Creator", "Producer", "CreationDate", "ModDate")


@dataclass(frozen=True)
class PdfInfo:
    """The PDF document information dictionary, decoded to text."""

    values: dict[str, str] = field(default_factory=dict)
    unicode: bool = False  # some value was a Unicode string: gdcmpdf then writes ISO_IR 192

    def get(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass(frozen=True)
class PdfOptions:
    """pdf2dcm options: explicit values win over the PDF's own information."""

    title: str | None = None
    patient_name: str | None = None
    patient_id: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    study_from: Path | None = None
    series_from: Path | None = None
    instance_inc: bool = False
    keys: tuple[str, ...] = ()
    root_uid: str | None = None
    modified: _dt.datetime | None = None  # the file's mtime -> Acquisition DateTime


# -- reading the information dictionary ---------------------------------------------


def _literal(data: bytes, start: int) -> tuple[bytes, int]:
    """A PDF literal string starting after '(' at `start`; returns (bytes, end)."""
    out = bytearray()
    depth = 1
    i = start
    escapes = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("f"): 12}
    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash
            i += 1
            if i >= len(data):
                break
            e = data[i]
            if e in escapes:
                out.append(escapes[e])
            elif 0x30 <= e <= 0x37:
                digits = data[i : i + 3]
                n = 0
                while n < len(digits) and 0x30 <= digits[n] <= 0x37:
                    n += 1
                out.append(int(digits[:n], 8) & 0xFF)
                i += n - 1
            elif e in (10, 13):  # line continuation
                if e == 13 and data[i + 1 : i + 2] == b"\n":
                    i += 1
            else:
                out.append(e)
        elif c == 0x28:
            depth += 1
            out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
            out.append(c)
        else:
            out.append(c)
        i += 1
    raise ValueError("unterminated string")


def _text(raw: bytes) -> tuple[str, bool]:
    """PDF text string -> (text, was Unicode): UTF-16BE or UTF-8 with a BOM, else
    PDFDocEncoding (which matches Latin-1 where it matters)."""
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", errors="replace"), True
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace"), True
    return raw.decode("latin-1"), False


def _value_at(data: bytes, i: int, resolve: dict[int, bytes] | None) -> tuple[str, bool] | None:
    while i < len(data) and data[i : i + 1].isspace():
        i += 1
    if data[i : i + 1] == b"(":
        raw, _ = _literal(data, i + 1)
        return _text(raw)
    if data[i : i + 1] == b"<" and data[i : i + 2] != b"<<":
        end = data.index(b">", i)
        hexdigits = re.sub(rb"\s", b"", data[i + 1 : end])
        if len(hexdigits) % 2:
            hexdigits += b"0"
        return _text(bytes.fromhex(hexdigits.decode()))
    ref = re.match(rb"(\d+)\s+(\d+)\s+R", data[i : i + 32])
    if ref and resolve is not None:
        body = resolve.get(int(ref.group(1)))
        if body is not None:
            return _value_at(body, 0, None)
    return None


def _parse_dict(body: bytes, resolve: dict[int, bytes]) -> tuple[dict[str, str], bool]:
    values: dict[str, str] = {}
    unicode = False
    for key in _KEYS:
        match = re.search(rb"/" + key.encode() + rb"(?![A-Za-z])", body)
        if match is None:
            continue
        try:
            value = _value_at(body, match.end(), resolve)
        except (ValueError, IndexError):
            value = None
        if value is not None:
            values[key] = value[0].strip("\x00").strip()
            unicode = unicode or value[1]
    return values, unicode


def _objects(data: bytes) -> dict[int, bytes]:
    """Object number -> body, from plain objects and Flate-compressed object streams."""
    found: dict[int, bytes] = {}
    for match in re.finditer(rb"(?<![0-9])(\d+)\s+(\d+)\s+obj\b", data):
        end = data.find(b"endobj", match.end())
        found[int(match.group(1))] = data[match.end() : end if end > 0 else None]
    for number, body in list(found.items()):
        if b"/ObjStm" not in body[:512] or b"stream" not in body:
            continue
        try:
            found.update(_object_stream(body))
        except (ValueError, zlib.error):
            continue
        del number
    return found


def _object_stream(body: bytes) -> dict[int, bytes]:
    head_end = body.index(b"stream")
    head = body[:head_end]
    if b"/FlateDecode" not in head or b"/DecodeParms" in head:
        return {}
    start = head_end + len(b"stream")
    if body[start : start + 2] == b"\r\n":
        start += 2
    elif body[start : start + 1] in (b"\n", b"\r"):
        start += 1
    end = body.rfind(b"endstream")
    raw = zlib.decompressobj().decompress(body[start:end])
    count = int(re.search(rb"/N\s+(\d+)", head).group(1))  # type: ignore[union-attr]
    first = int(re.search(rb"/First\s+(\d+)", head).group(1))  # type: ignore[union-attr]
    numbers = [int(x) for x in raw[:first].split()[: 2 * count]]
    pairs = list(zip(numbers[0::2], numbers[1::2], strict=False))
    out: dict[int, bytes] = {}
    for index, (number, offset) in enumerate(pairs):
        stop = pairs[index + 1][1] if index + 1 < len(pairs) else len(raw) - first
        out[number] = raw[first + offset : first + stop]
    return out


def pdf_info(data: bytes) -> PdfInfo:
    """Read the document information dictionary; empty when it cannot be read."""
    if not data.startswith(b"%PDF-"):
        raise PdfError("not a PDF file (no %PDF- header)")
    refs = _INFO_REF.findall(data)
    if not refs or re.search(rb"/Encrypt\s+\d+\s+\d+\s+R", data):
        return PdfInfo()  # no dictionary, or its strings are encrypted: empty values
    number = int(refs[-1][0])
    try:
        objects = _objects(data)
        body = objects.get(number)
        values, unicode = _parse_dict(body, objects) if body is not None else ({}, False)
    except (ValueError, IndexError, AttributeError):
        values, unicode = {}, False
    return PdfInfo(values=values, unicode=unicode)


def _pdf_date(value: str) -> tuple[str, str]:
    """PDF date 'D:YYYYMMDDHHmmSS...' -> (DA, TM); empty strings when unreadable."""
    match = _DATE.match(value.strip())
    if not match:
        return "", ""
    year, month, day, hour, minute, second = (g or "" for g in match.groups())
    date = year + (month or "01") + (day or "01")
    time = (hour or "00") + (minute or "00") + (second or "00")
    return date, time


# -- PDF <-> DICOM --------------------------------------------------------------------


def pdf_to_dataset(pdf: bytes, options: PdfOptions | None = None) -> Dataset:
    """An Encapsulated PDF Storage dataset holding `pdf` unchanged."""
    opts = options or PdfOptions()
    if not pdf.startswith(b"%PDF-"):
        raise PdfError("not a PDF file (no %PDF- header)")
    if len(pdf) > _MAX_LENGTH:
        raise PdfError("PDF larger than a DICOM value can hold (4 GiB)")
    info = pdf_info(pdf)
    now = _dt.datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192" if info.unicode else "ISO_IR 100"
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = new_uid(opts.root_uid)
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    content_date, content_time = _pdf_date(info.get("CreationDate"))
    ds.ContentDate = content_date
    ds.ContentTime = content_time
    if opts.modified is not None:
        ds.AcquisitionDateTime = opts.modified.strftime("%Y%m%d%H%M%S")
    else:
        ds.AcquisitionDateTime = ""
    ds.AccessionNumber = ""
    ds.Modality = "DOC"
    ds.ConversionType = "WSD"
    ds.Manufacturer = info.get("Creator")[:64]
    ds.ReferringPhysicianName = ""
    ds.PatientName = info.get("Author")[:64]
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.SoftwareVersions = info.get("Producer")[:64]
    ds.StudyInstanceUID = new_uid(opts.root_uid)
    ds.SeriesInstanceUID = new_uid(opts.root_uid)
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "YES"
    ds.ConceptNameCodeSequence = Sequence()
    ds.DocumentTitle = info.get("Title")[:1024]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"

    level_file = opts.series_from or opts.study_from
    reference = read_reference(level_file) if level_file else None
    if reference is not None:
        copy_levels(ds, reference, series=opts.series_from is not None)
        if opts.instance_inc:
            ds.InstanceNumber = int(reference.get("InstanceNumber") or 0) + 1
    for keyword, value in (
        ("DocumentTitle", opts.title),
        ("PatientName", opts.patient_name),
        ("PatientID", opts.patient_id),
        ("PatientBirthDate", opts.patient_birth_date),
        ("PatientSex", opts.patient_sex),
    ):
        if value is not None:
            setattr(ds, keyword, value)

    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds["EncapsulatedDocument"].VR = "OB"
    ds.EncapsulatedDocumentLength = len(pdf)
    apply_keys(ds, opts.keys)
    errors = check_type2(ds, ("PatientName", "PatientID", "StudyID"), insert=True)
    errors += check_type1(
        ds,
        {
            "StudyInstanceUID": None,
            "SeriesInstanceUID": None,
            "SOPInstanceUID": None,
            "Modality": "DOC",
            "ConversionType": "WSD",
            "BurnedInAnnotation": "YES",
            "MIMETypeOfEncapsulatedDocument": "application/pdf",
        },
        invent=True,
        root_uid=opts.root_uid,
    )
    if errors:
        raise PdfError("; ".join(errors))
    ds.file_meta = build_file_meta(ds, ExplicitVRLittleEndian, rebuild=True)
    return ds


def dataset_to_pdf(ds: Dataset) -> bytes:
    """The PDF inside an Encapsulated PDF dataset, exactly as it went in."""
    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "").strip()
    if "EncapsulatedDocument" not in ds:
        raise PdfError("no Encapsulated Document (0042,0011) in this dataset")
    if mime and mime.lower() != "application/pdf":
        raise PdfError(f"the encapsulated document is {mime}, not a PDF")
    data = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if length not in (None, ""):
        if not 0 <= int(length) <= len(data):
            raise PdfError(f"Encapsulated Document Length {length} exceeds the value length")
        return data[: int(length)]
    # Without the length: drop the single pad byte after the last %%EOF marker.
    eof = data.rfind(b"%%EOF")
    if eof >= 0 and data.endswith(b"\x00") and len(data) % 2 == 0:
        tail = data[eof + 5 :]
        if tail.strip(b"\r\n") == b"\x00":
            return data[:-1]
    return data
