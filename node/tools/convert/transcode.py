"""Change a dataset's transfer syntax: the engine behind ``node-ctl convert``,
transcode-on-retrieve (C-MOVE/C-GET to a peer that accepts fewer syntaxes) and jobs.

Rules:

- Lossless targets keep the SOP Instance UID, and the decoded pixels are
  bit-identical to the source's (``options.verify`` checks it on the spot).
- Lossy targets get a new SOP Instance UID, Lossy Image Compression "01", the ratio
  and the method appended, Image Type DERIVED and a reference to the source.
- Pixels that a target cannot hold in a stream that decoders read are refused with
  :class:`EncodeRefused` before any encoding is done.
- A dataset already in the target syntax keeps its pixel data bytes unless
  ``options.force`` is set; native little-endian to native little-endian never
  touches pixel data.
- Lossy JPEG sources in YCbCr are decoded to RGB, as dcmdjpeg and gdcmconv do.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    RLELossless,
)

from node.tools.convert.dataset_ops import (
    build_file_meta,
    mark_lossy,
    remove_group_lengths,
    remove_retired,
)
from node.tools.convert.errors import (
    ConvertError,
    DecodeError,
    EncodeRefused,
    InputError,
    NotAnImage,
    VerificationError,
)
from node.tools.convert.options import TranscodeOptions
from node.tools.convert.pixels import PixelInfo
from node.tools.convert.syntaxes import NATIVE_TARGETS, Target, lossy_method, target_for

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from node.tools.convert.encoders import EncodePlan

__all__ = [
    "TranscodeResult",
    "source_syntax",
    "transcode",
    "transcode_dataset",
    "transcode_file",
    "write_dataset",
]

logger = logging.getLogger(__name__)

_LOSSY_JPEG = {JPEGBaseline8Bit, JPEGExtended12Bit, UID("1.2.840.10008.1.2.4.55")}
_PALETTE_KEYWORDS = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
)
_SWAP_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


@dataclass
class TranscodeResult:
    """What a transcoding did.

    ``pixels`` is one of ``"none"`` (no pixel data), ``"kept"`` (bytes unchanged),
    ``"refragmented"`` (same codestreams, new fragments) or ``"encoded"``.
    ``notes`` are sentences for the user: repairs, removals, decisions.
    """

    dataset: Dataset
    source_syntax: UID
    target_syntax: UID
    pixels: str
    lossy: bool = False
    ratio: float | None = None
    notes: list[str] = field(default_factory=list)


def source_syntax(ds: Dataset) -> UID:
    """The transfer syntax `ds` is in: its file meta's, else what it was read as."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return UID(meta.TransferSyntaxUID)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is True:
        return ImplicitVRLittleEndian
    if little is False:
        return UID("1.2.840.10008.1.2.2")
    return ExplicitVRLittleEndian


def transcode(ds: Dataset, target_syntax: str, options: TranscodeOptions | None = None) -> Dataset:
    """Return a copy of `ds` in `target_syntax` (the input is not modified).

    Raises a :class:`~node.tools.convert.errors.ConvertError` subclass on failure;
    :class:`EncodeRefused` means "pick another syntax for this one", e.g. when a
    retrieve peer accepts only syntaxes these pixels cannot be written in.
    """
    return transcode_dataset(ds, target_syntax, options).dataset


def transcode_dataset(
    ds: Dataset, target_syntax: str, options: TranscodeOptions | None = None
) -> TranscodeResult:
    """Like :func:`transcode`, but also report what was done."""
    opts = options or TranscodeOptions()
    target = target_for(target_syntax)
    source = source_syntax(ds)
    out = _copy_dataset(ds)
    result = TranscodeResult(out, source, target.uid, pixels="none")

    if "PixelData" in out:
        _transcode_pixels(ds, out, source, target, opts, result)
    elif target.uid not in NATIVE_TARGETS:
        if "FloatPixelData" in out or "DoubleFloatPixelData" in out:
            raise EncodeRefused(
                f"cannot write {target.uid.name}: float pixel data is never encapsulated"
            )
        raise NotAnImage(f"no pixel data: {target.uid.name} applies to images only")
    elif opts.generate_icon or opts.photometric_interpretation:
        raise NotAnImage("no pixel data to make an icon of or to change")

    if not source.is_little_endian:
        _swap_to_little_endian(out)
        result.notes.append("converted from big endian")

    if opts.remove_private_tags:
        before = len(out)
        out.remove_private_tags()
        if len(out) != before:
            result.notes.append(f"removed {before - len(out)} private element(s)")
    if opts.remove_retired:
        if count := remove_retired(out):
            result.notes.append(f"removed {count} retired element(s)")
    if opts.remove_group_length:
        if count := remove_group_lengths(out):
            result.notes.append(f"removed {count} group length element(s)")

    out.file_meta = build_file_meta(out, target.uid, rebuild=opts.check_meta)
    return result


def _copy_dataset(ds: Dataset) -> Dataset:
    """A copy of `ds` that shares nothing mutable with it, made cheaply.

    ``copy.deepcopy`` of a dataset read from file costs ~0.1 ms per element (large
    private headers make that tens of ms per file). Elements not yet parsed are
    immutable raw tuples: those are shared; parsed ones are deep-copied.
    """
    from pydicom.dataelem import RawDataElement

    out = Dataset()
    # Reverse order: a private element added after its creator gets parsed on insertion
    # (to record the creator), which is the cost we are avoiding; parsing on access later
    # records it anyway.
    for tag in sorted(ds.keys(), reverse=True):
        elem = ds.get_item(tag)
        out[tag] = elem if isinstance(elem, RawDataElement) else copy.deepcopy(elem)
    implicit, little = ds.original_encoding
    if implicit is not None and little is not None:
        out.set_original_encoding(implicit, little, ds.original_character_set)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = copy.deepcopy(meta)
    return out


def _transcode_pixels(
    ds: Dataset,
    out: Dataset,
    source: UID,
    target: Target,
    opts: TranscodeOptions,
    result: TranscodeResult,
) -> None:
    info = PixelInfo.from_dataset(ds)
    wanted_pi = (opts.photometric_interpretation or "").strip().upper() or None
    native_target = target.uid in NATIVE_TARGETS
    changes_layout = bool(
        (wanted_pi and wanted_pi != info.photometric)
        or (
            native_target
            and opts.planar_configuration is not None
            and info.samples > 1
            and opts.planar_configuration != info.planar_configuration
        )
    )
    if opts.planar_configuration not in (None, 0, 1):
        raise EncodeRefused("planar configuration must be 0 or 1")
    if opts.split is not None:
        if native_target:
            raise EncodeRefused("--split applies to encapsulated (compressed) syntaxes only")
        if target.uid == RLELossless:
            raise EncodeRefused("RLE frames are one fragment each (PS3.5 A.4.2): cannot split")
        if opts.split < 2 or opts.split % 2:
            raise EncodeRefused("fragment size must be an even number of bytes, at least 2")

    same = source == target.uid
    native_copy = (
        not source.is_compressed
        and source.is_little_endian
        and native_target
        and not changes_layout
    )
    if (same and not opts.force and not changes_layout) or native_copy:
        _keep_pixels(ds, out, source, target, opts, info, result)
    else:
        _encode_pixels(ds, out, source, target, opts, info, wanted_pi, result)

    _mark_lossy_source(out, source, result)
    _handle_icon(ds, out, source, target, opts, result)


def _keep_pixels(
    ds: Dataset,
    out: Dataset,
    source: UID,
    target: Target,
    opts: TranscodeOptions,
    info: PixelInfo,
    result: TranscodeResult,
) -> None:
    from node.tools.convert.pixels import encapsulate_frames, iter_encapsulated_frames

    result.pixels = "kept"
    if opts.split and source.is_compressed:
        frames = list(iter_encapsulated_frames(ds, info.frames))
        data, eot, eot_lengths = encapsulate_frames(frames, opts.split)
        _set_encapsulated(out, data, eot, eot_lengths)
        result.pixels = "refragmented"


def _as_rgb(source: UID, info: PixelInfo) -> bool:
    return source in _LOSSY_JPEG and info.photometric in ("YBR_FULL_422", "YBR_FULL")


def _encode_pixels(
    ds: Dataset,
    out: Dataset,
    source: UID,
    target: Target,
    opts: TranscodeOptions,
    info: PixelInfo,
    wanted_pi: str | None,
    result: TranscodeResult,
) -> None:
    from node.tools.convert.encoders import encode_frame, plan_encoding
    from node.tools.convert.pixels import decode_frames, encapsulate_frames, native_bytes

    if info.bits_allocated not in (1, 8, 16, 32, 64) and source.is_compressed:
        raise DecodeError(f"Bits Allocated {info.bits_allocated} is not decodable")
    as_rgb = _as_rgb(source, info)
    decoded, frames = decode_frames(ds, source, as_rgb=as_rgb)
    if info.bits_allocated == 1:
        container = 1
    else:
        container = max(info.bits_allocated, decoded.bits_allocated)
    decoded = decoded.with_(bits_allocated=container)
    if as_rgb:
        result.notes.append(f"{info.photometric} decoded to RGB")

    transform, layout = _pixel_transform(decoded, wanted_pi, ds)
    native_target = target.uid in NATIVE_TARGETS
    if native_target:
        if opts.planar_configuration is not None:
            planar = opts.planar_configuration
        elif not source.is_compressed:
            planar = info.planar_configuration
        else:
            planar = 0
        layout = layout.with_(planar_configuration=planar if layout.samples > 1 else 0)
        plan: EncodePlan | None = None
        final = layout
    else:
        plan = plan_encoding(layout, target.uid, opts)
        final = plan.result

    hashes: list[str] = []
    encoded: list[bytes] = []
    arrays: list[np.ndarray] = []
    for frame in frames:
        frame = transform(frame)
        if opts.verify and not target.lossy:
            hashes.append(_frame_hash(frame))
        if plan is None:
            arrays.append(frame)
        else:
            encoded.append(encode_frame(frame, plan, opts))

    if plan is None:
        out.PixelData = native_bytes(arrays, final)
        elem = out["PixelData"]
        elem.VR = "OB" if final.bits_allocated <= 8 else "OW"
        elem.is_undefined_length = False
        for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if keyword in out:
                del out[keyword]
        encoded_size = len(out.PixelData)
    else:
        data, eot, eot_lengths = encapsulate_frames(encoded, opts.split)
        _set_encapsulated(out, data, eot, eot_lengths)
        encoded_size = sum(len(f) for f in encoded)

    final.apply(out)
    if layout.photometric == "RGB" and decoded.photometric == "PALETTE COLOR":
        for keyword in _PALETTE_KEYWORDS:
            if keyword in out:
                del out[keyword]
    result.pixels = "encoded"

    if opts.verify:
        _verify(out, target, hashes)

    if target.lossy:
        ratio = layout.uncompressed_size / max(encoded_size, 1)
        result.lossy = True
        result.ratio = ratio
        mark_lossy(
            out,
            method=target.method,
            ratio=ratio,
            root_uid=opts.root_uid,
            description=f"Lossy compression with {target.uid.name}, ratio {ratio:.2f}:1",
        )


def _pixel_transform(
    decoded: PixelInfo, wanted: str | None, ds: Dataset
) -> tuple[Callable[[np.ndarray], np.ndarray], PixelInfo]:
    """The lossless photometric change asked for, as a frame function and new layout."""
    import numpy as np

    def identity(frame: np.ndarray) -> np.ndarray:
        return frame

    current = decoded.photometric
    if not wanted or wanted == current:
        return identity, decoded
    if {current, wanted} == {"MONOCHROME1", "MONOCHROME2"}:
        if decoded.pixel_representation:

            def invert(frame: np.ndarray) -> np.ndarray:
                out: np.ndarray = np.invert(frame)  # -1 - v: the signed range onto itself
                return out
        else:
            top = 2**decoded.bits_stored - 1

            def invert(frame: np.ndarray) -> np.ndarray:
                out: np.ndarray = (top - frame).astype(frame.dtype)
                return out

        return invert, decoded.with_(photometric=wanted)
    if current == "PALETTE COLOR" and wanted == "RGB":
        from pydicom.pixels.processing import apply_color_lut

        probe = apply_color_lut(np.zeros((1, 1), dtype=np.uint16), ds)
        bits = 8 * probe.dtype.itemsize

        def palette(frame: np.ndarray) -> np.ndarray:
            return apply_color_lut(frame, ds)

        return palette, decoded.with_(
            photometric="RGB",
            samples=3,
            bits_allocated=bits,
            bits_stored=bits,
            pixel_representation=0,
        )
    if current == "YBR_FULL" and wanted == "YBR_FULL_422":
        raise EncodeRefused("YBR_FULL_422 subsamples chroma: that is not lossless")
    raise EncodeRefused(
        f"changing {current} to {wanted} is not lossless (supported: MONOCHROME1 <-> "
        "MONOCHROME2, PALETTE COLOR -> RGB, YBR_FULL_422 -> YBR_FULL)"
    )


def _set_encapsulated(out: Dataset, data: bytes, eot: bytes | None, lengths: bytes | None) -> None:
    out.PixelData = data
    elem = out["PixelData"]
    elem.VR = "OB"
    elem.is_undefined_length = True
    if eot is not None and lengths is not None:
        out.ExtendedOffsetTable = eot
        out.ExtendedOffsetTableLengths = lengths
    else:
        for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if keyword in out:
                del out[keyword]


def _frame_hash(frame: np.ndarray) -> str:
    """md5 of the values, independent of the container dtype the decoder chose."""
    import numpy as np

    wide = np.int64 if frame.dtype.itemsize > 4 else np.int32
    return hashlib.md5(np.ascontiguousarray(frame, dtype=wide).tobytes()).hexdigest()


def _verify(out: Dataset, target: Target, hashes: list[str]) -> None:
    from node.tools.convert.pixels import decode_frames

    meta_backup = getattr(out, "file_meta", None)
    probe = copy.copy(out)
    probe.file_meta = build_file_meta(out, target.uid, rebuild=True)
    try:
        _, frames = decode_frames(probe, target.uid, as_rgb=False)
        got = [_frame_hash(f) for f in frames]
    except DecodeError as exc:
        raise VerificationError(f"the {target.uid.name} result does not decode: {exc}") from exc
    finally:
        if meta_backup is not None:
            out.file_meta = meta_backup
    if hashes and got != hashes:
        bad = sum(1 for a, b in zip(got, hashes, strict=False) if a != b)
        raise VerificationError(
            f"the {target.uid.name} result differs from the source in {bad} frame(s)"
        )


def _mark_lossy_source(out: Dataset, source: UID, result: TranscodeResult) -> None:
    """A lossy source stays marked lossy, whatever it is converted to (PS3.3 C.7.6.1.1.5)."""
    method = lossy_method(source)
    if not method or str(out.get("LossyImageCompression", "")).strip() == "01":
        return
    out.LossyImageCompression = "01"
    if "LossyImageCompressionMethod" not in out:
        out.LossyImageCompressionMethod = method
    result.notes.append(f"source was {source.name}: Lossy Image Compression set to 01")


def _handle_icon(
    ds: Dataset,
    out: Dataset,
    source: UID,
    target: Target,
    opts: TranscodeOptions,
    result: TranscodeResult,
) -> None:
    from node.tools.convert.icon import make_icon
    from node.tools.convert.pixels import decode_frames

    icons = out.get("IconImageSequence")
    if icons and source != target.uid:
        for item in icons:
            if "PixelData" in item and item["PixelData"].is_undefined_length:
                del out.IconImageSequence
                result.notes.append("dropped an encapsulated icon that cannot follow")
                break
    if not opts.generate_icon:
        return
    decoded, frames = decode_frames(ds, source, as_rgb=False)
    first = next(iter(frames))
    icon = make_icon(
        first,
        decoded,
        ds,
        minmax=opts.icon_minmax,
        auto_minmax=opts.icon_auto_minmax,
    )
    from pydicom.sequence import Sequence

    out.IconImageSequence = Sequence([icon])
    result.notes.append(f"icon {icon.Columns}x{icon.Rows} generated")


def _swap_to_little_endian(ds: Dataset) -> None:
    """Byte-swap OW/OF/OL/OD/OV values read from a big endian file (pydicom does not)."""
    import numpy as np

    for elem in ds.iterall():
        size = _SWAP_SIZES.get(elem.VR)
        if not size or elem.tag == 0x7FE00010 or not isinstance(elem.value, bytes | bytearray):
            continue
        value = bytes(elem.value)
        usable = len(value) - len(value) % size
        swapped = np.frombuffer(value[:usable], dtype=f">u{size}").astype(f"<u{size}")
        elem.value = swapped.tobytes() + value[usable:]


def write_dataset(ds: Dataset, path: Path) -> None:
    """Write `ds` as a DICOM file at `path`, atomically (temp file then rename)."""
    from pydicom import dcmwrite

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".dcm", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            dcmwrite(fh, ds, enforce_file_format=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def transcode_file(
    src: Path,
    dst: Path,
    target_syntax: str | None = None,
    options: TranscodeOptions | None = None,
    *,
    family: str | None = None,
    lossy: bool = False,
) -> TranscodeResult:
    """Read `src`, repair what gdcmconv repairs, transcode, write `dst`.

    Give either a concrete `target_syntax` or a CLI `family` (``"jpeg"`` ...) with
    `lossy`; the family is resolved per file because lossy JPEG depends on the bit
    depth. Repairs done on reading come first in ``result.notes``.
    """
    from node.tools.convert.repair import read_with_repairs
    from node.tools.convert.syntaxes import resolve_family

    ds, repairs = read_with_repairs(src)
    if target_syntax is None:
        if family is None:
            raise ValueError("give target_syntax or family")
        if family == "jpeg" and lossy and "PixelData" not in ds:
            raise NotAnImage(f"{src}: no pixel data")
        bits = int(ds.get("BitsStored", 8) or 8)
        target_syntax = resolve_family(family, lossy, bits)
    try:
        result = transcode_dataset(ds, target_syntax, options)
    except ConvertError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{src}: {exc}") from exc
    result.notes[:0] = repairs
    write_dataset(result.dataset, dst)
    return result
