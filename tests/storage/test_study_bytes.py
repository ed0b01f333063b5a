"""``studies.total_bytes``: the byte count the per-study quota reads instead of a SUM.

After every kind of change to a study's instances (insert, replace with another size,
delete, an instance or a whole series moving to another study, quota deletions) the
column must equal the SUM of the study's instance sizes; the migration fills it for an
index that existed before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import text

from config.model import Quota
from storage.db import create_index_engine
from storage.header import extract
from storage.index import Index, RecordOutcome
from storage.migrate import upgrade
from tests.services.helpers import make_ct


@pytest.fixture
def index(index_url: str) -> Iterator[Index]:
    engine = create_index_engine(index_url)
    upgrade(engine)
    yield Index(engine)
    engine.dispose()


def _record(index: Index, size: int, quota: Quota | None = None, **uids: str) -> RecordOutcome:
    ds = make_ct(**uids)
    return index.record(
        "A",
        extract(ds, "1.2.840.10008.1.2.1"),
        f"xx/{ds.StudyInstanceUID}/{ds.SOPInstanceUID}.{generate_uid()[-8:]}.dcm",
        size,
        quota=quota,
    )


def _totals(index: Index) -> dict[str, tuple[int, int]]:
    """Study UID -> (total_bytes, SUM of its instances' sizes)."""
    with index.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT studies.study_instance_uid, studies.total_bytes, "
                "COALESCE((SELECT SUM(instances.size) FROM instances JOIN series "
                "ON instances.series_pk = series.pk WHERE series.study_pk = studies.pk), 0) "
                "FROM studies"
            )
        )
        return {uid: (int(kept), int(counted)) for uid, kept, counted in rows}


def _assert_counted(index: Index) -> dict[str, int]:
    totals = _totals(index)
    assert all(kept == counted for kept, counted in totals.values()), totals
    return {uid: kept for uid, (kept, _) in totals.items()}


def test_inserts_replacements_and_deletes_keep_the_count(index: Index) -> None:
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(3)]
    for n, sop in enumerate(sops):
        _record(index, 100 * (n + 1), study_uid=study, series_uid=series, sop_uid=sop)
    assert _assert_counted(index) == {study: 600}
    _record(index, 1000, study_uid=study, series_uid=series, sop_uid=sops[0])  # 100 -> 1000
    assert _assert_counted(index) == {study: 1500}
    index.delete_instances("A", [sops[1]])
    assert _assert_counted(index) == {study: 1300}


def test_an_instance_moving_to_another_study_moves_its_bytes(index: Index) -> None:
    first, second, sop = generate_uid(), generate_uid(), generate_uid()
    _record(index, 100, study_uid=first, series_uid=generate_uid())
    _record(index, 50, study_uid=first, series_uid=generate_uid(), sop_uid=sop)
    _record(index, 70, study_uid=second, series_uid=generate_uid(), sop_uid=sop)
    assert _assert_counted(index) == {first: 100, second: 70}


def test_a_series_moving_to_another_study_moves_its_bytes(index: Index) -> None:
    first, second, series = generate_uid(), generate_uid(), generate_uid()
    _record(index, 10, study_uid=first, series_uid=generate_uid())
    _record(index, 100, study_uid=first, series_uid=series)
    _record(index, 200, study_uid=first, series_uid=series)
    _record(index, 300, study_uid=second, series_uid=series)  # the series now says: second
    assert _assert_counted(index) == {first: 10, second: 600}


def test_the_byte_quota_deletes_the_oldest_images_of_the_study(index: Index) -> None:
    quota = Quota(max_studies=10, max_bytes_per_study=1000)
    study, series = generate_uid(), generate_uid()
    first = generate_uid()
    _record(index, 400, quota, study_uid=study, series_uid=series, sop_uid=first)
    _record(index, 400, quota, study_uid=study, series_uid=series)
    outcome = _record(index, 400, quota, study_uid=study, series_uid=series)
    assert len(outcome.files_to_delete) == 1 and first in outcome.files_to_delete[0]
    assert _assert_counted(index) == {study: 800}
    assert first not in {i.sop_instance_uid for i in index.instances("A")}


def test_the_migration_counts_an_existing_index(index: Index) -> None:
    study = generate_uid()
    for size in (100, 200, 300):
        _record(index, size, study_uid=study, series_uid=generate_uid())
    upgrade(index.engine, "0003")  # an index from before the column: it goes...
    upgrade(index.engine)  # ...and comes back counted
    assert _assert_counted(index) == {study: 600}
