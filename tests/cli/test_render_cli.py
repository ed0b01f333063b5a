"""``node-ctl render`` from the command line: formats, VOI flags, frames, sizes, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from node.cli.main import main
from tests.tools.test_render import RAMP, grey


def _file(path: Path, ds: Dataset) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_formats_and_voi_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _file(tmp_path / "in.dcm", grey(RAMP, WindowCenter=[2048, 100], WindowWidth=[4096, 50]))
    for name, mode in (("a.png", "L"), ("a.jpg", "L"), ("a.pgm", "L")):
        assert main(["render", str(src), str(tmp_path / name)]) == 0
        assert Image.open(tmp_path / name).mode == mode
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "a.pgm")
    first = np.asarray(Image.open(tmp_path / "a.png"))
    assert main(["render", "+Wi", "2", str(src), str(tmp_path / "w2.png")]) == 0
    second = np.asarray(Image.open(tmp_path / "w2.png"))
    assert (second == 255).sum() > (first == 255).sum()  # window 2 (100/50) is narrower
    assert main(["render", "+Ww", "2048", "4096", str(src), str(tmp_path / "ww.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ww.png")), first)
    args = ["--window-center", "2048", "--window-width", "4096"]
    assert main(["render", *args, str(src), str(tmp_path / "wc.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "wc.png")), first)
    for flag in (["+Wm"], ["+Wh", "5"], ["-W"], ["-M", "+Wm"]):
        assert main(["render", *flag, str(src), str(tmp_path / "f.png")]) == 0
    assert main(["render", "--16bit", str(src), str(tmp_path / "w16.png")]) == 0
    assert Image.open(tmp_path / "w16.png").mode.startswith("I")
    assert main(["render", "--quality", "20", str(src), str(tmp_path / "q.jpg")]) == 0


def test_frames_and_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _file(tmp_path / "mf.dcm", grey(np.stack([RAMP, RAMP.T]), WindowCenter=9, WindowWidth=9))
    assert main(["render", str(src), str(tmp_path / "fr%02d.png")]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "fr01.png"),
        str(tmp_path / "fr02.png"),
    ]
    assert main(["render", "+F", "2", "--scale", "64x", str(src), str(tmp_path / "two.png")]) == 0
    assert Image.open(tmp_path / "two.png").size == (64, 64)
    assert main(["render", "--max-size", "8", "+F", "1", str(src), str(tmp_path / "s.ppm")]) == 0
    assert Image.open(tmp_path / "s.ppm").size == (8, 8)


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _file(tmp_path / "in.dcm", grey(RAMP))
    cases = [
        (["render", str(src), str(tmp_path / "x.bmp")], "unknown output extension"),
        (["render", "--16bit", str(src), str(tmp_path / "x.jpg")], "16-bit"),
        (["render", "+F", "3", str(src), str(tmp_path / "x.png")], "frame 3"),
        (["render", "+Wi", "1", str(src), str(tmp_path / "x.png")], "window 1 requested"),
        (["render", str(tmp_path / "nope.dcm"), str(tmp_path / "x.png")], "no such file"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["render", "--window-center", "1", str(src), str(tmp_path / "x.png")]) == 2
    no_pixels = Dataset()
    no_pixels.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    no_pixels.SOPInstanceUID = "1.2.3"
    sr = tmp_path / "sr.dcm"
    no_pixels.save_as(sr, implicit_vr=True, little_endian=True)
    result = subprocess.run(
        [sys.executable, "-m", "node.cli.main", "render", str(sr), str(tmp_path / "sr.png")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no Pixel Data" in result.stderr
