"""``storage.group_commit``: writes queued while another commits share the next transaction.

Each write must end committed or failed on its own (a failing write rolls back alone), a
failed commit must fail every write it held, and nobody returns before the commit that
holds their write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import Connection, Engine, text

from storage.db import create_index_engine
from storage.group_commit import GroupCommit
from storage.header import extract
from storage.index import Index
from storage.migrate import upgrade
from tests.services.helpers import make_ct


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'g.sqlite'}")  # BEGIN, savepoints
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _values(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT v FROM t ORDER BY v"))]


def _insert(value: int, fail: bool = False):  # noqa: ANN202 - a write for GroupCommit.run
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        if fail:
            raise ValueError(f"write {value} fails after its statement")
        return value

    return work


def _queue_behind_the_lock(group: GroupCommit, writes: dict[int, object]) -> dict[int, object]:
    """Start one thread per write while the test holds the lock; release once all queued."""
    outcomes: dict[int, object] = {}

    def run(key: int, work: object) -> None:
        try:
            outcomes[key] = group.run(work)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[key] = exc

    with group.lock:
        threads = [threading.Thread(target=run, args=item) for item in writes.items()]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(group._queued) < len(writes) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert outcomes == {}  # nobody returned while the lock was held
    for thread in threads:
        thread.join(10)
    return outcomes


def test_writes_queued_behind_a_commit_share_the_next_one(engine: Engine) -> None:
    group = GroupCommit(threading.Lock(), engine.begin)
    outcomes = _queue_behind_the_lock(group, {n: _insert(n) for n in range(4)})
    assert outcomes == {0: 0, 1: 1, 2: 2, 3: 3}
    assert group.last_batch == 4
    assert _values(engine) == [0, 1, 2, 3]


def test_a_failing_write_rolls_back_alone(engine: Engine) -> None:
    group = GroupCommit(threading.Lock(), engine.begin)
    outcomes = _queue_behind_the_lock(
        group, {1: _insert(1), 2: _insert(2, fail=True), 3: _insert(3)}
    )
    assert outcomes[1] == 1 and outcomes[3] == 3
    assert isinstance(outcomes[2], ValueError)
    assert _values(engine) == [1, 3]


def test_a_failed_commit_fails_every_write_it_held(engine: Engine) -> None:
    @contextmanager
    def failing_begin() -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.begin()
            yield conn
            conn.rollback()
            raise OSError("disk I/O error at commit")

    group = GroupCommit(threading.Lock(), failing_begin)
    outcomes = _queue_behind_the_lock(group, {1: _insert(1), 2: _insert(2)})
    assert all(isinstance(o, OSError) for o in outcomes.values())
    assert _values(engine) == []


def test_concurrent_ingest_records_every_instance_once(tmp_path: Path) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade(engine)
    index = Index(engine)
    study, series = generate_uid(), generate_uid()
    records = [
        extract(make_ct(study_uid=study, series_uid=series), "1.2.840.10008.1.2.1")
        for _ in range(60)
    ]
    batches: list[int] = []
    errors: list[BaseException] = []

    def send(share: list) -> None:
        for rec in share:
            try:
                index.record("A", rec, f"x/{rec.sop_instance_uid}.dcm", 100)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            batches.append(index._group.last_batch)  # type: ignore[union-attr]

    threads = [threading.Thread(target=send, args=(records[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert index.counts("A") == {"patients": 1, "studies": 1, "series": 1, "instances": 60}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT total_bytes FROM studies")).scalar() == 6000
    engine.dispose()
