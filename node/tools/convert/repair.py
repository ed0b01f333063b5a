"""Read a DICOM file the way gdcmconv does, and say what had to be repaired.

gdcmconv's simple form rewrites files that are readable but not conformant. We do
the same where pydicom can read the input, and we *say* what was wrong, because a
silent repair hides a sender's bug:

- no 128-byte preamble / "DICM" prefix, or no File Meta Information at all;
- File Meta Information encoded in implicit VR (it must be explicit VR little endian);
- a data set whose encoding differs from its Transfer Syntax UID;
- values of odd length (PS3.5 7.1.1 requires even lengths; they are padded on write);
- File Meta SOP Class / Instance UIDs that disagree with the data set.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from node.tools.convert.errors import InputError

__all__ = ["read_with_repairs"]

_UNDEFINED = 0xFFFFFFFF


def _odd_lengths(ds: Dataset) -> int:
    """Elements whose value length is odd, at the top level and in parsed sequences.

    Sequences still in raw form are not parsed just for this: on a big enhanced
    multi-frame that costs more than the conversion (the padding is done on write
    anyway; only the report would be more complete).
    """
    count = 0
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement):
            if raw.length != _UNDEFINED and raw.length % 2:
                count += 1
        elif raw is not None and raw.VR == "SQ":
            for item in raw.value:
                count += _odd_lengths(item)
    return count


def _plausible_start(head: bytes) -> bool:
    """A bare data set starts with a low group: (0002|0008|0010,xxxx), either endianness."""
    if len(head) < 8:
        return False
    little = int.from_bytes(head[:2], "little")
    big = int.from_bytes(head[:2], "big")
    return little in (0x0002, 0x0004, 0x0008, 0x0010) or big in (0x0002, 0x0008, 0x0010)


def _syntax_from_encoding(ds: Dataset) -> UID:
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def read_with_repairs(path: Path) -> tuple[Dataset, list[str]]:
    """Read `path`; return the dataset and a sentence for each repair it needs.

    Raises :class:`InputError` when pydicom cannot read it even forcefully.
    """
    repairs: list[str] = []
    try:
        with path.open("rb") as fh:
            head = fh.read(140)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    has_prefix = len(head) >= 132 and head[128:132] == b"DICM"
    if not has_prefix and not _plausible_start(head):
        raise InputError(f"{path}: not a DICOM file (no DICM prefix, no data set start)")
    if has_prefix and len(head) >= 138 and not head[136:138].isalpha():
        repairs.append("File Meta Information was implicit VR: rewritten as explicit VR")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = dcmread(path, force=True)
        except (InvalidDicomError, EOFError, ValueError, OSError, KeyError) as exc:
            raise InputError(f"{path}: not readable as DICOM: {exc}") from None
    if not has_prefix:
        repairs.append("no preamble/DICM prefix: written as a DICOM file with one")
    if len(ds) == 0 and not getattr(ds, "file_meta", None):
        raise InputError(f"{path}: no DICOM data set found")

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    found = _syntax_from_encoding(ds)
    declared = meta.get("TransferSyntaxUID")
    if not declared:
        meta.TransferSyntaxUID = found
        repairs.append(f"no Transfer Syntax UID: {found.name} deduced from the data set")
    elif not declared.is_transfer_syntax:
        # e.g. GE's private implicit big endian: pydicom cannot read those reliably
        kind = "private" if declared.is_private else "unknown"
        raise InputError(f"{path}: {kind} transfer syntax {declared} is not supported")
    elif (declared.is_implicit_VR, declared.is_little_endian) != ds.original_encoding and (
        not declared.is_compressed and not declared.is_deflated
    ):
        repairs.append(
            f"data set is encoded {found.name} although the file meta says {declared.name}"
        )
        meta.TransferSyntaxUID = found
    mismatch = any("Expected explicit VR, but found implicit VR" in str(w.message) for w in caught)
    if mismatch and not any("File Meta" in r or "data set is encoded" in r for r in repairs):
        repairs.append("implicit VR elements found where explicit VR was declared")

    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        value, meta_value = ds.get(keyword), meta.get(meta_keyword)
        if value and meta_value and value != meta_value:
            repairs.append(f"{meta_keyword} differed from the data set's {keyword}")

    try:
        odd = _odd_lengths(ds)
    except Exception:  # a damaged nested item: report what reading will report
        odd = 0
    if odd:
        repairs.append(f"{odd} element(s) of odd length padded to even length")
    return ds, repairs
