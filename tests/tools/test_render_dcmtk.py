"""Rendering compared with DCMTK ``dcmj2pnm`` on the shared corpus, and the whole corpus.

``test_matches_dcmtk``: a representative sample (one DCMTK process per file) covering every
photometric interpretation, bit depth (1, 8, 12, 14, 16, 32), signed and unsigned data, each
Modality LUT kind (none, integer and non-integer rescale, LUT sequence), each VOI kind (file
window, n-th window, explicit window, VOI LUT, min-max, histogram, none), MONOCHROME1 with and
without Presentation LUT Shape INVERSE, palettes in both byte orders, planar configuration 1,
multi-frame (one automatic window over all frames, as ``+Fa``), overlays and 16-bit output.
Each case is identical to DCMTK's 8-bit (or 16-bit) output, or at least 45 dB PSNR where a
decoder or a colour conversion rounds differently (JPEG lossy: IJG 6b in DCMTK vs libjpeg in
pylibjpeg; YBR to RGB).  The measured figures for the whole corpus are in docs/render.md.

``test_every_decodable_file_renders``: every corpus file pydicom decodes renders (frame 1,
thumbnail size) and encodes as PNG, in one process.
"""

from __future__ import annotations

import math
import re
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from node.tools.render import RenderOptions, encode_image, read_for_render, render

#: (corpus path, our options, dcmj2pnm arguments, minimum PSNR; inf = identical)
CASES: list[tuple[str, dict[str, object], list[str], float]] = [
    # greyscale, window from the file, rescale -1024 (16 bits signed)
    ("cornerstone-wado/testImages/CTImage.dcm", {"window": 1}, ["+Wi", "1"], math.inf),
    # 16 bits stored 12, non-integer rescale (3.774114): DCMTK truncates modality values
    ("pydicom-data/data_store/data/MR2_UNCI.dcm", {"window": 1}, ["+Wi", "1"], math.inf),
    ("pydicom-data/data_store/data/MR2_UNCI.dcm", {"histogram": 5.0}, ["+Wh", "5"], 60.0),
    # 14 bits signed, explicit window
    (
        "pydicom-data/data_store/data/693_UNCI.dcm",
        {"center": 500.0, "width": 1500.0},
        ["+Ww", "500", "1500"],
        math.inf,
    ),
    # MONOCHROME1 with rescale 0.684/200; MONOCHROME1 + Presentation LUT Shape INVERSE (8 bits)
    (
        "pydicom-wheel/pydicom/data/test_files/dicomdirtests/77654033/CR1/6154",
        {"window": 1},
        ["+Wi", "1"],
        math.inf,
    ),  # fmt: skip
    ("highdicom/data/test_files/dx_image.dcm", {"window": 1}, ["+Wi", "1"], math.inf),
    ("highdicom/data/test_files/dx_image.dcm", {"no_voi": True}, [], math.inf),
    # Modality LUT Sequence (signed), VOI LUT Sequence, second window of two
    ("pydicom-data/data_store/data/mlut_18.dcm", {"minmax": True}, ["+Wm"], math.inf),
    ("pydicom-data/data_store/data/vlut_04.dcm", {"voi_lut": 1}, ["+Wl", "1"], math.inf),
    (
        "pydicom-data/data_store/data/MR-SIEMENS-DICOM-WithOverlays.dcm",
        {"window": 2},
        ["+Wi", "2"],
        math.inf,
    ),  # fmt: skip
    # overlays burned in (DCMTK "replace" mode, foreground 1.0)
    (
        "pydicom-wheel/pydicom/data/test_files/examples_overlay.dcm",
        {"window": 1, "overlays": True},
        ["+Wi", "1"],
        math.inf,
    ),  # fmt: skip
    # 8 bits, 1 bit (min-max, and histogram falling back to no VOI), 32 bits (RT dose)
    ("pydicom-wheel/pydicom/data/charset_files/chrArab.dcm", {"minmax": True}, ["+Wm"], math.inf),
    ("highdicom/data/test_files/seg_image_cr_binary.dcm", {"minmax": True}, ["+Wm"], math.inf),
    (
        "highdicom/data/test_files/seg_image_cr_binary.dcm",
        {"histogram": 5.0},
        ["+Wh", "5"],
        math.inf,
    ),  # fmt: skip
    (
        "pydicom-wheel/pydicom/data/test_files/rtdose_1frame.dcm",
        {"minmax": True},
        ["+Wm"],
        math.inf,
    ),  # fmt: skip
    # multi-frame: one min-max window over all frames; big endian; RLE
    ("pydicom-data/data_store/data/emri_small.dcm", {"minmax": True}, ["+Wm"], math.inf),
    (
        "pydicom-data/data_store/data/emri_small_big_endian.dcm",
        {"histogram": 5.0},
        ["+Wh", "5"],
        math.inf,
    ),  # fmt: skip
    ("pydicom-data/data_store/data/emri_small_RLE.dcm", {"minmax": True}, ["+Wm"], math.inf),
    # 16-bit output (DCMTK's 16-bit ASCII PNM, +opw), greyscale and colour
    (
        "cornerstone-wado/testImages/CTImage.dcm",
        {"window": 1, "bits16": True},
        ["+Wi", "1", "+opw"],
        math.inf,
    ),  # fmt: skip
    ("pydicom-data/data_store/data/color-pl.dcm", {"bits16": True}, ["+opw"], math.inf),
    # colour: RGB 8 and 16 bits, planar configuration 1, palettes (both byte orders, RLE)
    ("deid-data-wheel/deid_data/data/ultrasounds/RGB_IMAGE.dcm", {}, [], math.inf),
    ("pydicom-data/data_store/data/SC_rgb_16bit_2frame.dcm", {}, [], math.inf),
    ("pydicom-data/data_store/data/color-pl.dcm", {}, [], math.inf),
    ("pydicom-data/data_store/data/OBXXXX1A.dcm", {}, [], math.inf),
    ("pydicom-data/data_store/data/OBXXXX1A_expb.dcm", {}, [], math.inf),
    ("cornerstone-wado/testImages/no-pixel-spacing.dcm", {}, [], math.inf),
    # YBR: DCMTK's conversion rounds differently (measured 51-55 dB)
    ("pydicom-data/data_store/data/SC_ybr_full_uncompressed.dcm", {}, [], 45.0),
    ("cornerstone-wado/testImages/US-YBR_FULL_422-EVRLE.dcm", {}, [], 45.0),
    # JPEG lossy: two JPEG decoders (measured 59 dB)
    (
        "cornerstone-wado/testImages/CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm",
        {"window": 1},
        ["+Wi", "1"],
        45.0,
    ),  # fmt: skip
]


def _ascii_pnm(path: Path) -> np.ndarray:
    """DCMTK's 16-bit ASCII PGM/PPM (P2/P3)."""
    tokens = re.sub(r"#.*", "", path.read_text()).split()
    magic, width, height = tokens[0], int(tokens[1]), int(tokens[2])
    values = np.array(tokens[4:], dtype=np.uint16)
    return values.reshape(height, width, 3) if magic == "P3" else values.reshape(height, width)


def psnr(ours: np.ndarray, theirs: np.ndarray) -> float:
    peak = 65535.0 if ours.dtype == np.uint16 else 255.0
    mse = float(np.mean((ours.astype(np.float64) - theirs.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("name", "options", "dcmtk_args", "minimum"),
    CASES,
    ids=[f"{Path(c[0]).name}-{'-'.join(c[2]) or 'default'}" for c in CASES],
)
def test_matches_dcmtk(
    name: str,
    options: dict[str, object],
    dcmtk_args: list[str],
    minimum: float,
    corpus_dir: Path,
    tmp_path: Path,
    require_binary: Callable[[str], str],
) -> None:
    source = corpus_dir / name
    overlays = ["+O", "0"] if options.get("overlays") else ["-O"]  # DCMTK draws them by default
    suffix = "pnm"
    result = subprocess.run(
        [
            require_binary("dcmj2pnm"),
            "+Fa",
            *overlays,
            *dcmtk_args,
            str(source),
            str(tmp_path / f"o.{suffix}"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    theirs = sorted(tmp_path.glob(f"o.{suffix}.*"), key=lambda p: int(p.name.split(".")[2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frames = render(read_for_render(source), RenderOptions(**options))  # type: ignore[arg-type]
    assert len(frames) == len(theirs) > 0
    for frame, reference in zip(frames, theirs, strict=True):
        expected = (
            _ascii_pnm(reference) if options.get("bits16") else np.asarray(Image.open(reference))
        )
        assert frame.image.shape == expected.shape
        measured = psnr(frame.image, expected)
        if minimum == math.inf:
            assert measured == math.inf, f"frame {frame.index + 1}: {measured:.1f} dB"
        else:
            assert measured >= minimum, f"frame {frame.index + 1}: {measured:.1f} dB"


def test_every_decodable_file_renders(
    corpus_dir: Path, corpus_manifest: list[dict[str, str]]
) -> None:
    decodable = [row for row in corpus_manifest if row["pixel_decode_pydicom"].startswith("ok")]
    assert len(decodable) > 900
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in decodable:
            try:
                frames = render(
                    read_for_render(corpus_dir / row["path"]), RenderOptions(frame=1, max_size=256)
                )
                assert len(frames) == 1
                png = encode_image(frames[0].image, "PNG")
                assert png.startswith(b"\x89PNG")
            except Exception as exc:  # collect them all, then fail once
                failures.append(f"{row['path']}: {type(exc).__name__}: {exc}")
    assert failures == []
