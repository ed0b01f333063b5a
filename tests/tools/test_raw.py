"""``node.tools.raw`` against ``gdcmraw``: the same bytes, the same fragment files."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from node.tools.dump import read_dataset
from node.tools.raw import NoSuchElement, NotEncapsulated, element_value, write_raw

J2K = "cornerstone-wado/testImages/CT1_J2KR"
NATIVE = "cornerstone-wado/testImages/CTImage.dcm"


@pytest.mark.interop
@pytest.mark.parametrize("name", [J2K, NATIVE])
def test_pixel_data_bytes_equal_gdcmraw(
    name: str, corpus_dir: Path, tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    gdcmraw = require_binary("gdcmraw")
    theirs = tmp_path / "theirs.raw"
    subprocess.run([gdcmraw, "-i", str(corpus_dir / name), "-o", str(theirs)], check=True)
    ours = write_raw(read_dataset(corpus_dir / name), tmp_path / "ours.raw")
    assert ours == [tmp_path / "ours.raw"]
    assert ours[0].read_bytes() == theirs.read_bytes()


@pytest.mark.interop
def test_split_fragments_like_gdcmraw(
    corpus_dir: Path, tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    gdcmraw = require_binary("gdcmraw")
    subprocess.run(
        [gdcmraw, "-i", str(corpus_dir / J2K), "-o", str(tmp_path / "g"), "-S", "-p", "%02d.j2k"],
        check=True,
    )
    written = write_raw(
        read_dataset(corpus_dir / J2K), tmp_path / "n", split=True, pattern="%02d.j2k"
    )
    theirs = sorted(tmp_path.glob("g*.j2k"))
    assert [p.name for p in written] == ["n00.j2k", "n01.j2k", "n02.j2k"]
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in theirs]


@pytest.mark.interop
def test_other_element_is_written_as_stored(
    corpus_dir: Path, tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    gdcmraw = require_binary("gdcmraw")
    theirs = tmp_path / "pn.txt"
    subprocess.run(
        [gdcmraw, "-i", str(corpus_dir / J2K), "-o", str(theirs), "-t", "10,10"], check=True
    )
    assert element_value(read_dataset(corpus_dir / J2K), 0x00100010) == theirs.read_bytes()


def test_errors_are_typed(corpus_dir: Path, tmp_path: Path) -> None:
    native = read_dataset(corpus_dir / NATIVE)
    with pytest.raises(NotEncapsulated):
        write_raw(native, tmp_path / "x", split=True)
    with pytest.raises(NoSuchElement):
        element_value(native, 0x00091099)
