"""``storage.header.extract`` remembers element conversions: the record must not change.

The reference below is ``extract`` as it was before the memo: every element converted by
pydicom and turned into DICOM JSON, columns read with ``Dataset.get``.  Every readable file
of the shared corpus is extracted twice (the second time mostly from the memo) and compared
with it, as are the cases where the same bytes must convert differently.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

from storage import header
from storage.header import LEVELS, HeaderError, element_json, extract, level_of_keyword


def _reference_text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _reference_attrs(ds: Dataset) -> dict[str, dict[str, Any]]:
    attrs: dict[str, dict[str, Any]] = {level: {} for level in LEVELS}
    for elem in ds:
        if elem.tag.group == 0x0002 or elem.tag.is_private or elem.tag.element == 0:
            continue
        as_json = element_json(elem)
        if as_json is not None:
            level = level_of_keyword(elem.keyword) if elem.keyword else "IMAGE"
            attrs[level][f"{int(elem.tag):08X}"] = as_json
    return attrs


def _read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - unreadable corpus files are not this test's subject
            return None


def _check(path: Path) -> bool:
    """Extract ``path`` cold and warm; compare with the reference.  False: not indexable."""
    first, second, reference = _read(path), _read(path), _read(path)
    if first is None or second is None or reference is None:
        return False
    syntax = str(getattr(reference.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cold = extract(first, syntax)
    except HeaderError:
        return False
    except Exception:  # noqa: BLE001 - ingest refuses these (0xC000); nothing to compare
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = extract(second, syntax)
        expected_attrs = _reference_attrs(reference)
        for keyword, value in (
            ("sop_instance_uid", _reference_text(reference, "SOPInstanceUID").rstrip("\0 ")),
            ("study_instance_uid", _reference_text(reference, "StudyInstanceUID").rstrip("\0 ")),
        ):
            assert getattr(cold, keyword) == value, (path, keyword)
        assert cold.patient["patient_id"] == header.index_value(
            header.Patient.patient_id, _reference_text(reference, "PatientID")
        ), path
        assert cold.study["study_date"] == header.index_value(
            header.Study.study_date, _reference_text(reference, "StudyDate")
        ), path
    assert cold.attrs == expected_attrs, path
    assert warm.attrs == expected_attrs, path
    assert (warm.patient, warm.study, warm.series, warm.instance) == (
        cold.patient,
        cold.study,
        cold.series,
        cold.instance,
    ), path
    return True


def test_records_of_the_corpus_are_those_of_a_full_conversion(
    corpus_manifest: list[dict[str, str]], corpus_dir: Path
) -> None:
    checked = sum(_check(corpus_dir / row["path"]) for row in corpus_manifest)
    assert checked > 900  # nearly every corpus file is indexable


def _encoded(ds: Dataset, implicit: bool) -> Dataset:
    """``ds`` written and read back: its elements raw, as a received header's are."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return read_dataset(DicomBytesIO(fp.getvalue()), implicit, True)


def _minimal(**values: Any) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.5"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_the_same_name_bytes_in_another_character_set_convert_again() -> None:
    raw_name = "Buc^Jérôme".encode("latin-1")
    latin = _minimal(SpecificCharacterSet="ISO_IR 100")
    latin.add_new(0x00100010, "PN", raw_name)
    cyrillic = _minimal(SpecificCharacterSet="ISO_IR 144")
    cyrillic.add_new(0x00100010, "PN", raw_name)
    one = extract(_encoded(latin, implicit=False), "1.2.840.10008.1.2.1")
    two = extract(_encoded(cyrillic, implicit=False), "1.2.840.10008.1.2.1")
    assert one.patient["patient_name"] == "Buc^Jérôme"
    assert two.patient["patient_name"] != one.patient["patient_name"]
    assert two.attrs["PATIENT"]["00100010"] != one.attrs["PATIENT"]["00100010"]


def test_an_ambiguous_implicit_vr_value_follows_its_dataset() -> None:
    """SmallestImagePixelValue is US or SS after PixelRepresentation: never memoised."""
    records = []
    for representation in (0, 1):
        ds = _minimal(PixelRepresentation=representation)
        ds.add_new(
            0x00280106, "US" if representation == 0 else "SS", -1 if representation else 65535
        )
        records.append(extract(_encoded(ds, implicit=True), "1.2.840.10008.1.2"))
    values = [r.attrs["IMAGE"]["00280106"] for r in records]
    assert values[0]["Value"] == [65535]
    assert values[1]["Value"] == [-1]


@pytest.mark.parametrize("implicit", [False, True])
def test_a_missing_uid_is_still_refused_after_a_hit(implicit: bool) -> None:
    ds = _minimal()
    extract(_encoded(ds, implicit), "1.2.840.10008.1.2.1")
    del ds.SeriesInstanceUID
    with pytest.raises(HeaderError, match="SeriesInstanceUID missing"):
        extract(_encoded(ds, implicit), "1.2.840.10008.1.2.1")
