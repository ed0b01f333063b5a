"""Routes: named pipelines from the RouteTable (select studies, de-identify, transcode, send).

A run (by cron, by a study becoming stable, or by hand) records a ``RouteRun``, selects the
studies of the route's source AE that match its filter and, with ``Select = new``, that
were never sent, changed since they were sent, or failed last time, and submits one
``forward`` job per study (``{"route": name, "route_study": pk}`` carried in its params)
in the same transaction.  Each study's ``RouteStudy`` row remembers the version sent
(``studies.updated_at``) and the job; what became of the study is read from the job row
(``route_study_state``), so a crash between a job's end and any bookkeeping cannot leave a
wrong answer, and a study that fails is selected again by the next run and reported until
it goes: never silently dropped.  Runs of one route are serialized (the SQLite write
lock, a PostgreSQL transaction advisory lock), so the jobs a run submitted are those of
the route created between its start and the next run's.

Pseudonyms stay consistent across runs because every job of a route de-identifies with
the route's secret (``Secret``/``SecretFile``): new UIDs are an HMAC of the original.

Errors::

    RouteError
     +-- UnknownRoute     no such route in the RouteTable
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from config.errors import ConfigError
from config.model import RouteEntry, Settings
from node.jobs.kinds import InvalidJobParams, pipeline, submit_job, validate_job
from node.jobs.kinds.base import make_parser
from storage.db import is_sqlite
from storage.index import utcnow
from storage.jobs import JobQueue
from storage.models import Job, RouteRun, RouteStudy
from storage.routes import (
    Candidate,
    Matcher,
    route_candidates,
    route_study_state,
    sample_instance,
    study_instance_count,
)

logger = logging.getLogger(__name__)

#: Most studies a dry run lists that would *not* be sent (the ones that would are all listed).
DRY_RUN_SKIPPED_LIMIT = 200


class RouteError(Exception):
    """Base of the route errors."""


class UnknownRoute(RouteError):
    """No route of that name in the RouteTable."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no route {name!r} in the RouteTable")
        self.name = name


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def route_steps(route: RouteEntry) -> dict[str, Any]:
    """The ``anonymize`` and ``convert`` params of the route's forward jobs (not validated)."""
    anonymize = None
    if route.anonymize is not None:
        parser = make_parser(f"route {route.name}: Anonymize")
        pipeline.add_anonymize_arguments(parser, switch=False)
        ns = parser.parse_args(list(route.anonymize))
        if ns.secret or ns.secret_file:
            raise InvalidJobParams("Anonymize: give the secret as Secret or SecretFile")
        anonymize = pipeline.anonymize_from_args(ns, switch=False)
        assert anonymize is not None
        anonymize["secret"] = route.secret
        anonymize["secret_file"] = str(route.secret_file) if route.secret_file else None
    convert = None
    if route.convert is not None:
        parser = make_parser(f"route {route.name}: Convert")
        pipeline.add_convert_arguments(parser, required=True)
        convert = pipeline.convert_from_args(parser.parse_args(list(route.convert)))
    return {"anonymize": anonymize, "convert": convert}


def check_routes(settings: Settings) -> None:
    """Check each route's steps against the job kinds; ``ConfigError`` at the route's line."""
    for route in settings.routes:
        try:
            forward_params(settings, route, "1.2.3", validate=True)
        except InvalidJobParams as exc:
            raise ConfigError(
                settings.config_path, route.line, f"route {route.name}: {exc}"
            ) from None


def forward_params(
    settings: Settings,
    route: RouteEntry,
    study_uid: str,
    route_study: int | None = None,
    *,
    validate: bool = False,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "ae": route.source,
        "studies": [study_uid],
        "destination": route.destination,
        **route_steps(route),
        "route": route.name,
    }
    if route_study is not None:
        params["route_study"] = route_study
    return validate_job("forward", params, settings) if validate else params


def _header(ds: Dataset) -> dict[str, str]:
    """Top-level attributes as ``keyword: text`` (binary values summarised)."""
    out: dict[str, str] = {}
    for elem in ds:
        if elem.tag.group == 0x7FE0:
            continue
        name = elem.keyword or str(elem.tag)
        if elem.VR == "SQ":
            out[name] = f"<sequence of {len(elem.value or [])} item(s)>"
        elif elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            out[name] = f"<{len(elem.value or b'')} bytes>"
        else:
            value = elem.value
            out[name] = "" if value is None else str(value)
    return out


class RouteService:
    """What the admin API and the scheduler call: list, run (or dry-run), history.

    Parameters
    ----------
    settings
        The node's settings (``routes`` is the RouteTable).
    engine
        The index database's engine.
    queue
        The job queue the forward jobs go to (the daemon's, so that its runner wakes up).
    """

    def __init__(self, settings: Settings, engine: Engine, queue: JobQueue | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.queue = queue or JobQueue(engine)
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self._sqlite = is_sqlite(engine)
        self._matchers = {route.name: Matcher(route.filter) for route in settings.routes}
        self._local = threading.Lock()
        #: Called with the route name after each run (the scheduler wakes up its listeners).
        self.next_run_time: Any = None

    # -- the interface ---------------------------------------------------------------------

    def route(self, name: str) -> RouteEntry:
        route = self.settings.route(name)
        if route is None:
            raise UnknownRoute(name)
        return route

    def list(self) -> list[dict[str, Any]]:
        """Every route: its settings, its last run, and when the scheduler runs it next."""
        out = []
        for route in self.settings.routes:
            runs = self.history(route.name, limit=1)
            steps = []
            if route.anonymize is not None:
                steps.append({"step": "anonymize", "options": list(route.anonymize)})
            if route.convert is not None:
                steps.append({"step": "convert", "options": list(route.convert)})
            steps.append({"step": "forward", "destination": route.destination})
            next_run = self.next_run_time(route.name) if callable(self.next_run_time) else None
            out.append(
                {
                    "name": route.name,
                    "schedule": route.schedule,
                    "trigger": route.trigger,
                    "source": route.source,
                    "destination": route.destination,
                    "filter": [f"{k.keyword}={k.value}" for k in route.filter],
                    "select": route.select,
                    "steps": steps,
                    "max_attempts": route.max_attempts,
                    "last_run": _run_summary(runs[0]) if runs else None,
                    "next_run": _iso(next_run) if isinstance(next_run, datetime) else next_run,
                }
            )
        return out

    def run(
        self,
        name: str,
        *,
        dry_run: bool = False,
        reason: str = "manual",
        studies: Sequence[str] = (),
        session: Session | None = None,
    ) -> dict[str, Any]:
        """Run the route now (or show what a run would send, with ``dry_run``).

        Not dry: ``{"run": pk, "selected": n, "retried": [uids], "jobs": [pks]}``.
        Dry: ``{"route", "studies": [{study_instance_uid, patient_name, patient_id,
        study_date, study_description, instances, would_send, why}], "sample":
        {"sop_instance_uid", "before": {keyword: text}, "after": {keyword: text}}}``.

        ``studies`` restricts the run to those Study Instance UIDs (a study-stable firing);
        ``session`` runs it inside the caller's transaction (exactly once with the firing).
        """
        route = self.route(name)
        if dry_run:
            return self._dry_run(route, studies)
        if session is not None:
            return self._run(session, route, reason, studies)
        with self._local, self._write() as own, own.begin():
            return self._run(own, route, reason, studies)

    def history(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` runs, newest first, each with its studies and their state.

        A study's state comes from its forward job (``sent``, ``queued`` while the job is
        queued or running, ``failed``); a run is ``running`` until all its jobs are final,
        then ``succeeded``, ``partial`` or ``failed``.
        """
        route = self.route(name)
        with self._read() as session:
            runs = list(
                session.scalars(
                    select(RouteRun)
                    .where(RouteRun.route == route.name)
                    .order_by(RouteRun.started_at.desc(), RouteRun.pk.desc())
                    .limit(max(1, limit))
                )
            )
            if not runs:
                return []
            oldest = runs[-1].started_at
            newer = session.scalar(
                select(RouteRun.started_at)
                .where(RouteRun.route == route.name, RouteRun.started_at > runs[0].started_at)
                .order_by(RouteRun.started_at)
                .limit(1)
            )
            jobs_stmt = (
                select(Job)
                .where(Job.origin == f"route:{route.name}", Job.created_at >= oldest)
                .order_by(Job.pk)
            )
            if newer is not None:
                jobs_stmt = jobs_stmt.where(Job.created_at < newer)
            jobs = list(session.scalars(jobs_stmt))
            rs_pks = [j.params.get("route_study") for j in jobs if j.params]
            route_studies = {
                rs.pk: rs
                for rs in session.scalars(
                    select(RouteStudy).where(RouteStudy.pk.in_([p for p in rs_pks if p]))
                )
            }
        by_run: dict[int, list[Job]] = {run.pk: [] for run in runs}
        ordered = sorted(runs, key=lambda r: (r.started_at, r.pk))
        for job in jobs:
            owner = None
            for run in ordered:
                if run.started_at <= job.created_at:
                    owner = run
            if owner is not None:
                by_run[owner.pk].append(job)
        out = []
        for run in runs:
            studies = [
                _study_of(job, route_studies.get((job.params or {}).get("route_study")))
                for job in by_run[run.pk]
            ]
            out.append(_run_view(run, studies))
        self._settle(out)
        return out

    # -- running -----------------------------------------------------------------------------

    def _lock(self, session: Session, route: RouteEntry) -> None:
        """Serialize runs of one route across nodes (SQLite: the write lock does it)."""
        if self._sqlite:
            return
        key = int.from_bytes(hashlib.sha256(f"route:{route.name}".encode()).digest()[:8], "big")
        key -= 1 << 63 if key >= 1 << 63 else 0
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def _selection(
        self, session: Session, route: RouteEntry, studies: Sequence[str]
    ) -> list[Candidate]:
        matcher = self._matchers.get(route.name) or Matcher(route.filter)
        candidates = route_candidates(
            session, route.name, route.source, only_new=route.select == "new", studies=studies
        )
        return [
            c
            for c in candidates
            if matcher.study_matches(session, c.ae_title, c.study_instance_uid)
        ]

    def _run(
        self, session: Session, route: RouteEntry, reason: str, studies: Sequence[str]
    ) -> dict[str, Any]:
        self._lock(session, route)
        now = utcnow()
        run = RouteRun(
            route=route.name,
            reason=reason,
            state="running",
            started_at=now,
            selected=0,
            sent=0,
            failed=0,
        )
        session.add(run)
        session.flush()
        selected = self._selection(session, route, studies)
        new_uid = self._new_study_uid(route)
        jobs: list[int] = []
        retried: list[str] = []
        for candidate in selected:
            rs = (
                session.get(RouteStudy, candidate.route_study_pk)
                if candidate.route_study_pk is not None
                else None
            )
            if rs is None:
                rs = RouteStudy(
                    route=route.name,
                    ae_title=candidate.ae_title,
                    study_instance_uid=candidate.study_instance_uid,
                    attempts=0,
                    instances_sent=0,
                )
                session.add(rs)
            if candidate.previous_state == "failed":
                retried.append(candidate.study_instance_uid)
            rs.study_updated_at = candidate.updated_at
            rs.state = "queued"
            rs.run_pk = run.pk
            rs.attempts = (rs.attempts or 0) + 1
            rs.error = None
            rs.updated_at = now
            rs.new_study_instance_uid = new_uid(candidate.study_instance_uid)
            session.flush()
            params = forward_params(self.settings, route, candidate.study_instance_uid, rs.pk)
            rs.job_pk = submit_job(
                self.queue,
                self.settings,
                "forward",
                params,
                f"route:{route.name}",
                max_attempts=route.max_attempts,
                session=session,
            )
            jobs.append(rs.job_pk)
        run.selected = len(selected)
        if not selected:
            run.state = "succeeded"
            run.finished_at = now
        logger.info(
            "route %s (%s): run %d selected %d studies (%d retried)",
            route.name,
            reason,
            run.pk,
            len(selected),
            len(retried),
        )
        return {"run": run.pk, "selected": len(selected), "retried": retried, "jobs": jobs}

    @staticmethod
    def _new_study_uid(route: RouteEntry) -> Any:
        """original Study Instance UID -> the one the destination will get (None: unknown)."""
        if route.anonymize is None or "--retain-uids" in route.anonymize:
            return lambda uid: uid
        try:
            step = pipeline.validate_anonymize(route_steps(route)["anonymize"])
            engine = pipeline.build_deidentifier(step or {})
        except Exception:  # noqa: BLE001 - bookkeeping only; the job reports real errors
            return lambda uid: None
        return engine.uid_map.replace

    # -- dry run -----------------------------------------------------------------------------

    def _dry_run(self, route: RouteEntry, studies: Sequence[str]) -> dict[str, Any]:
        with self._read() as session:
            matcher = self._matchers.get(route.name) or Matcher(route.filter)
            every = route_candidates(
                session, route.name, route.source, only_new=False, studies=studies, in_flight=True
            )
            listed: list[dict[str, Any]] = []
            skipped = 0
            sample_of: Candidate | None = None
            for c in every:
                would, why = self._why(route, c)
                if would and not matcher.study_matches(session, c.ae_title, c.study_instance_uid):
                    would, why = False, "does not match the filter"
                if not would:
                    skipped += 1
                    if skipped > DRY_RUN_SKIPPED_LIMIT:
                        continue
                if would and sample_of is None:
                    sample_of = c
                listed.append(
                    {
                        "study_instance_uid": c.study_instance_uid,
                        "patient_name": c.patient_name,
                        "patient_id": c.patient_id,
                        "study_date": c.study_date,
                        "study_description": c.study_description,
                        "instances": study_instance_count(
                            session, c.ae_title, c.study_instance_uid
                        ),
                        "would_send": would,
                        "why": why,
                    }
                )
            sample_path = (
                sample_instance(session, sample_of.ae_title, sample_of.study_instance_uid)
                if sample_of is not None
                else None
            )
        return {
            "route": route.name,
            "source": route.source,
            "destination": route.destination,
            "would_send": sum(1 for s in listed if s["would_send"]),
            "skipped_not_listed": max(0, skipped - DRY_RUN_SKIPPED_LIMIT),
            "studies": listed,
            "sample": self._sample(route, sample_path) if sample_path else None,
        }

    @staticmethod
    def _why(route: RouteEntry, c: Candidate) -> tuple[bool, str]:
        if c.in_flight:
            return False, "on its way (its forward job is queued or running)"
        if c.previous_state is None:
            return True, "never sent"
        if c.previous_state == "failed":
            return True, "the last attempt failed: retried"
        if c.previous_state == "queued":
            return True, "changed while an older version was on its way"
        if not c.current:
            return True, "changed since it was sent"
        if route.select == "all":
            return True, "sent, unchanged, but Select = all"
        return False, "sent, unchanged since"

    def _sample(self, route: RouteEntry, found: tuple[str, str]) -> dict[str, Any]:
        sop_uid, relative = found
        ae = self.settings.ae(route.source)
        assert ae is not None
        path = Path(ae.storage_area) / relative
        out: dict[str, Any] = {"sop_instance_uid": sop_uid, "before": {}, "after": {}}
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - shown to the admin
            out["error"] = f"cannot read {path}: {exc}"
            return out
        out["before"] = _header(ds)
        steps = route_steps(route)
        if steps["anonymize"] is None:
            out["after"] = dict(out["before"])
            out["note"] = "no Anonymize step: sent as stored"
            return out
        try:
            step = pipeline.validate_anonymize(steps["anonymize"])
            result = pipeline.build_deidentifier(step or {}).deidentify(ds)
        except Exception as exc:  # noqa: BLE001 - the admin must see why it would fail
            out["error"] = f"de-identification would fail: {exc}"
            return out
        out["after"] = _header(result.dataset)
        return out

    # -- settling runs -----------------------------------------------------------------------

    def _settle(self, views: list[dict[str, Any]]) -> None:
        """Write the final state and counts of runs whose jobs are all final (a cache: the
        views above are computed from the jobs whatever this says)."""
        done = [v for v in views if v["state"] != "running" and v["_stored_state"] == "running"]
        for view in views:
            view.pop("_stored_state", None)
        if not done:
            return
        with self._write() as session, session.begin():
            for view in done:
                run = session.get(RouteRun, view["run"])
                if run is None or run.state != "running":
                    continue
                run.state = view["state"]
                run.sent = view["sent"]
                run.failed = view["failed"]
                run.finished_at = utcnow()
            for view in done:
                for study in view["studies"]:
                    rs = session.get(RouteStudy, study.get("route_study") or -1)
                    if rs is None or rs.job_pk != study["job"]:
                        continue
                    rs.state = study["state"]
                    rs.error = study["error"]
                    if study["state"] == "sent" and rs.sent_at is None:
                        rs.sent_at = utcnow()
                        rs.instances_sent = study["instances_sent"] or 0


def _study_of(job: Job, rs: RouteStudy | None) -> dict[str, Any]:
    params = job.params or {}
    result = job.result or {}
    state = route_study_state("queued", job.state)
    sent = result.get("done", result.get("sent"))
    return {
        "study_instance_uid": (params.get("studies") or [None])[0],
        "new_study_instance_uid": rs.new_study_instance_uid if rs else None,
        "state": state,
        "job": job.pk,
        "job_state": job.state,
        "attempts": job.attempts,
        "instances_sent": sent if isinstance(sent, int) else None,
        "error": job.error if state == "failed" else None,
        "route_study": params.get("route_study"),
        "finished_at": _iso(job.finished_at),
    }


def _run_view(run: RouteRun, studies: list[dict[str, Any]]) -> dict[str, Any]:
    sent = sum(1 for s in studies if s["state"] == "sent")
    failed = sum(1 for s in studies if s["state"] == "failed")
    pending = sum(1 for s in studies if s["state"] == "queued")
    if run.selected and not studies:
        state = run.state  # its jobs were purged: what was recorded
        sent, failed = run.sent, run.failed
    elif pending:
        state = "running"
    elif failed == 0:
        state = "succeeded"
    else:
        state = "failed" if sent == 0 else "partial"
    return {
        "run": run.pk,
        "route": run.route,
        "reason": run.reason,
        "state": state,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "selected": run.selected,
        "sent": sent,
        "failed": failed,
        "pending": pending,
        "studies": studies,
        "_stored_state": run.state,
    }


def _run_summary(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "studies"}


__all__ = [
    "RouteError",
    "RouteService",
    "UnknownRoute",
    "check_routes",
    "forward_params",
    "route_steps",
]
