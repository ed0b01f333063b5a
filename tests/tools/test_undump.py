"""``node.tools.undump`` against DCMTK ``dump2dcm``, and dump -> undump round trips."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from node.tools.diff import diff_datasets
from node.tools.dump import dump, read_dataset
from node.tools.undump import ShortenedValue, UndumpError, undump, write_file

QUERY = """\
# a study-level query, as findscu users write them
(0008,0052) CS [STUDY]
(0010,0010) PN [DOE*]
(0020,000d) UI
(0008,0061) CS [CT\\MR]                     #  6, 2 ModalitiesInStudy
(0028,0010) US 512
(0008,1110) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=1)
    (0008,1150) UI =CTImageStorage
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
"""


@pytest.mark.interop
def test_same_file_as_dump2dcm(tmp_path: Path, require_binary: Callable[[str], str]) -> None:
    dump2dcm = require_binary("dump2dcm")
    text = tmp_path / "q.txt"
    text.write_text(QUERY)
    theirs = tmp_path / "theirs.dcm"
    subprocess.run([dump2dcm, "-q", str(text), str(theirs)], check=True)
    ours = tmp_path / "ours.dcm"
    write_file(undump(QUERY), ours)
    assert diff_datasets(pydicom.dcmread(theirs), pydicom.dcmread(ours)) == []
    ds = pydicom.dcmread(ours)
    assert ds.ReferencedStudySequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert ds.Rows == 512


@pytest.mark.parametrize(
    "name",
    [
        "cornerstone-wado/testImages/CT1_J2KR",  # private tags, sequences, encapsulated
        "pydicom-wheel/pydicom/data/test_files/rtplan.dcm",  # deep sequences
        "pydicom-wheel/pydicom/data/test_files/MR_small.dcm",  # native pixels
    ],
)
def test_dump_then_undump_gives_the_same_dataset(
    name: str, corpus_dir: Path, tmp_path: Path
) -> None:
    original = read_dataset(corpus_dir / name)
    rebuilt = undump(dump(original, meta=True, width=None))
    path = tmp_path / "rebuilt.dcm"
    write_file(rebuilt, path)
    again = pydicom.dcmread(path)
    differences = [d for d in diff_datasets(original, again, meta=True) if d.tag & 0xFFFF]
    assert differences == []  # group lengths aside, which pydicom does not write


def test_errors_name_the_line() -> None:
    with pytest.raises(ShortenedValue, match="line 2"):
        undump("(0010,0010) PN [A]\n(7fe0,0010) OW 0000\\0001\\...\n")
    with pytest.raises(UndumpError, match="line 1"):
        undump("(zzzz,0010) PN [A]\n")
    with pytest.raises(UndumpError, match="unterminated"):
        undump("(0008,1110) SQ (Sequence)\n(fffe,e000) na (Item)\n")
