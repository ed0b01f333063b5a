"""The index on SQLite and PostgreSQL: migrations, record/replace/prune, quotas, queries."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import inspect

from config.model import Quota
from storage import query
from storage.db import create_index_engine
from storage.header import extract
from storage.index import Index, QuotaExceededError
from storage.migrate import alembic_config, current_revision, upgrade
from tests.services.helpers import make_ct


@pytest.fixture
def index(index_url: str) -> Index:
    engine = create_index_engine(index_url)
    upgrade(engine)
    yield Index(engine)
    engine.dispose()


def record(index: Index, ds: Dataset, ae: str = "A", size: int = 100, quota=None):
    rec = extract(ds, "1.2.840.10008.1.2.1")
    return index.record(
        ae,
        rec,
        f"xx/{ds.StudyInstanceUID}/{ds.SOPInstanceUID}.dcm",
        size,
        calling_ae_title="SCU",
        quota=quota,
    )


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_upgrade_creates_schema_and_is_idempotent(index_url: str) -> None:
    engine = create_index_engine(index_url)
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"patients", "studies", "series", "instances", "jobs", "uid_maps"} <= tables
    engine.dispose()


def test_record_insert_and_counts(index: Index) -> None:
    a = make_ct("P1")
    record(index, a)
    record(index, make_ct("P1", study_uid=a.StudyInstanceUID, series_uid=a.SeriesInstanceUID))
    record(index, make_ct("P2"))
    assert index.counts("A") == {"patients": 2, "studies": 2, "series": 2, "instances": 3}
    assert index.counts("B")["instances"] == 0


def test_patients_keyed_by_id_and_issuer_not_name(index: Index) -> None:
    one = make_ct("SAME", "DOE^JOHN")
    two = make_ct("SAME", "DOE^JOHN")
    two.IssuerOfPatientID = "OTHER_HOSPITAL"
    three = make_ct("DIFFERENT", "DOE^JOHN")
    for ds in (one, two, three):
        record(index, ds)
    assert index.counts("A")["patients"] == 3


def test_replace_same_uid_keeps_one_row_and_reports_old_path(index: Index) -> None:
    ds = make_ct()
    record(index, ds)
    rec = extract(ds, "1.2.840.10008.1.2")
    outcome = index.record("A", rec, "new/path.dcm", 10)
    assert outcome.replaced
    assert outcome.files_to_delete == [f"xx/{ds.StudyInstanceUID}/{ds.SOPInstanceUID}.dcm"]
    [stored] = index.instances("A")
    assert stored.path == "new/path.dcm"
    assert stored.transfer_syntax_uid == "1.2.840.10008.1.2"


def test_same_uids_under_two_aes_are_separate_records(index: Index) -> None:
    ds = make_ct()
    record(index, ds, ae="A")
    record(index, ds, ae="B")
    assert index.counts("A")["instances"] == 1
    assert index.counts("B")["instances"] == 1


def test_delete_prunes_empty_levels(index: Index) -> None:
    ds = make_ct()
    record(index, ds)
    paths = index.delete_instances("A", [ds.SOPInstanceUID])
    assert len(paths) == 1
    assert index.counts("A") == {"patients": 0, "studies": 0, "series": 0, "instances": 0}


def test_quota_refuses_one_instance_larger_than_the_study_quota(index: Index) -> None:
    with pytest.raises(QuotaExceededError):
        record(index, make_ct(), size=2000, quota=Quota(max_studies=5, max_bytes_per_study=1000))
    assert index.counts("A")["instances"] == 0


def test_quota_max_studies_deletes_the_oldest(index: Index) -> None:
    quota = Quota(max_studies=2, max_bytes_per_study=10**6)
    first, second, third = make_ct("P1"), make_ct("P2"), make_ct("P3")
    record(index, first, quota=quota)
    record(index, second, quota=quota)
    outcome = record(index, third, quota=quota)
    assert len(outcome.files_to_delete) == 1
    assert first.SOPInstanceUID in outcome.files_to_delete[0]
    assert {i.study_instance_uid for i in index.instances("A")} == {
        second.StudyInstanceUID,
        third.StudyInstanceUID,
    }


def test_query_runs_the_same_on_both_backends(index: Index) -> None:
    record(index, make_ct("P1", "Müller^Jérôme", study_date="20240101", charset="ISO_IR 100"))
    record(index, make_ct("P2", "SMITH^ANN", study_date="20230101"))
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientName = "*JÉRÔME*".lower().replace("é", "é")
    identifier.StudyDate = "20231231-"
    parsed = query.parse_identifier(identifier, query.STUDY_ROOT)
    with index.read_session() as session:
        matches = list(query.run(session, "A", parsed))
        assert [m.patient.patient_id for m in matches] == ["P1"]
        response = query.build_response(session, parsed, matches[0], "A")
    assert str(response.PatientName) == "Müller^Jérôme"
    assert response.SpecificCharacterSet == "ISO_IR 192"


def test_header_levels_split_attributes(tmp_path: Path) -> None:
    ds = make_ct()
    ds.InstitutionName = "HOSPITAL"
    rec = extract(ds, "1.2.840.10008.1.2.1")
    assert "00100010" in rec.attrs["PATIENT"]
    assert "0020000D" in rec.attrs["STUDY"]
    assert "00080060" in rec.attrs["SERIES"] and "00080080" in rec.attrs["SERIES"]
    assert "00080018" in rec.attrs["IMAGE"] and "7FE00010" not in rec.attrs["IMAGE"]
