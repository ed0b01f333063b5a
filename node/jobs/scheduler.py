"""The route scheduler: APScheduler's cron on the daemon's loop, run by one node only.

Why one node: APScheduler 3's job store must not be shared by several running schedulers
(each would run every job).  The nodes sharing a PostgreSQL index elect a leader with a
session-level advisory lock (``pg_try_advisory_lock``) taken on a dedicated connection and
held while leading; the others retry every ``retry_interval`` seconds, so when the leader
goes away (its connection closes, with the process or the network) another takes over
within that time.  On SQLite the index has one node: it always leads.

The leader runs an ``AsyncIOScheduler`` whose ``SQLAlchemyJobStore`` is the
``apscheduler_jobs`` table of the index (created by migration 0002).  At each take-over the
cron jobs are synced with the RouteTable: a job per route with a ``Schedule`` (id
``route:NAME``), kept as stored when its cron expression did not change (so a run missed
while no node led still happens, once: ``coalesce``), replaced when it did, removed when
the route is gone.  A cron job calls :meth:`RouteService.run` with reason ``schedule``.

The leader also runs the study-stable scan (``node.jobs.stable``): see ``leading``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection, Engine, select, text

from config.model import Settings
from node.jobs.routes import RouteService, UnknownRoute
from storage.db import is_sqlite
from storage.models import apscheduler_jobs

logger = logging.getLogger(__name__)


def lock_key(schema: str) -> int:
    """The advisory lock key of the route scheduler of the index in ``schema``.

    Advisory locks are per database; the schema is part of the key so that indexes in two
    schemas of one database (test runs, say) elect their leaders apart.
    """
    digest = hashlib.sha256(f"dicom-node route scheduler:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big") - (1 << 63)


JOB_PREFIX = "route:"

#: The scheduler leading in this process (the cron jobs, loaded from the shared store,
#: reach their RouteService through it).
_leader: RouteScheduler | None = None


def scheduled_run(name: str, cron: str | None = None) -> None:
    """What a cron job calls (in APScheduler's thread pool): run the route."""
    leader = _leader
    if leader is None:
        logger.warning("route %s: cron fired with no leading scheduler here; skipped", name)
        return
    try:
        result = leader.service.run(name, reason="schedule")
    except UnknownRoute:
        logger.warning("route %s: no longer in the RouteTable; its cron job is removed", name)
        leader.remove_job(name)
        return
    except Exception:  # noqa: BLE001 - logged; the next cron run tries again
        logger.exception("route %s: scheduled run failed", name)
        return
    leader.runs.append((name, result.get("run")))


class RouteScheduler:
    """Leader election plus APScheduler's cron for the scheduled routes.

    Parameters
    ----------
    settings
        The node's settings (``routes``).
    engine
        The index database: job store and advisory lock.
    service
        What the cron jobs run.
    retry_interval
        Seconds between a follower's attempts to lead (and the leader's connection checks).
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        service: RouteService,
        *,
        retry_interval: float = 5.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.service = service
        self.retry_interval = retry_interval
        self.scheduler: AsyncIOScheduler | None = None
        self._conn: Connection | None = None
        self._key = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._sqlite = is_sqlite(engine)
        #: ``(route, run pk)`` of the cron runs done here (for tests and the admin API).
        self.runs: list[tuple[str, Any]] = []
        service.next_run_time = self.next_run_time

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start competing for leadership (returns at once; a task keeps trying)."""
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="route-scheduler")

    async def stop(self) -> None:
        """Stop the cron (if leading) and release the lock for another node to take."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._step_down()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.leading:
                    if await asyncio.to_thread(self._acquire):
                        await self._take_over()
                elif not await asyncio.to_thread(self._still_holding):
                    logger.warning("route scheduler: lost the database connection; stepping down")
                    await self._step_down()
            except Exception:  # noqa: BLE001 - a database outage must not end the loop
                logger.exception("route scheduler: leadership check failed")
                await self._step_down()
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.retry_interval)
            except TimeoutError:
                pass

    # -- the lock ----------------------------------------------------------------------------

    def _acquire(self) -> bool:
        if self._sqlite:
            return True
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = str(conn.execute(text("SELECT current_schema()")).scalar() or "")
            self._key = lock_key(schema)
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
            )
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _still_holding(self) -> bool:
        if self._sqlite:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means the session (and lock) is gone
            return False

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        except Exception:  # noqa: BLE001 - closing the session releases it anyway
            pass
        finally:
            try:
                conn.invalidate()  # never back to the pool with a lock possibly held
            finally:
                conn.close()

    # -- leading -----------------------------------------------------------------------------

    async def _take_over(self) -> None:
        global _leader
        scheduler = AsyncIOScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.engine, tablename="apscheduler_jobs")
            },
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.start(paused=True)
        try:
            self._sync(scheduler)
        except Exception:
            scheduler.shutdown(wait=False)
            raise
        self.scheduler = scheduler
        _leader = self
        scheduler.resume()
        logger.info(
            "route scheduler: leading (%d scheduled route(s))",
            sum(1 for r in self.settings.routes if r.schedule),
        )

    def _sync(self, scheduler: AsyncIOScheduler) -> None:
        wanted = {JOB_PREFIX + r.name: r for r in self.settings.routes if r.schedule}
        for job in scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                logger.info("route scheduler: removing %s (no longer scheduled)", job.id)
                job.remove()
        for job_id, route in wanted.items():
            existing = scheduler.get_job(job_id)
            if existing is not None and existing.kwargs.get("cron") == route.schedule:
                continue
            assert route.schedule is not None
            scheduler.add_job(
                scheduled_run,
                CronTrigger.from_crontab(route.schedule, timezone=UTC),
                id=job_id,
                name=f"route {route.name}",
                args=[route.name],
                kwargs={"cron": route.schedule},
                replace_existing=True,
            )

    async def _step_down(self) -> None:
        global _leader
        scheduler, self.scheduler = self.scheduler, None
        if _leader is self:
            _leader = None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            logger.info("route scheduler: no longer leading")
        await asyncio.to_thread(self._release)

    def remove_job(self, name: str) -> None:
        scheduler = self.scheduler
        if scheduler is not None and scheduler.get_job(JOB_PREFIX + name) is not None:
            scheduler.remove_job(JOB_PREFIX + name)

    def next_run_time(self, name: str) -> datetime | None:
        """When the cron runs ``name`` next (None: not scheduled).

        A follower reads it from the shared job store's table (the leader keeps it there).
        """
        scheduler = self.scheduler
        if scheduler is None:
            try:
                with self.engine.connect() as conn:
                    stamp = conn.execute(
                        select(apscheduler_jobs.c.next_run_time).where(
                            apscheduler_jobs.c.id == JOB_PREFIX + name
                        )
                    ).scalar()
            except Exception:  # noqa: BLE001 - informative only
                return None
            if stamp is None:
                return None
            return datetime.fromtimestamp(float(stamp), UTC).replace(tzinfo=None)
        job = scheduler.get_job(JOB_PREFIX + name)
        when = getattr(job, "next_run_time", None) if job is not None else None
        return when.astimezone(UTC).replace(tzinfo=None) if when is not None else None

    def run_due_now(self, name: str) -> None:
        """Move a scheduled route's next run to now (tests; an admin's "run on schedule")."""
        scheduler = self.scheduler
        if scheduler is None:
            raise RuntimeError("not leading")
        scheduler.modify_job(JOB_PREFIX + name, next_run_time=datetime.now(UTC))


__all__ = ["JOB_PREFIX", "RouteScheduler", "lock_key", "scheduled_run"]
