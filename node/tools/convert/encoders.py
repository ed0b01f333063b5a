"""Which encoder writes which transfer syntax, and what each one refuses.

Choice of encoder (see docs/convert.md):

- RLE Lossless: pylibjpeg-rle through pydicom's ``RLELosslessEncoder`` (fast, Rust),
  falling back to pydicom's own numpy encoder.
- JPEG-LS Lossless / Near-Lossless: pyjpegls (CharLS) through pydicom.
- JPEG 2000 Lossless / lossy: pylibjpeg-openjpeg (OpenJPEG) through pydicom, with the
  reversible (RCT) or irreversible (ICT) colour transform for RGB, as GDCM and DCMTK do.
- JPEG Lossless SV1 and JPEG Extended 12-bit: python-gdcm (its IJG 8/12/16-bit
  codecs). pydicom has no JPEG encoder. 8-bit data asked in JPEG Extended gets a
  baseline stream from Pillow (valid in that syntax).
- JPEG-LS frames of a few pixels, which pyjpegls cannot encode: GDCM's CharLS.
- JPEG Baseline 8-bit: Pillow (libjpeg-turbo): a JFIF stream with 4:2:2 chroma
  subsampling, labelled YBR_FULL_422. GDCM labels its YCbCr 4:2:0 baseline stream
  "RGB", which decoders then read with the wrong colours.

What is allowed is PS3.5 section 8.2 (pydicom's ``ENCODING_PROFILES``) plus the limits of
the encoders themselves (OpenJPEG: at most 24 bits, at least 32x32 pixels). Anything else raises
:class:`EncodeRefused` before any work is done: we never write a stream that no
decoder reads, such as the 16-bit lossy JPEG that gdcmconv produces.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.uid import (
    JPEG2000,
    UID,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from node.tools.convert.errors import EncodeError, EncodeRefused
from node.tools.convert.options import TranscodeOptions
from node.tools.convert.pixels import PixelInfo
from node.tools.convert.syntaxes import Target, target_for

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EncodePlan", "encode_frame", "plan_encoding"]

DEFAULT_JPEG_QUALITY = 90
DEFAULT_JLS_ERROR = 2
DEFAULT_J2K_RATE = (10.0,)

_PYDICOM_ENCODED = {RLELossless, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000}
_GDCM_ENCODED = {JPEGLosslessSV1, JPEGExtended12Bit}
_OPENJPEG_MAX_BITS = 24
_OPENJPEG_MIN_SIDE = 32  # 2**(6 resolutions - 1)


@dataclass(frozen=True)
class EncodePlan:
    """How one image will be encoded.

    ``source`` describes the frames handed to :func:`encode_frame`; ``result`` is the
    Image Pixel module after encoding (the photometric interpretation may change,
    e.g. RGB -> YBR_RCT for JPEG 2000, and lossy JPEG rounds Bits Stored up to 8 or 12).
    """

    target: Target
    source: PixelInfo
    result: PixelInfo


def _refuse(target: Target, info: PixelInfo, why: str) -> EncodeRefused:
    return EncodeRefused(
        f"cannot write {target.uid.name}: {why} "
        f"({info.photometric}, {info.samples} sample(s), bits allocated/stored "
        f"{info.bits_allocated}/{info.bits_stored}, pixel representation "
        f"{info.pixel_representation})"
    )


def _check_profile(target: Target, result: PixelInfo) -> None:
    """PS3.5 8.2: the combinations of Image Pixel values each syntax may hold."""
    from pydicom.pixels.encoders.base import ENCODING_PROFILES

    for pi, spp, reprs, allocated, stored in ENCODING_PROFILES.get(target.uid, []):
        if (
            result.photometric == pi
            and result.samples == spp
            and result.pixel_representation in reprs
            and result.bits_allocated in allocated
            and result.bits_stored in stored
        ):
            return
    raise _refuse(target, result, "PS3.5 section 8.2 does not allow these pixels in this syntax")


def plan_encoding(info: PixelInfo, target_uid: str, options: TranscodeOptions) -> EncodePlan:
    """Check that `info` can be encoded in `target_uid`; say how the result looks.

    Raises :class:`EncodeRefused` with the reason when it cannot.
    """
    target = target_for(target_uid)
    uid = target.uid
    if info.bits_allocated == 1:
        raise _refuse(target, info, "1-bit pixel data has no encapsulated form")
    if info.samples not in (1, 3):
        raise _refuse(target, info, "only 1 or 3 samples per pixel can be encapsulated")
    if info.bits_stored > info.bits_allocated or info.bits_stored < 1:
        raise _refuse(target, info, "Bits Stored is inconsistent with Bits Allocated")

    source = info
    result = info.with_(planar_configuration=0)
    if uid == RLELossless:
        # PS3.5 G.2: RLE segments are colour-by-plane, so say so.
        result = result.with_(planar_configuration=1 if info.samples > 1 else 0)
    elif uid in (JPEG2000Lossless, JPEG2000):
        if info.bits_stored > _OPENJPEG_MAX_BITS:
            raise _refuse(target, info, f"OpenJPEG encodes at most {_OPENJPEG_MAX_BITS} bits")
        if min(info.rows, info.columns) < _OPENJPEG_MIN_SIDE:
            raise _refuse(
                target,
                info,
                f"pylibjpeg-openjpeg always uses 6 wavelet resolutions, which needs at least "
                f"{_OPENJPEG_MIN_SIDE} rows and columns ({info.columns}x{info.rows})",
            )
        if info.photometric == "RGB":
            result = result.with_(photometric="YBR_ICT" if target.lossy else "YBR_RCT")
    elif uid == JPEGBaseline8Bit:
        if info.bits_stored > 8:
            raise _refuse(target, info, "JPEG Baseline holds at most 8 bits")
        result = result.with_(bits_allocated=8, bits_stored=8)
        if info.samples == 3:
            if info.photometric not in ("RGB", "YBR_FULL"):
                raise _refuse(target, info, "only RGB or YBR_FULL colour can be re-encoded")
            result = result.with_(photometric="YBR_FULL_422")
    elif uid == JPEGExtended12Bit:
        if info.bits_stored > 12:
            raise _refuse(
                target,
                info,
                "JPEG Extended holds at most 12 bits; no decoder reads a 16-bit lossy JPEG",
            )
        if info.bits_stored > 8:
            result = result.with_(bits_allocated=16, bits_stored=12)
        else:
            result = result.with_(bits_allocated=8, bits_stored=8)
    _check_profile(target, result)
    if uid == JPEGLSNearLossless and options.allowed_error is not None:
        if not 0 < options.allowed_error <= 255:
            raise _refuse(target, info, f"allowed error {options.allowed_error} is not 1..255")
    if uid == JPEGBaseline8Bit or uid == JPEGExtended12Bit:
        quality = options.quality if options.quality is not None else DEFAULT_JPEG_QUALITY
        if not 1 <= quality <= 100:
            raise _refuse(target, info, f"JPEG quality {quality} is not 1..100")
    if uid == JPEG2000 and options.rate and options.psnr:
        raise _refuse(target, info, "give either a rate or a quality (PSNR), not both")
    return EncodePlan(target=target, source=source, result=result)


def encode_frame(arr: np.ndarray, plan: EncodePlan, options: TranscodeOptions) -> bytes:
    """Encode one frame, shaped (rows, columns[, samples]), according to `plan`."""
    uid = plan.target.uid
    try:
        if uid in _PYDICOM_ENCODED:
            try:
                return _pydicom_encode(arr, plan, options)
            except RuntimeError:
                if uid not in (JPEGLSLossless, JPEGLSNearLossless) or arr.nbytes > 4096:
                    raise
                return _charls_tiny(arr, plan, options)
        if uid == JPEGExtended12Bit and plan.result.bits_allocated == 8:
            return _pillow_encode(arr, plan, options)  # 8-bit: a baseline stream is valid
        if uid in _GDCM_ENCODED:
            return _gdcm_encode(arr, plan, options)
        if uid == JPEGBaseline8Bit:
            return _pillow_encode(arr, plan, options)
    except (EncodeRefused, EncodeError):
        raise
    except ValueError as exc:
        # pydicom's validation of the values themselves (e.g. near-lossless signed data)
        raise EncodeRefused(f"cannot write {uid.name}: {exc}") from exc
    except Exception as exc:
        raise EncodeError(f"{plan.target.encoder} failed writing {uid.name}: {exc}") from exc
    raise EncodeRefused(f"no encoder for {uid.name}")


def _pydicom_encode(arr: np.ndarray, plan: EncodePlan, options: TranscodeOptions) -> bytes:
    from pydicom.pixels.encoders.base import get_encoder

    uid = plan.target.uid
    src, res = plan.source, plan.result
    kwargs: dict[str, Any] = {
        "rows": src.rows,
        "columns": src.columns,
        "samples_per_pixel": src.samples,
        "bits_allocated": src.bits_allocated,
        "bits_stored": src.bits_stored,
        "pixel_representation": src.pixel_representation,
        "photometric_interpretation": res.photometric,
        "number_of_frames": 1,
    }
    if src.samples > 1:
        kwargs["planar_configuration"] = 0
    plugin = ""
    if uid == RLELossless:
        plugin = "pylibjpeg" if "pylibjpeg" in get_encoder(uid).available_plugins else ""
    elif uid == JPEGLSNearLossless:
        error = options.allowed_error
        kwargs["jls_error"] = DEFAULT_JLS_ERROR if error is None else error
    elif uid in (JPEG2000, JPEG2000Lossless):
        # MCT only when the result is labelled YBR_RCT/ICT; YBR_FULL stays as it is.
        kwargs["use_mct"] = res.photometric in ("YBR_RCT", "YBR_ICT")
        if uid == JPEG2000:
            if options.psnr:
                kwargs["j2k_psnr"] = list(options.psnr)
            else:
                kwargs["j2k_cr"] = list(options.rate or DEFAULT_J2K_RATE)
    return bytes(get_encoder(uid).encode(arr, encoding_plugin=plugin, **kwargs))


def _charls_tiny(arr: np.ndarray, plan: EncodePlan, options: TranscodeOptions) -> bytes:
    """JPEG-LS of a frame of a few pixels.

    pyjpegls sizes CharLS's output buffer at twice the input, which markers alone
    overflow for tiny noisy frames (GDCM's CharLS fails the same way). Its low-level
    encoder accepts a longer source than the image needs, which buys the room.
    """
    import _CharLS  # pyjpegls' extension module
    import numpy as np

    src = plan.source
    itemsize = 1 if src.bits_stored <= 8 else 2
    mask = (1 << src.bits_stored) - 1
    data = (arr.astype(np.int64) & mask).astype(f"<u{itemsize}").tobytes()
    error = 0
    if plan.target.uid == JPEGLSNearLossless:
        error = DEFAULT_JLS_ERROR if options.allowed_error is None else options.allowed_error
    interleave = 2 if src.samples > 1 else 0
    stream = _CharLS._encode(
        data + bytes(4096),
        error,
        interleave,
        src.rows,
        src.columns,
        src.samples,
        src.bits_stored,
    )
    return bytes(stream)


def _gdcm_encode(arr: np.ndarray, plan: EncodePlan, options: TranscodeOptions) -> bytes:
    """JPEG through GDCM's IJG codecs, built in memory like pydicom's gdcm RLE plugin."""
    import gdcm
    import numpy as np

    src = plan.source
    uid = plan.target.uid
    if uid == JPEGExtended12Bit:
        container = np.uint16
        data = arr.astype(container, copy=False)
        # GDCM picks its 8/12/16-bit codec from the pixel format; 12-bit samples
        # travel in 16-bit words but must be declared 12 to get a 12-bit stream.
        allocated = stored = 12
        signed = 0
    else:
        itemsize = src.bits_allocated // 8
        data = arr.astype(f"<{'i' if src.pixel_representation else 'u'}{itemsize}", copy=False)
        allocated = src.bits_allocated
        stored = src.bits_stored
        signed = src.pixel_representation

    raw = np.ascontiguousarray(data).tobytes()
    pi_name = src.photometric
    if len(raw) % 2:
        # GDCM pads values it is handed to even length and then refuses the buffer as
        # too long; read from a file it keeps the odd length (as gdcmconv does).
        return _gdcm_encode_via_file(raw, src, allocated, stored, signed, uid, plan, options)
    writer = gdcm.ImageWriter()  # owns the image: keep it alive until the end
    image = writer.GetImage()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((src.columns, src.rows, 1))
    pi_type = gdcm.PhotometricInterpretation.GetPIType(pi_name)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ImplicitVRLittleEndian))
    image.SetPixelFormat(gdcm.PixelFormat(src.samples, allocated, stored, stored - 1, signed))
    if src.samples > 1:
        image.SetPlanarConfiguration(0)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetByteStringValue(raw)
    image.SetDataElement(element)
    return _gdcm_change(image, uid, plan, options)


def _gdcm_change(image: Any, uid: UID, plan: EncodePlan, options: TranscodeOptions) -> bytes:
    import gdcm

    converter = gdcm.ImageChangeTransferSyntax()
    converter.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(uid))))
    if uid in (JPEGLSLossless, JPEGLSNearLossless):
        jls = gdcm.JPEGLSCodec()
        jls.SetLossless(uid == JPEGLSLossless)
        if uid == JPEGLSNearLossless:
            error = options.allowed_error
            jls.SetLossyError(DEFAULT_JLS_ERROR if error is None else error)
        converter.SetUserCodec(jls)
    elif plan.target.lossy:
        codec = gdcm.JPEGCodec()
        codec.SetLossless(False)
        quality = options.quality if options.quality is not None else DEFAULT_JPEG_QUALITY
        codec.SetQuality(float(quality))
        converter.SetUserCodec(codec)
    converter.SetInput(image)
    if not converter.Change():
        raise EncodeError(f"GDCM could not encode {uid.name}")
    fragments = converter.GetOutput().GetDataElement().GetSequenceOfFragments()
    if fragments is None or fragments.GetNumberOfFragments() != 1:
        raise EncodeError("GDCM returned an unexpected number of fragments")
    buffer = fragments.GetFragment(0).GetByteValue().GetBuffer()
    return bytes(buffer.encode("utf-8", "surrogateescape"))


def _gdcm_encode_via_file(
    raw: bytes,
    src: PixelInfo,
    allocated: int,
    stored: int,
    signed: int,
    uid: UID,
    plan: EncodePlan,
    options: TranscodeOptions,
) -> bytes:
    import os
    import struct
    import tempfile

    import gdcm
    from pydicom import dcmwrite
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = src.rows, src.columns
    ds.SamplesPerPixel = src.samples
    ds.PhotometricInterpretation = src.photometric
    if src.samples > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, stored - 1
    ds.PixelRepresentation = signed
    fd, name = tempfile.mkstemp(suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as fh:
            dcmwrite(fh, ds, enforce_file_format=True)
            # Pixel Data is the last element: append it with its true, odd, length.
            fh.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, len(raw)) + raw)
        reader = gdcm.ImageReader()
        reader.SetFileName(name)
        if not reader.Read():
            raise EncodeError("GDCM could not read back the frame to encode")
        return _gdcm_change(reader.GetImage(), uid, plan, options)
    finally:
        os.unlink(name)


def _pillow_encode(arr: np.ndarray, plan: EncodePlan, options: TranscodeOptions) -> bytes:
    """8-bit baseline JPEG via Pillow: grey, or YCbCr 4:2:2 from RGB or YBR_FULL input."""
    import numpy as np
    from PIL import Image

    src = plan.source
    data = np.ascontiguousarray(arr.astype(np.uint8, copy=False))
    if src.samples == 1:
        image = Image.frombytes("L", (src.columns, src.rows), data.tobytes())
    else:
        mode = "YCbCr" if src.photometric == "YBR_FULL" else "RGB"
        image = Image.frombytes(mode, (src.columns, src.rows), data.tobytes())
    quality = options.quality if options.quality is not None else DEFAULT_JPEG_QUALITY
    out = io.BytesIO()
    # subsampling=1 is 4:2:2, the "422" of YBR_FULL_422; optimize=False keeps it baseline.
    image.save(out, format="JPEG", quality=int(quality), subsampling=1, optimize=False)
    return out.getvalue()
