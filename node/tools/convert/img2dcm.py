"""Image files to a DICOM image object (DCMTK img2dcm / gdcmimg parity).

Several inputs become the frames of one multi-frame object; they must share the
same geometry and pixel format (and, for JPEG, the same process). The SOP class:

- Secondary Capture (default; single frame only, so several inputs switch to the
  multi-frame SC class that fits, and say so);
- ``new-sc``: Multi-frame Single Bit / Grayscale Byte / Grayscale Word / True Color
  Secondary Capture, chosen from Bits Allocated and the photometric interpretation;
- ``vl-photo``: VL Photographic Image (single frame);
- any UID (``sop_class_uid``), with no class-specific attributes.

The order of operations is DCMTK's: template (``dataset_from``), then study/series
from a file, instance number increment, UIDs, pixel data, SOP class attributes,
``-k`` keys last, then the type 1 / type 2 checks.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from node.tools.convert.attributes import (
    apply_keys,
    check_type1,
    check_type2,
    copy_levels,
    read_reference,
)
from node.tools.convert.dataset_ops import build_file_meta, new_uid
from node.tools.convert.errors import InputError
from node.tools.convert.images import JpegOptions, RawSpec, SourceImage, read_image
from node.tools.convert.pixels import encapsulate_frames

__all__ = ["Img2DcmOptions", "Img2DcmResult", "images_to_dataset", "SOP_CLASSES"]

SC = UID("1.2.840.10008.5.1.4.1.1.7")
SC_SINGLE_BIT = UID("1.2.840.10008.5.1.4.1.1.7.1")
SC_GREY_BYTE = UID("1.2.840.10008.5.1.4.1.1.7.2")
SC_GREY_WORD = UID("1.2.840.10008.5.1.4.1.1.7.3")
SC_TRUE_COLOR = UID("1.2.840.10008.5.1.4.1.1.7.4")
VL_PHOTO = UID("1.2.840.10008.5.1.4.1.1.77.1.4")

SOP_CLASSES = {"sc": SC, "vl-photo": VL_PHOTO}

#: Template attributes img2dcm drops before use (DCMTK Image2Dcm::cleanupTemplate).
_TEMPLATE_DROP = (
    "PixelDataProviderURL",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelData",
    "PlanarConfiguration",
    "PixelAspectRatio",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "ICCProfile",
    "SOPClassUID",
    "SOPInstanceUID",
    "NumberOfFrames",
    "FrameIncrementPointer",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
)

#: DCMTK Image2Dcm::isValid: type 2 attributes of every output.
_TYPE2 = (
    "PatientName",
    "PatientSex",
    "PatientBirthDate",
    "PatientID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "SeriesNumber",
    "InstanceNumber",
    "PatientOrientation",
    "Laterality",
)
_TYPE1 = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)


@dataclass(frozen=True)
class Img2DcmOptions:
    """img2dcm's options. ``sop_class`` is ``"sc"``, ``"new-sc"`` or ``"vl-photo"``."""

    sop_class: str = "sc"
    sop_class_uid: str | None = None
    input_format: str | None = None
    jpeg: JpegOptions = field(default_factory=JpegOptions)
    raw: RawSpec | None = None
    dataset_from: Path | None = None
    study_from: Path | None = None
    series_from: Path | None = None
    instance_inc: bool = False
    keys: tuple[str, ...] = ()
    checks: bool = True
    insert_type2: bool = True
    invent_type1: bool = True
    study_uid: str | None = None
    series_uid: str | None = None
    root_uid: str | None = None


@dataclass
class Img2DcmResult:
    dataset: Dataset
    notes: list[str]


def _check_same(images: list[SourceImage]) -> None:
    first = images[0]
    for image in images[1:]:
        if image.geometry() != first.geometry():
            raise InputError(
                f"{image.path}: {image.columns}x{image.rows} {image.photometric} "
                f"{image.bits_stored}-bit differs from {first.path}; frames must match"
            )
        if (image.jpeg is None) != (first.jpeg is None) or (
            image.jpeg and first.jpeg and image.jpeg.syntax != first.jpeg.syntax
        ):
            raise InputError(f"{image.path}: mixes JPEG processes or JPEG with other formats")


def _new_sc_class(first: SourceImage) -> UID:
    pi, allocated, stored = first.photometric, first.bits_allocated, first.bits_stored
    if allocated == 1 and pi == "MONOCHROME2":
        return SC_SINGLE_BIT
    if allocated == 8 and stored == 8 and pi == "MONOCHROME2":
        return SC_GREY_BYTE
    if allocated == 16 and 9 <= stored <= 16 and pi == "MONOCHROME2":
        return SC_GREY_WORD
    if allocated == 8 and first.samples == 3 and pi in ("RGB", "YBR_FULL_422"):
        return SC_TRUE_COLOR
    raise InputError(
        f"no multi-frame Secondary Capture class holds {pi} with bits allocated/stored "
        f"{allocated}/{stored}"
    )


def _pixel_data(ds: Dataset, images: list[SourceImage]) -> UID:
    """Set Pixel Data and the Image Pixel module; return the transfer syntax."""
    import numpy as np

    first = images[0]
    ds.SamplesPerPixel = first.samples
    ds.PhotometricInterpretation = first.photometric
    if first.samples > 1:
        ds.PlanarConfiguration = 0
    ds.Rows = first.rows
    ds.Columns = first.columns
    ds.BitsAllocated = first.bits_allocated
    ds.BitsStored = first.bits_stored
    ds.HighBit = first.bits_stored - 1
    ds.PixelRepresentation = first.pixel_representation
    if first.jpeg is not None:
        streams = [image.jpeg.data for image in images if image.jpeg is not None]
        data, eot, lengths = encapsulate_frames(streams)
        ds.PixelData = data
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        if eot is not None:
            ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = eot, lengths
        pixels = first.rows * first.columns * first.samples * len(images)
        uncompressed = pixels * first.bits_allocated // 8
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ratio = uncompressed / max(1, sum(len(s) for s in streams))
        ds.LossyImageCompressionRatio = f"{ratio:.4g}"
        return first.jpeg.syntax
    frames = [f for image in images for f in (image.frames or [])]
    dtype = np.dtype(f"<{'i' if first.pixel_representation else 'u'}{first.bits_allocated // 8}")
    data = b"".join(np.ascontiguousarray(f.astype(dtype, copy=False)).tobytes() for f in frames)
    ds.PixelData = data + (b"\x00" if len(data) % 2 else b"")
    ds["PixelData"].VR = "OB" if first.bits_allocated <= 8 else "OW"
    return ExplicitVRLittleEndian


def _frame_count(images: list[SourceImage]) -> int:
    return sum(image.frame_count for image in images)


def images_to_dataset(paths: list[Path], options: Img2DcmOptions | None = None) -> Img2DcmResult:
    """Build one DICOM image object from `paths` (several paths: several frames)."""
    opts = options or Img2DcmOptions()
    if not paths:
        raise InputError("no input image")
    if opts.study_from and opts.series_from:
        raise InputError("--study-from and --series-from are mutually exclusive")
    notes: list[str] = []
    images = [
        read_image(p, input_format=opts.input_format, jpeg_options=opts.jpeg, raw=opts.raw)
        for p in paths
    ]
    for image in images:
        notes.extend(f"{image.path.name}: {note}" for note in image.notes)
    _check_same(images)
    frames = _frame_count(images)

    # 1. template
    ds = Dataset()
    reference: Dataset | None = None
    if opts.dataset_from:
        template = read_reference(opts.dataset_from)
        reference = template
        for keyword in _TEMPLATE_DROP:
            if keyword in template:
                del template[keyword]
        for elem in template:
            ds.add(elem)
    # 2. study / series from file
    level_file = opts.series_from or opts.study_from
    if level_file:
        source = read_reference(level_file)
        reference = reference or source
        copy_levels(ds, source, series=opts.series_from is not None)
    # 3. instance number
    if opts.instance_inc:
        if reference is None or reference.get("InstanceNumber") in (None, ""):
            raise InputError("--instance-inc: no Instance Number in the DICOM file given")
        ds.InstanceNumber = int(reference.InstanceNumber) + 1
    if "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 100"
    # 4. UIDs
    if opts.study_uid:
        ds.StudyInstanceUID = opts.study_uid
    if opts.series_uid:
        ds.SeriesInstanceUID = opts.series_uid
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not ds.get(keyword):
            setattr(ds, keyword, new_uid(opts.root_uid))
    ds.SOPInstanceUID = new_uid(opts.root_uid)
    # 5. pixels
    syntax = _pixel_data(ds, images)

    # 6. SOP class
    first = images[0]
    kind = opts.sop_class
    if opts.sop_class_uid:
        sop_class = UID(opts.sop_class_uid)
        kind = "custom"
        if not sop_class.is_valid:
            raise InputError(f"--sop-class-uid {opts.sop_class_uid!r} is not a valid UID")
    elif kind == "new-sc":
        sop_class = _new_sc_class(first)
    elif kind == "vl-photo":
        if frames > 1:
            raise InputError("VL Photographic Image is single-frame: use --new-sc for frames")
        if first.bits_allocated != 8 or first.bits_stored != 8:
            raise InputError("VL Photographic Image holds 8 bits per sample only (PS3.3 C.8.12.1)")
        sop_class = VL_PHOTO
    elif kind == "sc":
        sop_class = SC
        if frames > 1:
            sop_class = _new_sc_class(first)
            kind = "new-sc"
            notes.append(f"{frames} frames: written as {sop_class.name} (SC is single-frame)")
    else:
        raise InputError(f"unknown SOP class choice {kind!r}")
    ds.SOPClassUID = sop_class
    if frames > 1 or kind == "new-sc":
        ds.NumberOfFrames = frames
    type1 = dict.fromkeys(_TYPE1)
    type2 = list(_TYPE2)
    now = _dt.datetime.now()
    if "InstanceCreationDate" not in ds:
        ds.InstanceCreationDate = now.strftime("%Y%m%d")
        ds.InstanceCreationTime = now.strftime("%H%M%S")
    if kind in ("sc", "new-sc"):
        type1["ConversionType"] = "WSD"
        if "ConversionType" not in ds:
            ds.ConversionType = "WSD"
        ds.Modality = ds.get("Modality") or "OT"
        if "ContentDate" not in ds:
            ds.ContentDate = now.strftime("%Y%m%d")
            ds.ContentTime = now.strftime("%H%M%S")
    if kind == "new-sc":
        type1["BurnedInAnnotation"] = "NO"
        if "BurnedInAnnotation" not in ds:
            ds.BurnedInAnnotation = "NO"
        if sop_class in (SC_GREY_BYTE, SC_GREY_WORD):
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "US"
            ds.PresentationLUTShape = "IDENTITY"
        if frames > 1:
            ds.FrameIncrementPointer = 0x00182001  # Page Number Vector
            ds.PageNumberVector = list(range(1, frames + 1))
    if kind == "vl-photo":
        ds.Modality = "XC"
        type1["ImageType"] = "DERIVED\\SECONDARY"
        if "ImageType" not in ds:
            ds.ImageType = ["DERIVED", "SECONDARY"]
        type2 += ["AcquisitionContextSequence", "Manufacturer", "LossyImageCompression"]
        if "ContentDate" not in ds:
            ds.ContentDate = now.strftime("%Y%m%d")
            ds.ContentTime = now.strftime("%H%M%S")
    if kind != "custom":
        type1["Modality"] = "OT"

    # 7. -k, then the checks
    apply_keys(ds, opts.keys)
    if opts.checks:
        errors = check_type2(ds, type2, opts.insert_type2)
        errors += check_type1(ds, type1, opts.invent_type1, opts.root_uid)
        if errors:
            raise InputError("; ".join(errors))
    ds.file_meta = FileMetaDataset()
    ds.file_meta = build_file_meta(ds, syntax, rebuild=True)
    return Img2DcmResult(ds, notes)
