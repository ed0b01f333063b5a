"""Encoded C-FIND responses: byte for byte what pydicom writes of ``build_response``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.uid import generate_uid

from storage import query
from storage.db import create_index_engine
from storage.header import extract
from storage.index import Index
from storage.migrate import upgrade
from tests.services.helpers import make_ct

STUDY_KEYS: dict[str, Any] = {
    "StudyInstanceUID": "",
    "StudyDate": "",
    "StudyTime": "",
    "AccessionNumber": "",
    "PatientName": "",
    "PatientID": "",
    "StudyDescription": "",
    "ModalitiesInStudy": "",
    "NumberOfStudyRelatedInstances": "",
    "NumberOfStudyRelatedSeries": "",
    "RetrieveAETitle": "",
    "InstanceAvailability": "",
    "ReferringPhysicianName": "",
    "StudyID": "",
}


@pytest.fixture
def index(index_url: str) -> Iterator[Index]:
    engine = create_index_engine(index_url)
    upgrade(engine)
    index = Index(engine)
    study = generate_uid()
    plain = make_ct("PID1", "DOE^JOHN", study, study_date="20240102", study_time="101500")
    plain.StudyDescription = "CHEST"  # odd length: padded
    plain.ReferringPhysicianName = "WHO^DR=ideo=phon"
    plain.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    plain.SliceThickness = "1.25"
    plain.WindowCenter = ["40", "-600"]
    plain.AccessionNumber = "A\\B"  # two values
    plain.StudyID = ""
    second = make_ct("PID1", "DOE^JOHN", study, modality="MR", study_date="20240102")
    for keyword in ("StudyDescription", "ReferringPhysicianName", "AccessionNumber", "StudyID"):
        setattr(second, keyword, plain[keyword].value)  # the study row keeps the last one's
    latin = make_ct("PID2", "Müller^Jérôme", generate_uid(), charset="ISO_IR 100")
    latin.StudyDescription = "Schädel"
    for ds in (plain, second, latin):
        rec = extract(ds, "1.2.840.10008.1.2.1")
        index.record("A", rec, f"xx/{ds.SOPInstanceUID}.dcm", 100, calling_ae_title="SCU")
    yield index
    engine.dispose()


def _identifier(level: str, keys: dict[str, Any]) -> query.Query:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return query.parse_identifier(ds, query.STUDY_ROOT)


def _both(
    index: Index, parsed: query.Query, implicit_vr: bool, charsets: list[str]
) -> list[tuple[bytes, bytes]]:
    with index.read_session() as session:
        expected = [
            query.encode_dataset(ds, implicit_vr)
            for ds in query.responses(session, "A", parsed, "NODE", charsets)
        ]
        got = list(query.encoded_responses(session, "A", parsed, "NODE", charsets, implicit_vr))
    assert len(got) == len(expected)
    return list(zip(got, expected, strict=True))


@pytest.mark.parametrize("implicit_vr", [True, False])
@pytest.mark.parametrize(
    "level, keys",
    [
        ("STUDY", STUDY_KEYS),
        ("STUDY", {**STUDY_KEYS, "SpecificCharacterSet": "ISO_IR 100"}),
        ("STUDY", {"PatientName": "DOE*", "StudyDescription": ""}),
        (
            "SERIES",
            {
                "SeriesInstanceUID": "",
                "Modality": "",
                "SeriesNumber": "",
                "NumberOfSeriesRelatedInstances": "",
                "PatientName": "",
            },
        ),
        (
            "IMAGE",
            {
                "SOPInstanceUID": "",
                "InstanceNumber": "",
                "ImageType": "",
                "SliceThickness": "",
                "WindowCenter": "",
                "Rows": None,  # US: not encoded here, pydicom's path
                "PixelSpacing": "",
            },
        ),
    ],
)
def test_encoded_responses_are_what_pydicom_writes(
    index: Index, level: str, keys: dict[str, Any], implicit_vr: bool
) -> None:
    for got, expected in _both(index, _identifier(level, keys), implicit_vr, ["ISO_IR 6"]):
        assert got == expected


def test_non_ascii_answers_carry_their_character_set(index: Index) -> None:
    parsed = _identifier("STUDY", {**STUDY_KEYS, "PatientID": "PID2"})
    [(got, expected)] = _both(index, parsed, True, ["ISO_IR 100"])
    assert got == expected
    ds = read_dataset(DicomBytesIO(got), True, True)
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    ds.decode()
    assert str(ds.PatientName) == "Müller^Jérôme"


def test_plain_answer_decodes_to_the_stored_values(index: Index) -> None:
    parsed = _identifier("STUDY", {**STUDY_KEYS, "PatientID": "PID1"})
    [(got, _)] = _both(index, parsed, False, [])
    ds = read_dataset(DicomBytesIO(got), False, True)
    assert ds.QueryRetrieveLevel == "STUDY"
    assert ds.AccessionNumber == ["A", "B"]
    assert ds.ModalitiesInStudy == ["CT", "MR"]
    assert ds.NumberOfStudyRelatedInstances == 2
    assert ds.RetrieveAETitle == "NODE"
    assert str(ds.ReferringPhysicianName) == "WHO^DR=ideo=phon"
    assert "SpecificCharacterSet" not in ds
