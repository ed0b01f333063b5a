"""Study-stable: a study that got no instance for ``StudyStableSeconds`` fires its rules.

As Orthanc's ``OnStableStudy`` and storescp's ``--eostudy-timeout``: once per change.  A
study's version is its ``studies.updated_at`` (set on every instance received); its
``StableMark`` remembers the version it last fired for.  The ingest consumer
(``node.jobs.triggers``) gives each study that receives an instance a mark (pending, when
new), so this scan looks only at studies that changed while the node had rules: an
archive of old studies does not all fire when the first stable rule is configured.

A pass takes the studies whose version is newer than their mark and older than the cutoff,
and for each: moves the mark to that version (a conditional update, so two nodes cannot
both fire it), submits the jobs of the ``stable`` triggers that match the study (one
instance matching every key), and runs the routes with ``Trigger = stable`` for the
studies of their source AE, all in one transaction: exactly once per change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from config.model import Settings
from node.jobs.kinds import InvalidJobParams, submit_job
from node.jobs.routes import RouteService
from node.jobs.triggers import Rule, check_triggers
from storage.index import utcnow
from storage.jobs import JobQueue
from storage.routes import fire_mark, forget_deleted_marks, stable_studies

logger = logging.getLogger(__name__)


class StableChecker:
    """Finds stable studies and fires what waits for them; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        queue: JobQueue | None = None,
        routes: RouteService | None = None,
        *,
        batch: int = 200,
    ) -> None:
        self.settings = settings
        self.queue = queue or JobQueue(engine)
        self.routes = routes or RouteService(settings, engine, self.queue)
        self.rules: list[Rule] = [
            r for r in check_triggers(settings) if r.trigger.event == "stable"
        ]
        self.stable_routes = [r for r in settings.routes if r.trigger == "stable"]
        self.batch = batch
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        #: Studies fired so far: ``(ae, study uid, version)``.
        self.fired: list[tuple[str, str, datetime]] = []

    def check_once(self, now: datetime | None = None) -> int:
        """One pass; returns the number of studies that fired."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.settings.study_stable_seconds)
        total = 0
        while True:
            with self._write() as session, session.begin():
                studies = stable_studies(session, cutoff, self.batch)
                fired = []
                for study in studies:
                    if fire_mark(session, study, now):
                        fired.append(study)
                by_route: dict[str, list[str]] = defaultdict(list)
                for study in fired:
                    for rule in self.rules:
                        if not rule.matcher.study_matches(
                            session, study.ae_title, study.study_instance_uid
                        ):
                            continue
                        params = rule.job_params(
                            {"ae": study.ae_title, "studies": [study.study_instance_uid]}
                        )
                        try:
                            pk = submit_job(
                                self.queue,
                                self.settings,
                                rule.kind,
                                params,
                                rule.origin,
                                session=session,
                            )
                        except InvalidJobParams as exc:
                            logger.error("trigger %s: not submitted: %s", rule.name, exc)
                            continue
                        logger.info(
                            "trigger %s: study %s stable: job %d",
                            rule.name,
                            study.study_instance_uid,
                            pk,
                        )
                    for route in self.stable_routes:
                        if route.source == study.ae_title:
                            by_route[route.name].append(study.study_instance_uid)
                for name, uids in by_route.items():
                    self.routes.run(name, reason="stable", studies=uids, session=session)
            self.fired += [(s.ae_title, s.study_instance_uid, s.updated_at) for s in fired]
            total += len(fired)
            if len(studies) < self.batch:
                return total

    def forget_deleted(self) -> int:
        """Housekeeping: drop marks of studies that are gone."""
        with self._write() as session, session.begin():
            return forget_deleted_marks(session)

    async def run(
        self,
        stop: asyncio.Event,
        interval: float = 1.0,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """A pass every ``interval`` seconds while ``active()`` (the scheduler's leader)."""
        passes = 0
        while not stop.is_set():
            if active():
                try:
                    await asyncio.to_thread(self.check_once)
                    passes += 1
                    if passes % 3600 == 0:
                        await asyncio.to_thread(self.forget_deleted)
                except Exception:  # noqa: BLE001 - the loop must survive a database outage
                    logger.exception("study-stable: pass failed; retrying")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass


__all__ = ["StableChecker"]
