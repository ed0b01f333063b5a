"""The job queue on SQLite and PostgreSQL: claiming, leases, retries, cancel, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from storage.db import create_index_engine
from storage.index import utcnow
from storage.jobs import Backoff, JobQueue, LeaseLost, UnknownJob
from storage.migrate import upgrade
from storage.models import Job


@pytest.fixture
def engine(index_url: str) -> Iterator[Engine]:
    engine = create_index_engine(index_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def queue(engine: Engine) -> JobQueue:
    return JobQueue(engine, Backoff(base=0.2, ceiling=1.0))


def _expire_lease(engine: Engine, pk: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Job).where(Job.pk == pk).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_submit_claim_succeed(queue: JobQueue) -> None:
    pk = queue.submit("render", {"study": "1.2.3"}, origin="api")
    job = queue.get(pk)
    assert (job.state, job.kind, job.params, job.origin) == (
        "queued",
        "render",
        {"study": "1.2.3"},
        "api",
    )

    claimed = queue.claim("runner-a", lease=30)
    assert claimed is not None and claimed.pk == pk
    assert (claimed.state, claimed.attempts, claimed.lease_owner) == ("running", 1, "runner-a")
    assert queue.claim("runner-b") is None  # nothing else is due

    assert queue.heartbeat(pk, "runner-a", done=3, total=10, checkpoint={"sent": ["x"]}) is False
    job = queue.get(pk)
    assert (job.progress_done, job.progress_total, job.checkpoint) == (3, 10, {"sent": ["x"]})

    queue.succeed(pk, "runner-a", {"files": 10})
    job = queue.get(pk)
    assert (job.state, job.result, job.progress_done, job.lease_owner) == (
        "succeeded",
        {"files": 10},
        10,
        None,
    )
    assert job.finished_at is not None and job.final
    assert job.as_json()["finished_at"].endswith("Z")


def test_claim_respects_kinds_and_order(queue: JobQueue) -> None:
    first = queue.submit("convert")
    second = queue.submit("render")
    assert queue.claim("r", kinds=[]) is None
    got = queue.claim("r", kinds=["render"])
    assert got is not None and got.pk == second
    got = queue.claim("r", kinds=["render", "convert"])
    assert got is not None and got.pk == first


def test_delayed_job_is_not_due_yet(queue: JobQueue) -> None:
    queue.submit("forward", delay=60)
    assert queue.claim("r") is None


def test_failure_retries_with_backoff_then_fails(queue: JobQueue) -> None:
    pk = queue.submit("forward", max_attempts=2)
    assert queue.claim("r") is not None
    job = queue.fail(pk, "r", "peer down")
    assert job.state == "queued" and job.error == "peer down"
    assert job.next_attempt_at > utcnow()  # backoff: not due at once
    assert queue.claim("r") is None
    time.sleep(0.3)
    again = queue.claim("r")
    assert again is not None and again.attempts == 2
    job = queue.fail(pk, "r", "peer still down")
    assert (job.state, job.error) == ("failed", "peer still down")
    assert queue.retry(pk).state == "queued"
    assert queue.get(pk).attempts == 0


def test_final_failure_does_not_retry(queue: JobQueue) -> None:
    pk = queue.submit("convert")
    queue.claim("r")
    assert queue.fail(pk, "r", "cannot decode", retry=False).state == "failed"


def test_expired_lease_is_claimed_again_and_old_owner_is_refused(
    queue: JobQueue, engine: Engine
) -> None:
    pk = queue.submit("export", max_attempts=3)
    queue.claim("dead-node")
    _expire_lease(engine, pk)
    taken = queue.claim("live-node")
    assert taken is not None and taken.pk == pk and taken.attempts == 2
    with pytest.raises(LeaseLost):
        queue.heartbeat(pk, "dead-node")
    with pytest.raises(LeaseLost):
        queue.succeed(pk, "dead-node")
    queue.succeed(pk, "live-node")
    assert queue.get(pk).state == "succeeded"


def test_job_abandoned_too_often_fails(queue: JobQueue, engine: Engine) -> None:
    pk = queue.submit("render", max_attempts=1)
    queue.claim("a")
    _expire_lease(engine, pk)
    assert queue.claim("b") is None
    job = queue.get(pk)
    assert job.state == "failed" and "abandoned" in (job.error or "")


def test_cancel_queued_and_running(queue: JobQueue) -> None:
    queued = queue.submit("render")
    running = queue.submit("render")
    assert queue.cancel(queued).state == "cancelled"
    claimed = queue.claim("r")
    assert claimed is not None and claimed.pk == running
    assert queue.cancel(running).state == "running"
    assert queue.heartbeat(running, "r") is True  # the runner learns it must stop
    queue.cancelled(running, "r", {"done": 1})
    job = queue.get(running)
    assert job.state == "cancelled" and job.result == {"done": 1}
    with pytest.raises(UnknownJob):
        queue.cancel(999_999)


def test_release_gives_the_job_back_without_using_an_attempt(queue: JobQueue) -> None:
    pk = queue.submit("convert")
    queue.claim("r")
    queue.release(pk, "r")
    job = queue.get(pk)
    assert (job.state, job.attempts, job.lease_owner) == ("queued", 0, None)


def test_list_counts_purge(queue: JobQueue) -> None:
    a = queue.submit("render", origin="trigger:thumbs")
    b = queue.submit("forward", origin="route:research")
    queue.cancel(a)
    assert [j.pk for j in queue.list()] == [b, a]
    assert [j.pk for j in queue.list(states=["cancelled"])] == [a]
    assert [j.pk for j in queue.list(kinds=["forward"])] == [b]
    assert [j.pk for j in queue.list(origin="route:")] == [b]
    counts = queue.counts()
    assert counts["queued"] == 1 and counts["cancelled"] == 1 and counts["running"] == 0
    assert queue.purge([a, b]) == 1  # the queued one stays
    assert [j.pk for j in queue.list()] == [b]


def test_concurrent_claimers_never_share_a_job(queue: JobQueue) -> None:
    pks = {queue.submit("render") for _ in range(40)}
    taken: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := queue.claim(name)) is not None:
            with lock:
                taken.append(job.pk)
            queue.succeed(job.pk, name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(pks)  # each exactly once
    assert queue.counts()["succeeded"] == 40


def test_any_due_agrees_with_claim(queue: JobQueue, engine: Engine) -> None:
    assert not queue.any_due(["render"])
    queue.submit("render", delay=60)
    assert not queue.any_due(["render"])
    pk = queue.submit("render")
    assert queue.any_due(["render"]) and not queue.any_due(["convert"])
    queue.claim("r")
    assert not queue.any_due(["render"])
    _expire_lease(engine, pk)
    assert queue.any_due(["render"])  # an abandoned job is due again
