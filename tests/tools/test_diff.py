"""``node.tools.diff``: element-level differences, nested paths, meta on request."""

from __future__ import annotations

import copy
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from node.tools.diff import diff_datasets, format_difference
from node.tools.dump import read_dataset


def _ds() -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "123"
    item = Dataset()
    item.CodeValue = "A"
    ds.ConceptNameCodeSequence = Sequence([item])
    return ds


def test_identical_datasets_have_no_difference() -> None:
    assert diff_datasets(_ds(), _ds()) == []


def test_changed_added_removed_and_nested() -> None:
    a, b = _ds(), _ds()
    b.PatientName = "DOE^JANE"
    del b.PatientID
    b.StudyDescription = "new"
    b.ConceptNameCodeSequence[0].CodeValue = "B"
    found = {(d.tag, d.kind) for d in diff_datasets(a, b)}
    assert found == {
        (0x00100010, "value"),
        (0x00100020, "only_a"),
        (0x00081030, "only_b"),
        (0x00080100, "value"),
    }
    nested = next(d for d in diff_datasets(a, b) if d.tag == 0x00080100)
    assert nested.path == ((0x0040A043, 0),)
    assert nested.location == "(0040,A043)[0].(0008,0100)"
    assert format_difference(nested) == "! (0040,A043)[0].(0008,0100) CodeValue: 'A' != 'B'"


def test_padding_is_not_a_difference_but_item_count_is() -> None:
    a, b = _ds(), _ds()
    b.PatientID = "123 "
    assert diff_datasets(a, b) == []
    b.ConceptNameCodeSequence.append(Dataset())
    assert [d.kind for d in diff_datasets(a, b)] == ["items"]


def test_truncate_and_meta(corpus_dir: Path) -> None:
    a = read_dataset(corpus_dir / "cornerstone-wado/testImages/CT1_J2KR")
    b = copy.deepcopy(a)
    b.file_meta.ImplementationVersionName = "OTHER"
    b.AdditionalPatientHistory = "x" * 100
    assert all(d.tag >> 16 != 2 for d in diff_datasets(a, b))
    with_meta = diff_datasets(a, b, meta=True)
    assert any(d.tag == 0x00020013 for d in with_meta)
    line = format_difference(next(d for d in with_meta if d.tag == 0x001021B0), truncate=10)
    assert line == "! (0010,21B0) AdditionalPatientHistory: '' != 'xxxxxxxxxx...'"
