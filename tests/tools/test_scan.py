"""``node.tools.scan``: values of a few tags over a directory tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.tools.scan import BadTag, files_under, parse_tag, scan, summarize


def test_parse_tag_forms() -> None:
    for text in ("0010,0020", "10,20", "(0010,0020)", "00100020", "PatientID"):
        assert parse_tag(text) == 0x00100020
    with pytest.raises(BadTag):
        parse_tag("NotAKeyword")


def test_scan_and_summary(corpus_dir: Path, tmp_path: Path) -> None:
    root = corpus_dir / "dcm_qa_nih/In/20180918Si"
    files = files_under(root, recursive=True)
    assert len(files) == 8 and files_under(root, recursive=False) == []
    junk = tmp_path / "notes.txt"
    junk.write_text("not dicom")
    seen: list[int] = []
    tags = [parse_tag("PatientID"), parse_tag("SeriesInstanceUID"), parse_tag("0009,1099")]
    rows = list(scan([*files, junk], tags, on_progress=seen.append))
    assert seen == list(range(1, 10))
    assert [r.readable for r in rows] == [True] * 8 + [False]
    summary = summarize(rows, tags)
    assert summary[0x00100020] == {"DEV": 8}
    assert len(summary[0x0020000E]) == 4 and sum(summary[0x0020000E].values()) == 8
    assert not summary[0x00091099]
