"""Media application profiles (PS3.11) and writing a file in a syntax the profile allows.

A profile fixes the transfer syntaxes files on the medium may use.  STD-GEN-CD allows only
Explicit VR Little Endian; the DVD, BD and USB profiles also allow their JPEG or JPEG 2000
syntaxes, so compressed files that already use one are copied byte for byte and everything
else is decompressed to Explicit VR Little Endian.  The SOP Instance UID is kept: the pixel
values do not change, so the instance stays the same one (PS3.5 A.4 / PS3.4 on lossless
conversion).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
)

from config.identity import IMPLEMENTATION_CLASS_UID as _IMPLEMENTATION_CLASS_UID
from node import IMPLEMENTATION_VERSION_NAME
from node.tools.dicomdir._errors import OutputError, UnknownProfile
from node.tools.dicomdir._tree import SourceInstance

_JPEG = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1})
_J2K = frozenset({JPEG2000Lossless, JPEG2000})

#: Transfer syntaxes each profile allows on the medium (besides Explicit VR Little Endian).
PROFILES: dict[str, frozenset[str]] = {
    "STD-GEN-CD": frozenset(),
    "STD-GEN-DVD-RAM": frozenset(),
    "STD-GEN-DVD-JPEG": _JPEG,
    "STD-GEN-DVD-J2K": _J2K,
    "STD-GEN-BD-JPEG": _JPEG,
    "STD-GEN-BD-J2K": _J2K,
    "STD-GEN-USB-JPEG": _JPEG,
    "STD-GEN-USB-J2K": _J2K,
}


_SWAP_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class ConversionError(Exception):
    """A file cannot be brought into a syntax the profile allows (it is skipped)."""


def allowed_syntaxes(profile: str) -> frozenset[str]:
    """Transfer syntaxes ``profile`` allows, Explicit VR Little Endian included."""
    try:
        return PROFILES[profile.upper()] | {ExplicitVRLittleEndian}
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfile(f"unknown media profile {profile!r} (known: {known})") from None


def _decompress_from_array(ds: Dataset) -> None:
    """Replace encapsulated Pixel Data by the decoded array, native and interleaved."""
    arr = ds.pixel_array
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    dtype = f"<{'i' if ds.get('PixelRepresentation', 0) else 'u'}{max(bits // 8, 1)}"
    ds.PixelData = np.ascontiguousarray(arr).astype(dtype).tobytes()
    ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    if samples > 1:
        ds.PlanarConfiguration = 0
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"


def write_media_file(instance: SourceInstance, dest: Path, allowed: frozenset[str]) -> str:
    """Write ``instance`` to ``dest`` in an allowed syntax; returns the syntax written.

    Raises
    ------
    ConversionError
        The pixel data cannot be decoded or the file cannot be re-encoded.
    OutputError
        ``dest`` cannot be written.
    """
    source = instance.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if instance.part10 and instance.transfer_syntax_uid in allowed:
        try:
            shutil.copyfile(source, dest)
        except OSError as exc:
            raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        return instance.transfer_syntax_uid
    try:
        ds = dcmread(source, force=not instance.part10)
        # A file without Part 10 meta may carry its UIDs only there: the header has them.
        if "SOPClassUID" not in ds:
            ds.SOPClassUID = instance.sop_class_uid
        if "SOPInstanceUID" not in ds:
            ds.SOPInstanceUID = instance.sop_instance_uid
        _to_explicit_little(ds)
    except Exception as exc:  # any read or decode failure: the file cannot go on the medium
        raise ConversionError(f"cannot convert to Explicit VR Little Endian: {exc}") from exc
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        dcmwrite(tmp, ds, enforce_file_format=True)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"cannot encode as Explicit VR Little Endian: {exc}") from exc
    return str(ExplicitVRLittleEndian)


def _to_explicit_little(ds: Dataset) -> None:
    """Re-encode ``ds`` in place as Explicit VR Little Endian (decompressing if needed)."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    syntax = UID(str(meta.get("TransferSyntaxUID", "") or ""))
    if syntax and syntax.is_compressed and "PixelData" in ds:
        try:
            ds.decompress(generate_instance_uid=False)
        except ValueError:
            # pydicom 3.0's decompress() fails on some signed JPEG-LS / J2K data that
            # pixel_array decodes fine ("output array is read-only").
            _decompress_from_array(ds)
        meta = ds.file_meta
    elif not _read_little_endian(ds, syntax):
        _swap_binary_values(ds, ds.get("BitsAllocated"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = _IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    # A force-read file may carry stray meta elements inside the dataset.
    for elem in list(ds):
        if elem.tag.group == 0x0002:
            del ds[elem.tag]


def _read_little_endian(ds: Dataset, syntax: UID) -> bool:
    """How the dataset was encoded: its transfer syntax, else what pydicom found reading it."""
    if syntax and syntax.is_transfer_syntax:
        return bool(syntax.is_little_endian)
    encoding = getattr(ds, "original_encoding", None)
    return bool(encoding[1]) if encoding and encoding[1] is not None else True


def _swap_binary_values(ds: Dataset, bits_allocated: int | None) -> None:
    """Big to little endian for the values pydicom leaves as raw bytes (OW, OF, OL, OD, OV)."""
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_binary_values(item, bits_allocated)
            continue
        size = _SWAP_SIZE.get(elem.VR)
        if size is None or not isinstance(elem.value, bytes | bytearray):
            continue
        if elem.tag == 0x7FE00010 and bits_allocated in (32, 64):
            size = bits_allocated // 8
        data = bytes(elem.value)
        usable = len(data) - len(data) % size
        swapped = np.frombuffer(data[:usable], dtype=f">u{size}").astype(f"<u{size}").tobytes()
        ds[elem.tag] = DataElement(elem.tag, elem.VR, swapped + data[usable:])
