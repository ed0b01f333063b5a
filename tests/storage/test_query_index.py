"""C-FIND on a real index (SQLite and PostgreSQL): prefix ranges, plans, computed keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import event

from storage import query
from storage.db import create_index_engine
from storage.header import extract
from storage.index import Index
from storage.migrate import upgrade
from tests.services.helpers import make_ct


@pytest.fixture
def index(index_url: str) -> Iterator[Index]:
    engine = create_index_engine(index_url)
    upgrade(engine)
    yield Index(engine)
    engine.dispose()


def record(index: Index, ds: Dataset, ae: str = "A") -> None:
    rec = extract(ds, "1.2.840.10008.1.2.1")
    index.record(ae, rec, f"xx/{ds.SOPInstanceUID}.dcm", 100, calling_ae_title="SCU")


def find(index: Index, level: str = "STUDY", ae: str = "A", **keys: Any) -> list[Dataset]:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    parsed = query.parse_identifier(identifier, query.STUDY_ROOT)
    with index.read_session() as session:
        return list(query.responses(session, ae, parsed, ae))


@pytest.mark.parametrize(
    "prefix, upper",
    [
        ("DOE", "DOF"),
        ("A^", "A_"),
        ("Z\U0010ffff", "["),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
    ],
)
def test_prefix_upper_bound(prefix: str, upper: str | None) -> None:
    assert query._prefix_upper_bound(prefix) == upper


def test_pn_prefix_matches_case_insensitively_and_beyond_ascii(index: Index) -> None:
    for pid, name in (
        ("P1", "Doe^John"),
        ("P2", "DOE^JANE"),
        ("P3", "DOES^ANN"),
        ("P4", "DOF^X"),
        ("P5", "Müller^Jörg"),
        ("P6", "MUELLER^HANS"),
        ("P7", "Yamada^Tarou=山田^太郎"),
    ):
        record(index, make_ct(pid, name, charset="ISO_IR 192"))
    ids = lambda rs: sorted(str(r.PatientID) for r in rs)  # noqa: E731
    assert ids(find(index, PatientName="doe*", PatientID="")) == ["P1", "P2", "P3"]
    assert ids(find(index, PatientName="DOE^*", PatientID="")) == ["P1", "P2"]
    assert ids(find(index, PatientName="D?E^J*", PatientID="")) == ["P1", "P2"]
    assert ids(find(index, PatientName="mü*", PatientID="")) == ["P5"]
    assert ids(find(index, PatientName="YAMADA*", PatientID="")) == ["P7"]
    assert ids(find(index, PatientName="*^J*", PatientID="")) == ["P1", "P2", "P5"]


def test_description_prefix_is_case_sensitive(index: Index) -> None:
    ds = make_ct("P1")
    ds.SeriesDescription = "AX 1.0"
    record(index, ds)
    other = make_ct("P1", study_uid=ds.StudyInstanceUID)
    other.SeriesDescription = "ax lower"
    record(index, other)
    found = find(index, "SERIES", SeriesDescription="AX*", StudyInstanceUID=ds.StudyInstanceUID)
    assert [str(r.SeriesDescription) for r in found] == ["AX 1.0"]


def test_computed_keys_come_with_each_match(index: Index) -> None:
    study = generate_uid()
    series = [generate_uid(), generate_uid()]
    for _ in range(3):
        record(index, make_ct("P1", study_uid=study, series_uid=series[0], modality="CT"))
    record(index, make_ct("P1", study_uid=study, series_uid=series[1], modality="MR"))
    record(index, make_ct("P2", modality="US"))
    [response] = find(
        index,
        PatientID="P1",
        ModalitiesInStudy="",
        NumberOfStudyRelatedInstances="",
        NumberOfStudyRelatedSeries="",
        NumberOfPatientRelatedStudies="",
        SOPClassesInStudy="",
        NumberOfSeriesRelatedInstances="",
        RetrieveAETitle="",
    )
    assert list(response.ModalitiesInStudy) == ["CT", "MR"]
    assert response.NumberOfStudyRelatedInstances == 4
    assert response.NumberOfStudyRelatedSeries == 2
    assert response.NumberOfPatientRelatedStudies == 1
    assert response.SOPClassesInStudy == "1.2.840.10008.5.1.4.1.1.2"
    assert response.NumberOfSeriesRelatedInstances is None  # below the study level: empty
    assert response.RetrieveAETitle == "A"
    series_rows = find(index, "SERIES", StudyInstanceUID=study, NumberOfSeriesRelatedInstances="")
    assert sorted(int(r.NumberOfSeriesRelatedInstances) for r in series_rows) == [1, 3]


def test_empty_return_keys_are_empty_strings(index: Index) -> None:
    record(index, make_ct("P1"))
    [response] = find(index, PatientID="P1", PatientComments="", PatientName="")
    assert response.PatientComments == ""
    assert str(response.PatientName) == "DOE^JOHN"
    assert response.QueryRetrieveLevel == "STUDY"


def _plans(index: Index, **keys: Any) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of the statements a study-level C-FIND runs."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(index.engine, "before_cursor_execute", capture)
    try:
        find(index, **{"PatientName": "", "PatientID": "", **keys})
    finally:
        event.remove(index.engine, "before_cursor_execute", capture)
    plans = []
    with index.engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters in statements:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append("\n".join(str(row[-1]) for row in cursor.fetchall()))
    return plans


def test_sqlite_plans_start_from_the_key_index(index: Index) -> None:
    if index.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner")
    for n in range(30):
        record(index, make_ct(f"P{n}", f"NAME{n:03d}^X"))
    [by_id] = _plans(index, PatientID="P3")
    assert by_id.splitlines()[0].startswith("SEARCH patients USING INDEX sqlite_autoindex")
    assert "SEARCH studies USING INDEX ix_studies_patient" in by_id
    [by_name] = _plans(index, PatientName="NAME01*")
    assert "ix_patients_name_key (ae_title=? AND patient_name_key>? AND patient_name_key<?)" in (
        by_name
    )
    [by_date] = _plans(index, StudyDate="20240101-20240131")
    assert "SEARCH studies USING INDEX ix_studies_date" in by_date
    for plan in (by_id, by_name, by_date):
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", "")


def test_other_ae_titles_are_not_seen(index: Index) -> None:
    record(index, make_ct("P1", "DOE^A"), ae="A")
    record(index, make_ct("P1", "DOE^B"), ae="B")
    assert [str(r.PatientName) for r in find(index, ae="B", PatientName="DOE*")] == ["DOE^B"]
    found = find(index, ae="A", PatientID="P1", PatientName="")
    assert [str(r.PatientName) for r in found] == ["DOE^A"]
    assert len(find(index, ae="A", StudyDate="20240101-")) == 1


def test_answers_larger_than_a_page_come_whole_and_in_order(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query, "PAGE_ROWS", 3)
    for n in range(8):
        record(index, make_ct(f"P{n}", f"DOE^{n}"))
    record(index, make_ct("X", "ROE^X"))
    names = [str(r.PatientName) for r in find(index, PatientName="DOE*")]
    assert names == [f"DOE^{n}" for n in range(8)]
    assert len(find(index, PatientName="", StudyDate="")) == 9
    assert len(find(index, PatientName="*^3")) == 1  # python-side filter across pages
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM studies" in statement:
            statements.append(statement)

    event.listen(index.engine, "before_cursor_execute", count)
    try:
        assert len(find(index, StudyDate="")) == 9
    finally:
        event.remove(index.engine, "before_cursor_execute", count)
    # PostgreSQL reads keyset pages; SQLite one statement as it goes (no re-sort per page)
    assert len(statements) == (4 if index.engine.dialect.name == "postgresql" else 1)
