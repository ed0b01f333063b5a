"""Ingest triggers: jobs submitted for the instances that match a TriggerTable rule.

Why an outbox and not the in-process event: ``Index.record`` writes an ``ingest_events``
row in the same transaction as the instance (when the node has triggers), so nothing is
lost when the node stops between the C-STORE-RSP and the trigger, and ingest workers need
no channel to this process.  The consumer takes a batch of rows (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several nodes share the work), evaluates every ``ingest`` rule
against each instance (joined to its series, study and patient rows), submits one job per
rule and AE for the instances that matched, and deletes the rows, all in one transaction:
each event causes its jobs exactly once, restarts and crashes included.  The same pass
marks the studies as changing for the study-stable scan (``node.jobs.stable``).

Job command lines (``Job = render --size 128``) are parsed and checked at start-up
(:func:`check_triggers`): a wrong one stops the node with the trigger's name and line.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.errors import ConfigError
from config.model import Settings, TriggerEntry
from node.jobs.kinds import InvalidJobParams, parse_job_args, submit_job, validate_job
from storage.db import is_sqlite
from storage.index import utcnow
from storage.jobs import JobQueue
from storage.routes import Event, Matcher, delete_events, mark_changing, take_events

logger = logging.getLogger(__name__)

#: Selection flags a trigger's job must not carry: the trigger selects.
_SELECTION_FLAGS = ("--ae", "--study", "--series", "--instance", "--image")


@dataclass(frozen=True)
class Rule:
    """A trigger ready to evaluate: its matcher and its job's parameters (no selection)."""

    trigger: TriggerEntry
    matcher: Matcher
    kind: str
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return self.trigger.name

    @property
    def origin(self) -> str:
        return f"trigger:{self.trigger.name}"

    def job_params(self, selection: dict[str, Any]) -> dict[str, Any]:
        return {**self.params, **selection, "trigger": self.trigger.name}


def compile_rule(settings: Settings, trigger: TriggerEntry) -> Rule:
    """Parse and check a trigger's job; ``ConfigError`` (file:line, trigger name) if wrong."""

    def fail(message: str) -> ConfigError:
        return ConfigError(settings.config_path, trigger.line, f"trigger {trigger.name}: {message}")

    kind, *argv = trigger.job
    for word in argv:
        if word.split("=", 1)[0] in _SELECTION_FLAGS:
            raise fail(f"Job: {word.split('=', 1)[0]} is not allowed: the trigger selects")
    try:
        params = parse_job_args(kind, argv)
        for key in ("ae", "studies", "series", "instances"):
            params.pop(key, None)
        probe = {"ae": settings.ae_table[0].title if settings.ae_table else None}
        selection = (
            {"studies": ["1.2.3"]} if trigger.event == "stable" else {"instances": ["1.2.3"]}
        )
        validate_job(kind, {**params, **probe, **selection}, settings)
    except InvalidJobParams as exc:
        raise fail(f"Job {' '.join(trigger.job)!r}: {exc}") from None
    return Rule(trigger, Matcher(trigger.match), kind, params)


def check_triggers(settings: Settings) -> list[Rule]:
    """Every trigger compiled (the node's start-up check)."""
    return [compile_rule(settings, trigger) for trigger in settings.triggers]


def stable_wanted(settings: Settings) -> bool:
    """Does anything fire when a study becomes stable (a rule or a route)?"""
    return any(t.event == "stable" for t in settings.triggers) or any(
        r.trigger == "stable" for r in settings.routes
    )


class TriggerConsumer:
    """Consumes the ingest outbox in batches; see the module's docstring.

    Parameters
    ----------
    settings
        The node's settings (``triggers``).
    engine
        The index database.
    queue
        Where jobs go (the runner's queue, so that it wakes up at once).
    batch
        Events handled per transaction.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        queue: JobQueue | None = None,
        *,
        batch: int = 500,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.queue = queue or JobQueue(engine)
        self.batch = batch
        self.rules = [r for r in check_triggers(settings) if r.trigger.event == "ingest"]
        self.mark_studies = stable_wanted(settings)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._skip_locked = not is_sqlite(engine)
        self.handled = 0
        self.submitted = 0

    def consume_once(self) -> int:
        """Handle one batch in one transaction; returns the number of events handled."""
        with self._write() as session, session.begin():
            events = take_events(session, self.batch, skip_locked=self._skip_locked)
            if not events:
                return 0
            for rule in self.rules:
                self._apply(session, rule, events)
            if self.mark_studies:
                mark_changing(
                    session, ((e.ae_title, e.study_instance_uid) for e in events), utcnow()
                )
            delete_events(session, [e.pk for e in events])
        self.handled += len(events)
        return len(events)

    def _apply(self, session: Session, rule: Rule, events: list[Event]) -> None:
        by_ae: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            if rule.matcher.check_ae(event.ae_title, event.calling_ae_title):
                by_ae[event.ae_title].append(event)
        for ae_title, candidates in by_ae.items():
            uids = list(dict.fromkeys(e.sop_instance_uid for e in candidates))
            if not rule.matcher.ae_only():
                matched = rule.matcher.matching_instances(session, ae_title, uids)
                uids = [uid for uid in uids if uid in matched]
            if not uids:
                continue
            params = rule.job_params({"ae": ae_title, "instances": uids})
            try:
                pk = submit_job(
                    self.queue, self.settings, rule.kind, params, rule.origin, session=session
                )
            except InvalidJobParams as exc:
                # Checked at start-up; what remains is an instance the kind refuses (a UID
                # that breaks the syntax): say so and go on rather than block the outbox.
                logger.error(
                    "trigger %s: not submitted for %d instance(s): %s", rule.name, len(uids), exc
                )
                continue
            self.submitted += 1
            logger.info(
                "trigger %s: job %d for %d instance(s) of %s", rule.name, pk, len(uids), ae_title
            )

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Poll the outbox every ``interval`` seconds (at once while batches are full)."""
        while not stop.is_set():
            try:
                handled = await asyncio.to_thread(self.consume_once)
            except Exception:  # noqa: BLE001 - the loop must survive a database outage
                logger.exception("ingest triggers: pass failed; retrying")
                handled = 0
            if handled >= self.batch:
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass


__all__ = ["Rule", "TriggerConsumer", "check_triggers", "compile_rule", "stable_wanted"]
