"""What the node does by itself: ingest triggers, study-stable, routes, the route scheduler.

The daemon makes one :class:`Automation` before it starts anything (so that a wrong
trigger or route stops it with ``file:line: trigger NAME: ...`` before it listens), starts
it once the job runner runs, and stops it before the runner::

    automation = Automation(settings)                       # checks; raises ConfigError
    await automation.start(index.engine, runner.queue)      # consumer, scheduler, stable
    automation.routes                                       # RouteService (admin API)
    await automation.stop()

Every node consumes the ingest outbox (rows are shared out with ``SKIP LOCKED``); only the
scheduler's leader runs the cron and the study-stable scan.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from config.model import Settings
from node.jobs.routes import RouteService, check_routes
from node.jobs.scheduler import RouteScheduler
from node.jobs.stable import StableChecker
from node.jobs.triggers import TriggerConsumer, check_triggers, stable_wanted
from storage.jobs import JobQueue

logger = logging.getLogger(__name__)


class Automation:
    """Triggers, study-stable, routes and the scheduler, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        *,
        poll: float = 1.0,
        leader_retry: float = 5.0,
    ) -> None:
        check_triggers(settings)
        check_routes(settings)
        self.settings = settings
        self.poll = poll
        self.leader_retry = leader_retry
        self.routes: RouteService | None = None
        self.consumer: TriggerConsumer | None = None
        self.stable: StableChecker | None = None
        self.scheduler: RouteScheduler | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, engine: Engine, queue: JobQueue) -> None:
        settings = self.settings
        self._stop.clear()
        self.routes = RouteService(settings, engine, queue)
        if settings.ingest_events_wanted:
            self.consumer = TriggerConsumer(settings, engine, queue)
            self._tasks.append(
                asyncio.create_task(self.consumer.run(self._stop, self.poll), name="triggers")
            )
        if not settings.routes and not stable_wanted(settings):
            return
        self.scheduler = RouteScheduler(
            settings, engine, self.routes, retry_interval=self.leader_retry
        )
        await self.scheduler.start()
        if stable_wanted(settings):
            self.stable = StableChecker(settings, engine, queue, self.routes)
            scheduler = self.scheduler
            self._tasks.append(
                asyncio.create_task(
                    self.stable.run(self._stop, self.poll, active=lambda: scheduler.leading),
                    name="study-stable",
                )
            )
        logger.info(
            "automation: %d trigger(s), %d route(s)", len(settings.triggers), len(settings.routes)
        )

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await task
            except Exception:  # noqa: BLE001 - stopping anyway
                logger.exception("automation: %s ended with an error", task.get_name())
        self._tasks.clear()
        if self.scheduler is not None:
            await self.scheduler.stop()


__all__ = ["Automation"]
