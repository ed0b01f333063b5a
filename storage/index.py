"""The index: metadata of stored instances, one transaction per change.

Why a class of its own: the services and tools ask questions of the index (what is stored,
where is the file) without touching SQL, and every write goes through ``record`` so the
rules (replace on same SOP Instance UID, dcmqrscp quotas, clean-up of emptied levels) live
in one place.  The index never sees file bytes; ``storage.ingest`` writes files and calls it.

Exceptions::

    IndexError_
     └── QuotaExceededError   one instance larger than the per-study byte quota
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.model import Quota
from storage.db import is_sqlite
from storage.header import InstanceRecord
from storage.models import Instance, Patient, Series, Study

logger = logging.getLogger(__name__)


class IndexError_(Exception):  # noqa: N801 - IndexError is a builtin
    """An index operation failed."""


class QuotaExceededError(IndexError_):
    """The instance alone is larger than the AE's per-study byte quota."""


class IndexUnavailableError(IndexError_):
    """The database could not be reached or refused the transaction."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class RecordOutcome:
    """What a ``record`` call changed besides the new row: files the caller must delete."""

    replaced: bool = False
    files_to_delete: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoredInstance:
    """One stored instance as the retrieve services need it."""

    ae_title: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    study_instance_uid: str
    series_instance_uid: str


class Index:
    """The index database (SQLite or PostgreSQL) behind one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        # One writer at a time inside this process: SQLite has one writer anyway, and
        # waiting on a Python lock is cheaper than SQLite's busy-wait.
        self._write_lock = threading.Lock() if is_sqlite(engine) else None

    def read_session(self) -> Session:
        return self._read()

    def write_session(self) -> Session:
        return self._write()

    # -- ingest --------------------------------------------------------------------------

    def record(
        self,
        ae_title: str,
        rec: InstanceRecord,
        path: str,
        size: int,
        calling_ae_title: str = "",
        quota: Quota | None = None,
    ) -> RecordOutcome:
        """Index one stored instance in one transaction (insert, or replace the same UID)."""
        if quota is not None and size > quota.max_bytes_per_study:
            raise QuotaExceededError(
                f"instance of {size} bytes exceeds the quota of "
                f"{quota.max_bytes_per_study} bytes per study"
            )
        for attempt in range(3):
            try:
                if self._write_lock is not None:
                    with self._write_lock:
                        return self._record_once(ae_title, rec, path, size, calling_ae_title, quota)
                return self._record_once(ae_title, rec, path, size, calling_ae_title, quota)
            except IntegrityError:
                # A concurrent association created the same patient/study/series first.
                if attempt == 2:
                    raise
            except OperationalError as exc:
                raise IndexUnavailableError(str(exc.orig) if exc.orig else str(exc)) from exc
        raise AssertionError("unreachable")

    def _record_once(
        self,
        ae_title: str,
        rec: InstanceRecord,
        path: str,
        size: int,
        calling_ae_title: str,
        quota: Quota | None,
    ) -> RecordOutcome:
        now = utcnow()
        outcome = RecordOutcome()
        with self.write_session() as session, session.begin():
            patient = session.scalar(
                select(Patient).where(
                    Patient.ae_title == ae_title,
                    Patient.patient_id == rec.patient["patient_id"],
                    Patient.issuer_of_patient_id == rec.patient["issuer_of_patient_id"],
                )
            )
            if patient is None:
                patient = Patient(ae_title=ae_title, **rec.patient, attrs=rec.attrs["PATIENT"])
                session.add(patient)
                session.flush()
            else:
                _update(patient, rec.patient, rec.attrs["PATIENT"])

            study = session.scalar(
                select(Study).where(
                    Study.ae_title == ae_title,
                    Study.study_instance_uid == rec.study_instance_uid,
                )
            )
            if study is None:
                if quota is not None:
                    outcome.files_to_delete += _evict_oldest_studies(
                        session, ae_title, quota.max_studies - 1
                    )
                study = Study(
                    ae_title=ae_title,
                    patient_pk=patient.pk,
                    study_instance_uid=rec.study_instance_uid,
                    **rec.study,
                    attrs=rec.attrs["STUDY"],
                    created_at=now,
                    updated_at=now,
                )
                session.add(study)
                session.flush()
            else:
                _update(study, rec.study, rec.attrs["STUDY"])
                study.patient_pk = patient.pk
                study.updated_at = now

            series = session.scalar(
                select(Series).where(
                    Series.ae_title == ae_title,
                    Series.series_instance_uid == rec.series_instance_uid,
                )
            )
            if series is None:
                series = Series(
                    ae_title=ae_title,
                    study_pk=study.pk,
                    series_instance_uid=rec.series_instance_uid,
                    **rec.series,
                    attrs=rec.attrs["SERIES"],
                )
                session.add(series)
                session.flush()
            else:
                _update(series, rec.series, rec.attrs["SERIES"])
                series.study_pk = study.pk

            instance = session.scalar(
                select(Instance).where(
                    Instance.ae_title == ae_title,
                    Instance.sop_instance_uid == rec.sop_instance_uid,
                )
            )
            old_series_pk = None
            if instance is not None:
                outcome.replaced = True
                if instance.path != path:
                    outcome.files_to_delete.append(instance.path)
                old_series_pk = instance.series_pk
            else:
                instance = Instance(ae_title=ae_title, sop_instance_uid=rec.sop_instance_uid)
                session.add(instance)
            instance.series_pk = series.pk
            instance.sop_class_uid = rec.sop_class_uid
            instance.instance_number = rec.instance["instance_number"]
            instance.transfer_syntax_uid = rec.transfer_syntax_uid
            instance.path = path
            instance.size = size
            instance.received_at = now
            instance.calling_ae_title = calling_ae_title
            instance.attrs = rec.attrs["IMAGE"]
            session.flush()

            if old_series_pk is not None and old_series_pk != series.pk:
                _prune_empty(session, old_series_pk)
            if quota is not None:
                outcome.files_to_delete += _enforce_study_bytes(
                    session, study.pk, quota.max_bytes_per_study, keep=instance.pk
                )
        return outcome

    # -- retrieval -----------------------------------------------------------------------

    def instances(
        self,
        ae_title: str,
        *,
        study_uids: Sequence[str] = (),
        series_uids: Sequence[str] = (),
        sop_uids: Sequence[str] = (),
        patient_ids: Sequence[str] = (),
    ) -> list[StoredInstance]:
        """Stored instances of ``ae_title`` under the given UIDs (all filters combined)."""
        stmt = (
            select(
                Instance.ae_title,
                Instance.sop_instance_uid,
                Instance.sop_class_uid,
                Instance.transfer_syntax_uid,
                Instance.path,
                Study.study_instance_uid,
                Series.series_instance_uid,
            )
            .join(Series, Instance.series_pk == Series.pk)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
            .where(Instance.ae_title == ae_title)
            .order_by(Study.pk, Series.pk, Instance.pk)
        )
        if patient_ids:
            stmt = stmt.where(Patient.patient_id.in_(list(patient_ids)))
        if study_uids:
            stmt = stmt.where(Study.study_instance_uid.in_(list(study_uids)))
        if series_uids:
            stmt = stmt.where(Series.series_instance_uid.in_(list(series_uids)))
        if sop_uids:
            stmt = stmt.where(Instance.sop_instance_uid.in_(list(sop_uids)))
        with self.read_session() as session:
            return [StoredInstance(*row) for row in session.execute(stmt)]

    def counts(self, ae_title: str | None = None) -> dict[str, int]:
        """Number of patients, studies, series and instances (of one AE, or all)."""
        result = {}
        with self.read_session() as session:
            for name, model in (
                ("patients", Patient),
                ("studies", Study),
                ("series", Series),
                ("instances", Instance),
            ):
                stmt = select(func.count()).select_from(model)
                if ae_title is not None:
                    stmt = stmt.where(model.ae_title == ae_title)
                result[name] = int(session.scalar(stmt) or 0)
        return result

    def has_path(self, ae_title: str, path: str) -> bool:
        """Does a row of ``ae_title`` point at ``path`` (crash recovery asks this)?"""
        with self.read_session() as session:
            stmt = select(Instance.pk).where(Instance.ae_title == ae_title, Instance.path == path)
            return session.scalar(stmt.limit(1)) is not None

    def all_paths(self, ae_title: str) -> Iterator[str]:
        with self.read_session() as session:
            yield from session.scalars(select(Instance.path).where(Instance.ae_title == ae_title))

    def delete_instances(self, ae_title: str, sop_uids: Sequence[str]) -> list[str]:
        """Delete instance rows (and levels they leave empty); returns their file paths."""
        with self.write_session() as session, session.begin():
            rows = session.execute(
                select(Instance.pk, Instance.path, Instance.series_pk).where(
                    Instance.ae_title == ae_title, Instance.sop_instance_uid.in_(list(sop_uids))
                )
            ).all()
            if not rows:
                return []
            session.execute(delete(Instance).where(Instance.pk.in_([r.pk for r in rows])))
            for series_pk in {r.series_pk for r in rows}:
                _prune_empty(session, series_pk)
            return [r.path for r in rows]


def _update(row: object, columns: dict[str, str], attrs: dict[str, object]) -> None:
    """Latest instance wins for the level's attributes (as dcmqrscp and Orthanc do).

    Only what changed is assigned: the instances of a series nearly always repeat their
    patient, study and series attributes, and rewriting those rows (their JSON above all)
    for every instance would dominate the cost of an ingest.
    """
    for key, value in columns.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
    current = row.attrs or {}  # type: ignore[attr-defined]
    if any(current.get(key) != value for key, value in attrs.items()):
        row.attrs = {**current, **attrs}  # type: ignore[attr-defined]


def _prune_empty(session: Session, series_pk: int) -> None:
    """Remove a series, study and patient left without instances."""
    if session.scalar(select(func.count()).where(Instance.series_pk == series_pk)):
        return
    series = session.get(Series, series_pk)
    if series is None:
        return
    study_pk = series.study_pk
    session.delete(series)
    session.flush()
    if session.scalar(select(func.count()).where(Series.study_pk == study_pk)):
        return
    study = session.get(Study, study_pk)
    if study is None:
        return
    patient_pk = study.patient_pk
    session.delete(study)
    session.flush()
    if session.scalar(select(func.count()).where(Study.patient_pk == patient_pk)):
        return
    patient = session.get(Patient, patient_pk)
    if patient is not None:
        session.delete(patient)
        session.flush()


def _study_paths(session: Session, study_pk: int) -> list[tuple[int, str, int, int]]:
    return [
        (r.pk, r.path, r.size, r.series_pk)
        for r in session.execute(
            select(Instance.pk, Instance.path, Instance.size, Instance.series_pk)
            .join(Series, Instance.series_pk == Series.pk)
            .where(Series.study_pk == study_pk)
            .order_by(Instance.received_at, Instance.pk)
        )
    ]


def _delete_study(session: Session, study_pk: int) -> list[str]:
    rows = _study_paths(session, study_pk)
    if rows:
        session.execute(delete(Instance).where(Instance.pk.in_([r[0] for r in rows])))
    for series_pk in {r[3] for r in rows}:
        _prune_empty(session, series_pk)
    study = session.get(Study, study_pk)
    if study is not None:  # a study without instances (should not happen) goes too
        session.delete(study)
        session.flush()
    return [r[1] for r in rows]


def _evict_oldest_studies(session: Session, ae_title: str, keep: int) -> list[str]:
    """dcmqrscp: a new study beyond maxStudies deletes the study with the oldest last image."""
    count = int(session.scalar(select(func.count()).where(Study.ae_title == ae_title)) or 0)
    files: list[str] = []
    while count > max(keep, 0):
        oldest = session.scalar(
            select(Study.pk)
            .where(Study.ae_title == ae_title)
            .order_by(Study.updated_at, Study.pk)
            .limit(1)
        )
        if oldest is None:
            break
        logger.info("quota: deleting study pk=%s of %s (maxStudies reached)", oldest, ae_title)
        files += _delete_study(session, oldest)
        count -= 1
    return files


def _enforce_study_bytes(session: Session, study_pk: int, max_bytes: int, keep: int) -> list[str]:
    """dcmqrscp: an image that pushes a study over its byte quota deletes its oldest images."""
    total = session.scalar(
        select(func.coalesce(func.sum(Instance.size), 0))
        .join(Series, Instance.series_pk == Series.pk)
        .where(Series.study_pk == study_pk)
    )
    if int(total or 0) <= max_bytes:
        return []  # the common case: one aggregate, no rows fetched
    rows = _study_paths(session, study_pk)
    total = sum(r[2] for r in rows)
    files: list[str] = []
    for pk, path, size, series_pk in rows:
        if total <= max_bytes:
            break
        if pk == keep:
            continue
        session.execute(delete(Instance).where(Instance.pk == pk))
        session.flush()
        _prune_empty(session, series_pk)
        files.append(path)
        total -= size
        logger.info("quota: deleted %s to keep its study under %d bytes", path, max_bytes)
    return files
