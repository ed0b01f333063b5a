"""The durable job queue: rows in the index database, claimed under a lease.

Why in the index database and not a broker: the jobs act on what the index holds, a job
submitted in the same transaction as the data it needs cannot be lost, and a PostgreSQL
index shared by several nodes makes the queue shared too.

A job's life::

    queued --claim--> running --succeed--> succeeded
      ^                  |  \\--fail(retry, attempts left)--> queued (after a backoff)
      |                  |   \\-fail(final / attempts used)-> failed
      |                  \\--cancel requested, runner stops--> cancelled
      \\-- lease expired (its node died): claimable again, as another attempt

Claiming is atomic on both databases: PostgreSQL selects ``FOR UPDATE SKIP LOCKED`` (two
nodes never take the same row and never wait on each other); SQLite takes the database's
write lock first (``BEGIN IMMEDIATE``), so the select-then-update is one step.

Errors::

    JobError
     +-- UnknownJob      no such job
     +-- LeaseLost       the caller no longer holds the job (expired and claimed elsewhere)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.db import is_sqlite
from storage.index import utcnow
from storage.models import Job

#: Every state a job can be in; the last three are final.
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class JobError(Exception):
    """Base of the queue's errors."""


class UnknownJob(JobError):
    """No job with that number."""


class LeaseLost(JobError):
    """The job is no longer leased to the caller (its lease expired, or it was cancelled)."""


@dataclass(frozen=True)
class JobView:
    """A snapshot of one job row, detached from any session."""

    pk: int
    kind: str
    params: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    progress_done: int
    progress_total: int
    result: dict[str, Any] | None
    error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    checkpoint: dict[str, Any] | None
    origin: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def as_json(self) -> dict[str, Any]:
        """The job as JSON-ready values (datetimes as ISO 8601 UTC with a ``Z``)."""
        out = asdict(self)
        for name, value in out.items():
            if isinstance(value, datetime):
                out[name] = value.isoformat(timespec="milliseconds") + "Z"
        return out


_COLUMNS = tuple(JobView.__dataclass_fields__)


def _view(job: Job) -> JobView:
    values = {name: getattr(job, name) for name in _COLUMNS}
    values["params"] = dict(values["params"] or {})
    values["cancel_requested"] = bool(values["cancel_requested"])
    return JobView(**values)


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delays: ``base * 2**(attempt-1)``, at most ``ceiling`` seconds."""

    base: float = 5.0
    ceiling: float = 3600.0

    def delay(self, attempt: int) -> float:
        return min(self.ceiling, self.base * (2 ** max(0, attempt - 1)))


class JobQueue:
    """Submit, claim, report on and finish jobs held in the ``jobs`` table."""

    def __init__(self, engine: Engine, backoff: Backoff | None = None) -> None:
        self.engine = engine
        self.backoff = backoff or Backoff()
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._sqlite = is_sqlite(engine)
        #: Called after a submission made through ``node.jobs.kinds.submit_job`` (once the
        #: caller's transaction commits): the daemon's runner claims at once, not at its
        #: next poll.
        self.on_submit: Callable[[], None] | None = None

    # -- submitting and reading ----------------------------------------------------------

    def submit(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        origin: str = "",
        max_attempts: int = 5,
        delay: float = 0.0,
        session: Session | None = None,
    ) -> int:
        """Queue a job; returns its number.

        Pass ``session`` to submit inside a caller's transaction (the job then exists
        exactly when the caller's other writes do).
        """
        now = utcnow()
        job = Job(
            kind=kind,
            params=dict(params or {}),
            state="queued",
            attempts=0,
            max_attempts=max(1, max_attempts),
            next_attempt_at=now + timedelta(seconds=delay),
            progress_done=0,
            progress_total=0,
            cancel_requested=False,
            origin=origin,
            created_at=now,
            updated_at=now,
        )
        if session is not None:
            session.add(job)
            session.flush()
            return int(job.pk)
        with self._write() as own, own.begin():
            own.add(job)
            own.flush()
            return int(job.pk)

    def get(self, pk: int) -> JobView:
        with self._read() as session:
            job = session.get(Job, pk)
            if job is None:
                raise UnknownJob(f"no job {pk}")
            return _view(job)

    def list(
        self,
        *,
        states: Collection[str] = (),
        kinds: Collection[str] = (),
        origin: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobView]:
        """Jobs, newest first, optionally filtered by state, kind and origin prefix."""
        stmt = select(Job).order_by(Job.pk.desc()).limit(limit).offset(offset)
        if states:
            stmt = stmt.where(Job.state.in_(list(states)))
        if kinds:
            stmt = stmt.where(Job.kind.in_(list(kinds)))
        if origin is not None:
            stmt = stmt.where(Job.origin.startswith(origin, autoescape=True))
        with self._read() as session:
            return [_view(job) for job in session.scalars(stmt)]

    def counts(self) -> dict[str, int]:
        """Number of jobs per state (every state present, zero when none)."""
        result = dict.fromkeys(STATES, 0)
        with self._read() as session:
            for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state)):
                result[state] = int(n)
        return result

    # -- the runner's side ---------------------------------------------------------------

    def claim(
        self,
        owner: str,
        *,
        kinds: Collection[str] | None = None,
        lease: float = 60.0,
    ) -> JobView | None:
        """Take the next due job (of ``kinds``, if given) under a lease; None when idle.

        A running job whose lease expired (its runner died) is due again and counts as a
        new attempt; one that used all its attempts that way is failed instead.
        """
        if kinds is not None and not kinds:
            return None
        while True:
            now = utcnow()
            stmt = select(Job).where(_due(now)).order_by(Job.next_attempt_at, Job.pk).limit(1)
            if kinds is not None:
                stmt = stmt.where(Job.kind.in_(list(kinds)))
            if not self._sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            with self._write() as session, session.begin():
                job = session.scalars(stmt).first()
                if job is None:
                    return None
                abandoned = job.state == "running"
                if job.cancel_requested:
                    _finish(job, "cancelled", now, error=job.error or "cancelled")
                    continue
                if abandoned and job.attempts >= job.max_attempts:
                    _finish(
                        job,
                        "failed",
                        now,
                        error=f"abandoned: its runner stopped {job.attempts} times "
                        f"(last owner {job.lease_owner})",
                    )
                    continue
                job.state = "running"
                job.attempts += 1
                job.lease_owner = owner
                job.lease_expires_at = now + timedelta(seconds=lease)
                job.started_at = job.started_at or now
                job.updated_at = now
                return _view(job)

    def any_due(self, kinds: Collection[str]) -> bool:
        """Is a job of ``kinds`` due?  A plain read: an idle runner asks this before it
        claims, as ``claim`` takes SQLite's write lock (to be atomic) and ingest would wait
        on it at every poll."""
        stmt = select(Job.pk).where(_due(utcnow()), Job.kind.in_(list(kinds))).limit(1)
        with self._read() as session:
            return session.scalar(stmt) is not None

    def heartbeat(
        self,
        pk: int,
        owner: str,
        *,
        lease: float = 60.0,
        done: int | None = None,
        total: int | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> bool:
        """Extend the lease and record progress; returns True when a cancel was requested.

        Raises ``LeaseLost`` when the job is no longer the caller's: the runner must stop
        without touching the job's results.
        """
        now = utcnow()
        values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease)}
        values["updated_at"] = now
        if done is not None:
            values["progress_done"] = done
        if total is not None:
            values["progress_total"] = total
        if checkpoint is not None:
            values["checkpoint"] = checkpoint
        with self._write() as session, session.begin():
            hit = session.execute(
                update(Job)
                .where(Job.pk == pk, Job.state == "running", Job.lease_owner == owner)
                .values(**values)
                .returning(Job.cancel_requested)
            ).first()
        if hit is None:
            raise LeaseLost(f"job {pk} is no longer leased to {owner}")
        return bool(hit[0])

    def succeed(self, pk: int, owner: str, result: dict[str, Any] | None = None) -> None:
        """Record success (and progress at 100%)."""
        with self._write() as session, session.begin():
            job = self._owned(session, pk, owner)
            job.progress_done = max(job.progress_done, job.progress_total)
            _finish(job, "succeeded", utcnow(), result=result or {})

    def fail(
        self,
        pk: int,
        owner: str,
        error: str,
        *,
        retry: bool = True,
        result: dict[str, Any] | None = None,
    ) -> JobView:
        """Record a failure: queued again after a backoff while attempts remain and
        ``retry`` is true, failed for good otherwise. Returns the job as it now is."""
        now = utcnow()
        with self._write() as session, session.begin():
            job = self._owned(session, pk, owner)
            job.error = error
            if result is not None:
                job.result = result
            if job.cancel_requested:
                _finish(job, "cancelled", now)
            elif retry and job.attempts < job.max_attempts:
                job.state = "queued"
                job.lease_owner = None
                job.lease_expires_at = None
                job.next_attempt_at = now + timedelta(seconds=self.backoff.delay(job.attempts))
                job.updated_at = now
            else:
                _finish(job, "failed", now)
            return _view(job)

    def cancelled(self, pk: int, owner: str, result: dict[str, Any] | None = None) -> None:
        """The runner stopped a job because a cancel was requested."""
        with self._write() as session, session.begin():
            job = self._owned(session, pk, owner)
            _finish(job, "cancelled", utcnow(), result=result, error=job.error or "cancelled")

    def release(self, pk: int, owner: str) -> None:
        """Give a running job back untouched (the runner is shutting down), as if its lease
        had expired but without using an attempt."""
        now = utcnow()
        with self._write() as session, session.begin():
            job = self._owned(session, pk, owner)
            job.state = "queued"
            job.attempts = max(0, job.attempts - 1)
            job.lease_owner = None
            job.lease_expires_at = None
            job.next_attempt_at = now
            job.updated_at = now

    # -- the admin's side ----------------------------------------------------------------

    def cancel(self, pk: int) -> JobView:
        """Cancel a queued job at once; ask a running one to stop at its next step."""
        now = utcnow()
        with self._write() as session, session.begin():
            job = session.get(Job, pk)
            if job is None:
                raise UnknownJob(f"no job {pk}")
            if job.state == "queued":
                _finish(job, "cancelled", now, error="cancelled")
            elif job.state == "running":
                job.cancel_requested = True
                job.updated_at = now
            return _view(job)

    def retry(self, pk: int) -> JobView:
        """Queue a failed or cancelled job again, with a fresh set of attempts."""
        now = utcnow()
        with self._write() as session, session.begin():
            job = session.get(Job, pk)
            if job is None:
                raise UnknownJob(f"no job {pk}")
            if job.state in ("failed", "cancelled"):
                job.state = "queued"
                job.attempts = 0
                job.cancel_requested = False
                job.error = None
                job.finished_at = None
                job.next_attempt_at = now
                job.updated_at = now
            return _view(job)

    def purge(self, pks: Sequence[int]) -> int:
        """Delete finished jobs (housekeeping); running or queued ones are kept."""
        with self._write() as session, session.begin():
            result = session.execute(
                delete(Job).where(Job.pk.in_(list(pks)), Job.state.in_(list(FINAL_STATES)))
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _owned(session: Session, pk: int, owner: str) -> Job:
        job = session.get(Job, pk, with_for_update=True)
        if job is None:
            raise UnknownJob(f"no job {pk}")
        if job.state != "running" or job.lease_owner != owner:
            raise LeaseLost(f"job {pk} is no longer leased to {owner}")
        return job


def _due(now: datetime) -> ColumnElement[bool]:
    """Claimable now: queued and due, or running under an expired lease (its runner died)."""
    return or_(
        and_(Job.state == "queued", Job.next_attempt_at <= now),
        and_(Job.state == "running", Job.lease_expires_at < now),
    )


def _finish(
    job: Job,
    state: str,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    job.state = state
    job.lease_owner = None
    job.lease_expires_at = None
    job.finished_at = now
    job.updated_at = now
    if result is not None:
        job.result = result
    if error is not None:
        job.error = error


__all__ = [
    "FINAL_STATES",
    "STATES",
    "Backoff",
    "JobError",
    "JobQueue",
    "JobView",
    "LeaseLost",
    "UnknownJob",
]
