"""Writing the DICOMDIR file in one linear pass.

Every directory record starts with its three offset elements, all UL (fixed 4-byte values), so
a record's encoded length does not depend on the offsets it holds.  Each record is therefore
encoded once with zero offsets, the byte position of every record follows from a running sum,
and the offsets are patched into the encoded bytes: O(n) work and one write, where pydicom's
``FileSet.write`` re-encodes until its offsets converge.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, MediaStorageDirectoryStorage

from config.identity import IMPLEMENTATION_CLASS_UID

#: dicom-node's Implementation Class UID (the one ``storage.ingest`` writes in file meta).
from node import IMPLEMENTATION_VERSION_NAME
from node.tools.dicomdir._errors import OutputError
from node.tools.dicomdir._tree import Record

_ITEM_TAG = b"\xfe\xff\x00\xe0"
# Positions inside an encoded record (Explicit VR Little Endian): each offset element is
# tag(4) VR(2) length(2) value(4); (0004,1410) US sits between them and takes 10 bytes.
_NEXT_AT = 8
_LOWER_AT = 30
#: VRs of text values that are written as they are (short, 2-byte length in Explicit VR).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"})
_NEXT_TAG = b"\x04\x00\x00\x14UL\x04\x00"
_LOWER_TAG = b"\x04\x00\x20\x14UL\x04\x00"


def _ordered(children: list[Record]) -> list[Record]:
    """Series by SeriesNumber, instances by InstanceNumber; others keep their arrival order."""
    if not children:
        return children
    if children[0].record_type == "SERIES":
        keyword = "SeriesNumber"
    elif children[0].record_type in ("PATIENT", "STUDY"):
        return children
    else:
        keyword = "InstanceNumber"
    return sorted(children, key=lambda record: _number(record.value(keyword)))


def _number(value: str) -> tuple[int, float]:
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, 0.0)


def _preorder(roots: Sequence[Record]) -> Iterator[tuple[Record, list[Record]]]:
    """Records in file order (each record, then its children), with the ordered children."""
    stack: list[Record] = list(reversed(_ordered(list(roots))))
    while stack:
        record = stack.pop()
        children = _ordered(record.children)
        yield record, children
        stack.extend(reversed(children))


def _encode(record: Record) -> bytes:
    """The record's item content, Explicit VR Little Endian, offsets still zero."""
    # (tag, VR, value, element or None): elements are made only for the keys, which the
    # tree already holds as DataElement (creating one validates its value: slow).
    elements: list[tuple[int, str, object, DataElement | None]] = [
        (0x00041400, "UL", 0, None),
        (0x00041410, "US", 0xFFFF, None),
        (0x00041420, "UL", 0, None),
        (0x00041430, "CS", record.record_type, None),
    ]
    instance = record.instance
    if instance is not None and record.file_id is not None:
        file_id = list(record.file_id)
        elements += [
            (0x00041500, "CS", file_id if len(file_id) > 1 else file_id[0], None),
            (0x00041510, "UI", instance.sop_class_uid, None),
            (0x00041511, "UI", instance.sop_instance_uid, None),
            (0x00041512, "UI", instance.transfer_syntax_uid, None),
        ]
    elements += [(int(e.tag), str(e.VR), e.value, e) for e in record.keys.values()]
    elements.sort(key=lambda item: item[0])
    charset_elem = record.keys.get("SpecificCharacterSet")
    encodings = convert_encodings(charset_elem.value if charset_elem is not None else None)
    out = bytearray()
    for tag, vr, value, elem in elements:
        _encode_element(out, tag, vr, value, elem, encodings)
    content = bytes(out)
    if content[0:8] != _NEXT_TAG or content[22:30] != _LOWER_TAG:  # pragma: no cover
        raise OutputError("internal error: unexpected directory record layout")
    return content


def _encode_element(
    out: bytearray,
    tag: int,
    vr: str,
    value: object,
    elem: DataElement | None,
    encodings: list[str],
) -> None:
    """Append one element; plain ASCII text and US/UL take a fast path, the rest goes to
    pydicom (as ``elem``, made from the other arguments when not given).

    Why: pydicom's ``write_dataset`` costs about a millisecond per record, most of the time
    of a 10,000-file DICOMDIR; record keys are nearly always short ASCII strings.
    """
    if vr in _TEXT_VRS:
        if value is None:
            text = ""
        elif isinstance(value, str):
            text = value
        elif isinstance(value, MultiValue | list | tuple):
            text = "\\".join("" if v is None else str(v) for v in value)
        else:
            text = str(value)
        if text.isascii():
            data = text.encode("ascii")
            if len(data) % 2:
                data += b"\0" if vr == "UI" else b" "
            if len(data) <= 0xFFFF:
                out += struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(data))
                out += data
                return
    elif vr in ("US", "UL") and isinstance(value, int):
        fmt = "<H" if vr == "US" else "<I"
        out += struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), struct.calcsize(fmt))
        out += struct.pack(fmt, value)
        return
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, elem if elem is not None else DataElement(tag, vr, value), encodings)
    out += fp.getvalue()


def _header(
    meta: FileMetaDataset,
    fileset_id: str,
    descriptor: Sequence[str] | None,
    descriptor_charset: str | None,
    first: int,
    last: int,
    sequence_length: int,
) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    fp.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)
    ds = Dataset()
    ds.FileSetID = fileset_id
    if descriptor:
        ds.FileSetDescriptorFileID = list(descriptor) if len(descriptor) > 1 else descriptor[0]
        if descriptor_charset:
            ds.SpecificCharacterSetOfFileSetDescriptorFile = descriptor_charset
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = first
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = last
    ds.FileSetConsistencyFlag = 0
    write_dataset(fp, ds)
    # (0004,1220) Directory Record Sequence, explicit length.
    fp.write(b"\x04\x00\x20\x12SQ\x00\x00" + struct.pack("<I", sequence_length))
    return fp.getvalue()


def write_dicomdir(
    roots: Sequence[Record],
    path: Path,
    *,
    sop_instance_uid: str,
    fileset_id: str = "",
    descriptor: Sequence[str] | None = None,
    descriptor_charset: str | None = None,
) -> int:
    """Write the DICOMDIR for the record tree ``roots`` to ``path``; returns its size in bytes.

    The file is written next to ``path`` and renamed into place, so a reader never sees half a
    DICOMDIR.
    """
    records: list[Record] = []
    encoded: list[bytes] = []
    child_lists: list[list[Record]] = []
    for record, children in _preorder(roots):
        records.append(record)
        encoded.append(_encode(record))
        child_lists.append(children)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

    sequence_length = sum(8 + len(item) for item in encoded)
    header_length = len(
        _header(meta, fileset_id, descriptor, descriptor_charset, 0, 0, sequence_length)
    )
    position: dict[int, int] = {}
    offset = header_length
    for record, item in zip(records, encoded, strict=True):
        position[id(record)] = offset
        offset += 8 + len(item)

    ordered_roots = _ordered(list(roots))
    first = position[id(ordered_roots[0])] if ordered_roots else 0
    last = position[id(ordered_roots[-1])] if ordered_roots else 0
    header = _header(meta, fileset_id, descriptor, descriptor_charset, first, last, sequence_length)
    if len(header) != header_length:  # pragma: no cover - UL values have a fixed size
        raise OutputError("internal error: DICOMDIR header length changed")

    # Next sibling: the following record in each ordered list of children (roots included).
    next_of: dict[int, int] = {}
    for siblings in [ordered_roots, *child_lists]:
        for current, following in zip(siblings, siblings[1:], strict=False):
            next_of[id(current)] = position[id(following)]

    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(header)
            for record, item, children in zip(records, encoded, child_lists, strict=True):
                buf = bytearray(item)
                struct.pack_into("<I", buf, _NEXT_AT, next_of.get(id(record), 0))
                lower = position[id(children[0])] if children else 0
                struct.pack_into("<I", buf, _LOWER_AT, lower)
                fh.write(_ITEM_TAG + struct.pack("<I", len(buf)))
                fh.write(buf)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return offset
