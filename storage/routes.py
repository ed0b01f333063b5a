"""The index side of triggers and routes: matching rules, the outbox, stable marks, history.

Why in storage: the trigger and route code in ``node.jobs`` decides *what* to do; the
questions it asks of the index (which instances of these events match a rule, which
studies became stable, which studies a route has not sent yet, what a run did) are SQL,
and SQL stays here.  Nothing here imports ``node`` or pynetdicom.

Matching reuses the C-FIND rules (``storage.query``): a rule's ``KEY=VALUE`` items become
an IMAGE-level identifier, whose constraints are applied to an instance together with its
series, study and patient rows (coarse SQL predicates first, exact DICOM matching in
Python).  A study matches when one of its instances does.  ``CallingAE`` and ``CalledAE``
match the instance's ``calling_ae_title`` and ``ae_title`` (the AE it was stored under),
with ``*``/``?`` wildcards and ``\\``-separated lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.config import IGNORE
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, and_, delete, exists, func, select, update
from sqlalchemy.orm import Session

from config.model import MatchKey
from storage.models import (
    IngestEvent,
    Instance,
    Job,
    Patient,
    RouteStudy,
    Series,
    StableMark,
    Study,
)
from storage.query import Constraint, parse_identifier

#: The beginning of time for a stable mark that has not fired yet ("pending").
NEVER = datetime(1970, 1, 1)


# -- matching ----------------------------------------------------------------------------


def _ae_regex(value: str) -> re.Pattern[str]:
    options = []
    for item in value.split("\\"):
        parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in item.strip()]
        options.append("".join(parts))
    return re.compile("(?:" + "|".join(options) + r")\Z")


@dataclass(frozen=True)
class _Row:
    patient: Any
    study: Any
    series: Any
    instance: Any


class Matcher:
    """A compiled rule: ``KEY=VALUE`` items that must all match (AND)."""

    def __init__(self, keys: Sequence[MatchKey]) -> None:
        self.keys = tuple(keys)
        self.calling = [_ae_regex(k.value) for k in keys if k.keyword == "CallingAE"]
        self.called = [_ae_regex(k.value) for k in keys if k.keyword == "CalledAE"]
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        for key in keys:
            if key.tag is None:
                continue
            try:
                vr = dictionary_VR(key.tag)
            except KeyError:
                vr = "UN" if key.tag >> 16 & 1 == 0 else "LO"
            identifier.add(DataElement(key.tag, vr, key.value, validation_mode=IGNORE))
        self.constraints: list[Constraint] = parse_identifier(identifier).constraints

    @property
    def universal(self) -> bool:
        return not self.keys

    def ae_only(self) -> bool:
        return not self.constraints

    def check_ae(self, called: str, calling: str) -> bool:
        return all(r.match(called) for r in self.called) and all(
            r.match(calling) for r in self.calling
        )

    def _predicates(self) -> list[ColumnElement[bool]]:
        return [p for p in (c.sql() for c in self.constraints) if p is not None]

    def _check_row(self, row: _Row) -> bool:
        if not self.check_ae(row.instance.ae_title, row.instance.calling_ae_title or ""):
            return False
        levels = {
            "PATIENT": row.patient,
            "STUDY": row.study,
            "SERIES": row.series,
            "IMAGE": row.instance,
        }
        for constraint in self.constraints:
            key = f"{constraint.tag:08X}"
            stored = (levels[constraint.level].attrs or {}).get(key)
            if stored is None:  # kept at another level than the standard's (odd files)
                for other in (row.instance, row.series, row.study, row.patient):
                    stored = (other.attrs or {}).get(key)
                    if stored is not None:
                        break
            if not constraint.matches(stored):
                return False
        return True

    def _rows(self, session: Session, *where: ColumnElement[bool]) -> Iterator[_Row]:
        stmt = (
            select(Instance, Series, Study, Patient)
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
            .where(*where, *self._predicates())
            .order_by(Instance.pk)
        )
        for instance, series, study, patient in session.execute(stmt).yield_per(200):
            yield _Row(patient, study, series, instance)

    def matching_instances(
        self, session: Session, ae_title: str, sop_uids: Iterable[str]
    ) -> set[str]:
        """The SOP Instance UIDs among ``sop_uids`` (stored under ``ae_title``) that match."""
        wanted = list(dict.fromkeys(sop_uids))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in self._rows(
                session, Instance.ae_title == ae_title, Instance.sop_instance_uid.in_(chunk)
            ):
                if self._check_row(row):
                    found.add(row.instance.sop_instance_uid)
        return found

    def study_matches(self, session: Session, ae_title: str, study_uid: str) -> bool:
        """Does one instance of the study match (every key, on that instance's rows)?"""
        if self.universal:
            return True
        for row in self._rows(
            session, Instance.ae_title == ae_title, Study.study_instance_uid == study_uid
        ):
            if self._check_row(row):
                return True
        return False


# -- the ingest outbox -------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    pk: int
    ae_title: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    calling_ae_title: str
    received_at: datetime


def take_events(session: Session, limit: int, *, skip_locked: bool) -> list[Event]:
    """The oldest ``limit`` outbox rows, locked for this transaction on PostgreSQL.

    The caller deletes them (``delete_events``) in the same transaction as the work they
    caused, so each event is handled exactly once even with several consumers.
    """
    stmt = select(IngestEvent).order_by(IngestEvent.pk).limit(limit)
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return [
        Event(
            e.pk,
            e.ae_title,
            e.sop_instance_uid,
            e.study_instance_uid,
            e.series_instance_uid,
            e.sop_class_uid,
            e.calling_ae_title or "",
            e.received_at,
        )
        for e in session.scalars(stmt)
    ]


def delete_events(session: Session, pks: Sequence[int]) -> None:
    for start in range(0, len(pks), 500):
        session.execute(
            delete(IngestEvent).where(IngestEvent.pk.in_(list(pks[start : start + 500])))
        )


# -- study-stable ------------------------------------------------------------------------


def mark_changing(session: Session, studies: Iterable[tuple[str, str]], now: datetime) -> None:
    """Make sure each ``(ae, study uid)`` has a stable mark, so the stable scan looks at it.

    A new mark is pending (``fired_for`` at the beginning of time); an existing one stays
    as it is: the study's ``updated_at`` moving past ``fired_for`` is the change.
    """
    for ae_title, uid in dict.fromkeys(studies):
        found = session.scalar(
            select(StableMark.pk).where(
                StableMark.ae_title == ae_title, StableMark.study_instance_uid == uid
            )
        )
        if found is None:
            session.add(
                StableMark(ae_title=ae_title, study_instance_uid=uid, fired_for=NEVER, fired_at=now)
            )
    session.flush()


@dataclass(frozen=True)
class StableStudy:
    mark_pk: int
    ae_title: str
    study_instance_uid: str
    updated_at: datetime


def stable_studies(session: Session, cutoff: datetime, limit: int = 200) -> list[StableStudy]:
    """Studies with a mark that changed since it fired and got nothing since ``cutoff``."""
    stmt = (
        select(StableMark.pk, Study.ae_title, Study.study_instance_uid, Study.updated_at)
        .join(
            Study,
            and_(
                Study.ae_title == StableMark.ae_title,
                Study.study_instance_uid == StableMark.study_instance_uid,
            ),
        )
        .where(Study.updated_at > StableMark.fired_for, Study.updated_at <= cutoff)
        .order_by(Study.updated_at)
        .limit(limit)
    )
    return [StableStudy(*row) for row in session.execute(stmt)]


def fire_mark(session: Session, study: StableStudy, now: datetime) -> bool:
    """Record that ``study`` fired for its version; False when another node did first."""
    result = session.execute(
        update(StableMark)
        .where(StableMark.pk == study.mark_pk, StableMark.fired_for < study.updated_at)
        .values(fired_for=study.updated_at, fired_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def forget_deleted_marks(session: Session) -> int:
    """Drop marks whose study no longer exists (deleted, evicted by a quota)."""
    orphan = ~exists(
        select(Study.pk).where(
            Study.ae_title == StableMark.ae_title,
            Study.study_instance_uid == StableMark.study_instance_uid,
        )
    )
    result = session.execute(delete(StableMark).where(orphan))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- routes ------------------------------------------------------------------------------

#: Job states in which a study counts as taken care of (sent, or on its way).
_TAKEN = ("succeeded", "queued", "running")


@dataclass(frozen=True)
class Candidate:
    """A study a route may send, with what the route last did with it."""

    ae_title: str
    study_instance_uid: str
    updated_at: datetime
    patient_name: str
    patient_id: str
    study_date: str
    study_description: str
    route_study_pk: int | None
    previous_state: str | None  # sent, queued, failed (derived from the job), None: never
    previous_job_state: str | None
    #: The version last taken is the study's current one.
    current: bool
    in_flight: bool


def route_study_state(rs_state: str, job_state: str | None) -> str:
    """A route study's state, trusting the job row over the bookkeeping column."""
    if job_state is None:
        return rs_state
    if job_state == "succeeded":
        return "sent"
    if job_state in ("queued", "running"):
        return "queued"
    return "failed"


def route_candidates(
    session: Session,
    route: str,
    ae_title: str,
    *,
    only_new: bool,
    studies: Sequence[str] = (),
    in_flight: bool = False,
) -> list[Candidate]:
    """Studies of ``ae_title`` the route should consider, oldest change first.

    With ``only_new``: those never sent, changed since they were sent (``updated_at`` past
    the version sent), or whose last attempt failed; a study whose job for its current
    version is queued or running is left out (it is on its way).  ``studies`` restricts the
    candidates to those UIDs (a study-stable firing); ``in_flight`` keeps the studies on
    their way too (a dry run lists them).
    """
    stmt = (
        select(
            Study.ae_title,
            Study.study_instance_uid,
            Study.updated_at,
            Patient.patient_name,
            Patient.patient_id,
            Study.study_date,
            Study.study_description,
            RouteStudy.pk,
            RouteStudy.state,
            RouteStudy.study_updated_at,
            Job.state,
        )
        .join(Patient, Study.patient_pk == Patient.pk)
        .outerjoin(
            RouteStudy,
            and_(
                RouteStudy.route == route,
                RouteStudy.ae_title == Study.ae_title,
                RouteStudy.study_instance_uid == Study.study_instance_uid,
            ),
        )
        .outerjoin(Job, Job.pk == RouteStudy.job_pk)
        .where(Study.ae_title == ae_title)
        .order_by(Study.updated_at, Study.pk)
    )
    if studies:
        stmt = stmt.where(Study.study_instance_uid.in_(list(studies)))
    out: list[Candidate] = []
    for row in session.execute(stmt):
        (ae, uid, updated, name, pid, date, desc, rs_pk, rs_state, rs_version, job_state) = row
        state = route_study_state(rs_state, job_state) if rs_pk is not None else None
        current = rs_version is not None and rs_version >= updated
        on_its_way = state == "queued" and current
        if on_its_way and not in_flight:
            continue  # already on its way, whatever the selection
        if only_new and state == "sent" and current:
            continue
        out.append(
            Candidate(
                ae,
                uid,
                updated,
                name or "",
                pid or "",
                date or "",
                desc or "",
                rs_pk,
                state,
                job_state,
                current,
                on_its_way,
            )
        )
    return out


def study_instance_count(session: Session, ae_title: str, study_uid: str) -> int:
    stmt = (
        select(func.count(Instance.pk))
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.ae_title == ae_title, Study.study_instance_uid == study_uid)
    )
    return int(session.scalar(stmt) or 0)


def sample_instance(session: Session, ae_title: str, study_uid: str) -> tuple[str, str] | None:
    """``(sop instance uid, relative path)`` of the first instance of a study."""
    stmt = (
        select(Instance.sop_instance_uid, Instance.path)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.ae_title == ae_title, Study.study_instance_uid == study_uid)
        .order_by(Series.pk, Instance.pk)
        .limit(1)
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def any_stale(session: Session, route: str) -> Any:
    """Route studies whose bookkeeping still says queued (the reconcile pass updates them)."""
    return session.scalars(
        select(RouteStudy).where(RouteStudy.route == route, RouteStudy.state == "queued")
    )


__all__ = [
    "NEVER",
    "Candidate",
    "Event",
    "Matcher",
    "StableStudy",
    "delete_events",
    "fire_mark",
    "forget_deleted_marks",
    "mark_changing",
    "route_candidates",
    "route_study_state",
    "sample_instance",
    "stable_studies",
    "study_instance_count",
    "take_events",
]
