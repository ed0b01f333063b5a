"""The transfer syntaxes we write, grouped the way gdcmconv's flags group them.

Why a table: the CLI flags (``--jpeg``, ``--jpegls`` ...) name a *family*; the
concrete syntax depends on ``--lossy`` and, for JPEG, on the image's bit depth
(8 bits -> Baseline, 12 bits -> Extended). The retrieve path, on the other hand,
asks for a concrete UID. Both go through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from node.tools.convert.errors import EncodeRefused, UnsupportedSyntax

__all__ = [
    "FAMILIES",
    "NATIVE_TARGETS",
    "TARGETS",
    "Target",
    "is_lossy",
    "lossy_method",
    "resolve_family",
    "target_for",
]


@dataclass(frozen=True)
class Target:
    """One transfer syntax we can write, and who writes it."""

    uid: UID
    family: str
    lossy: bool
    encoder: str  # human-readable: which library encodes it
    method: str = ""  # LossyImageCompressionMethod for lossy targets


#: Every syntax ``transcode`` accepts as a target, in documentation order.
TARGETS: dict[str, Target] = {
    t.uid: t
    for t in (
        Target(ExplicitVRLittleEndian, "explicit", False, "pydicom (native)"),
        Target(ImplicitVRLittleEndian, "implicit", False, "pydicom (native)"),
        Target(DeflatedExplicitVRLittleEndian, "deflated", False, "pydicom + zlib"),
        Target(RLELossless, "rle", False, "pylibjpeg-rle (pydicom RLELosslessEncoder)"),
        Target(JPEGLosslessSV1, "jpeg", False, "python-gdcm (IJG 8/12/16-bit lossless)"),
        Target(JPEGBaseline8Bit, "jpeg", True, "Pillow (libjpeg-turbo)", "ISO_10918_1"),
        Target(JPEGExtended12Bit, "jpeg", True, "python-gdcm (IJG 12-bit)", "ISO_10918_1"),
        Target(JPEGLSLossless, "jpegls", False, "pyjpegls (CharLS)"),
        Target(JPEGLSNearLossless, "jpegls", True, "pyjpegls (CharLS)", "ISO_14495_1"),
        Target(JPEG2000Lossless, "j2k", False, "pylibjpeg-openjpeg (OpenJPEG)"),
        Target(JPEG2000, "j2k", True, "pylibjpeg-openjpeg (OpenJPEG)", "ISO_15444_1"),
    )
}

NATIVE_TARGETS = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
)

#: Families the CLI offers (``--raw`` is explicit VR little endian with decompression).
FAMILIES = ("explicit", "implicit", "deflated", "raw", "rle", "jpeg", "jpegls", "j2k")

#: Methods of lossy source syntaxes, for carrying LossyImageCompressionMethod over.
_SOURCE_METHODS = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.93": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
    "1.2.840.10008.1.2.4.100": "ISO_13818_2",
    "1.2.840.10008.1.2.4.101": "ISO_13818_2",
    "1.2.840.10008.1.2.4.102": "ISO_14496_10",
    "1.2.840.10008.1.2.4.103": "ISO_14496_10",
}


def target_for(uid: str) -> Target:
    """Return the :class:`Target` for `uid`, or raise :class:`UnsupportedSyntax`."""
    try:
        return TARGETS[UID(uid)]
    except KeyError:
        name = UID(uid).name if UID(uid).is_valid else uid
        if UID(uid) == ExplicitVRBigEndian:
            why = "Explicit VR Big Endian is retired; it is read but not written"
        else:
            why = "not a syntax this tool writes"
        raise UnsupportedSyntax(f"target transfer syntax {name} ({uid}): {why}") from None


def is_lossy(uid: str) -> bool:
    """True if pixel data in `uid` has (or may have) been lossy compressed."""
    return UID(uid) in _SOURCE_METHODS or (UID(uid) in TARGETS and TARGETS[UID(uid)].lossy)


def lossy_method(uid: str) -> str:
    """LossyImageCompressionMethod (CID 7017 defined term) for a lossy syntax, or ''."""
    return _SOURCE_METHODS.get(str(uid), "")


def resolve_family(family: str, lossy: bool, bits_stored: int) -> UID:
    """Map a CLI family (``--jpeg``, ``--j2k`` ...) to the concrete target syntax.

    JPEG lossy depends on the bit depth: Baseline holds 8 bits, Extended 12. There
    is no standard lossy JPEG for more than 12 bits (gdcmconv writes a 16-bit DCT
    stream nobody decodes): refuse it here rather than write it.
    """
    if family in ("explicit", "raw"):
        return ExplicitVRLittleEndian
    if family == "implicit":
        return ImplicitVRLittleEndian
    if family == "deflated":
        return DeflatedExplicitVRLittleEndian
    if family == "rle":
        if lossy:
            raise EncodeRefused("RLE is lossless only: drop --lossy")
        return RLELossless
    if family == "jpegls":
        return JPEGLSNearLossless if lossy else JPEGLSLossless
    if family == "j2k":
        return JPEG2000 if lossy else JPEG2000Lossless
    if family == "jpeg":
        if not lossy:
            return JPEGLosslessSV1
        if bits_stored <= 8:
            return JPEGBaseline8Bit
        if bits_stored <= 12:
            return JPEGExtended12Bit
        raise EncodeRefused(
            f"lossy JPEG holds at most 12 bits and this image has {bits_stored} bits stored; "
            "no decoder reads a 16-bit JPEG DCT stream (use --jpegls --lossy or --j2k --lossy)"
        )
    raise UnsupportedSyntax(f"unknown conversion family {family!r} (one of {', '.join(FAMILIES)})")
