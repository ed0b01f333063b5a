"""Options of a transcoding, mirroring gdcmconv's flags.

Kept apart from the engine so the CLI, jobs and the retrieve path can build
options without importing numpy or any codec.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TranscodeOptions"]


@dataclass(frozen=True)
class TranscodeOptions:
    """What to do besides changing the transfer syntax.

    Parameters
    ----------
    force
        Re-encode the pixel data even when the dataset is already in the target syntax
        (gdcmconv ``--force``).
    quality
        JPEG lossy quality, 1..100 (gdcmconv ``-q`` with ``--jpeg``). Default 90.
    allowed_error
        JPEG-LS near-lossless NEAR parameter (gdcmconv ``-e``). Default 2.
    rate
        JPEG 2000 lossy compression ratios, one per quality layer, decreasing
        (gdcmconv ``--rate``). Default ``(10.0,)`` when neither rate nor psnr is given.
    psnr
        JPEG 2000 lossy peak signal-to-noise ratios in dB, increasing (gdcmconv ``-q``
        with ``--j2k``).
    remove_private_tags, remove_retired, remove_group_length
        gdcmconv ``--remove-private-tags``, ``--remove-retired``, ``--remove-gl``.
    check_meta
        Rebuild the File Meta Information from scratch (gdcmconv ``--check-meta``).
    generate_icon
        Add an Icon Image Sequence (0088,0200) made from the first frame.
    icon_minmax
        Window (min, max) mapped to 0..255 in the icon of a grayscale image.
    icon_auto_minmax
        Use the first frame's actual min and max for the icon window.
    planar_configuration
        0 (colour-by-pixel) or 1 (colour-by-plane); native targets only, since
        every encapsulated syntax we write is colour-by-pixel.
    split
        Write fragments of at most this many bytes (even, >= 2); not for RLE, whose
        frames are one fragment each by definition.
    photometric_interpretation
        Change the photometric interpretation where that is lossless:
        MONOCHROME1 <-> MONOCHROME2 (inverting the values), PALETTE COLOR -> RGB,
        YBR_FULL_422 -> YBR_FULL.
    root_uid
        Root for the new SOP Instance UID of lossy results (default pydicom's).
    verify
        Decode the result and check it: bit-identical pixels for lossless targets,
        decodable for lossy ones. Costs one more decode.
    """

    force: bool = False
    quality: int | None = None
    allowed_error: int | None = None
    rate: tuple[float, ...] | None = None
    psnr: tuple[float, ...] | None = None
    remove_private_tags: bool = False
    remove_retired: bool = False
    remove_group_length: bool = False
    check_meta: bool = False
    generate_icon: bool = False
    icon_minmax: tuple[float, float] | None = None
    icon_auto_minmax: bool = False
    planar_configuration: int | None = None
    split: int | None = None
    photometric_interpretation: str | None = None
    root_uid: str | None = None
    verify: bool = False
