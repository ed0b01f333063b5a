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
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from config.model import Quota
from storage.db import is_sqlite
from storage.group_commit import GroupCommit
from storage.header import InstanceRecord, index_value
from storage.models import IngestEvent, Instance, Patient, Series, Study

logger = logging.getLogger(__name__)

#: What the statement helpers run on: a Session (deletes) or a Core connection (ingest).
Executor = Session | Connection


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

    def __init__(self, engine: Engine, *, outbox: bool = False) -> None:
        self.engine = engine
        #: Write an ``ingest_events`` row with every instance (when ingest or study-stable
        #: triggers exist): the trigger side consumes them, exactly once, crash or not.
        self.outbox = outbox
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(sqlite_immediate=True)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # SQLite: one writer at a time (waiting on a Python lock is cheaper than SQLite's
        # busy-wait), and the writes queued meanwhile share the next commit.
        self._group = (
            GroupCommit(threading.Lock(), self._write_engine.begin) if is_sqlite(engine) else None
        )

    @property
    def serialises_writes(self) -> bool:
        """Do the writers queue on a lock of ours (SQLite), rather than the database's?"""
        return self._group is not None

    def queue_writes_on(self, lock: AbstractContextManager[Any]) -> None:
        """Make SQLite writers queue on ``lock`` (``node.workers.WriteLock``: across
        processes) instead of this process's own lock."""
        if self._group is not None:
            self._group.lock = lock

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

        def write(session: Connection) -> RecordOutcome:
            return self._record_in(session, ae_title, rec, path, size, calling_ae_title, quota)

        for attempt in range(3):
            try:
                if self._group is not None:
                    return self._group.run(write)
                with self._write_engine.begin() as session:
                    return write(session)
            except IntegrityError:
                # A concurrent association created the same patient/study/series first.
                if attempt == 2:
                    raise
            except OperationalError as exc:
                raise IndexUnavailableError(str(exc.orig) if exc.orig else str(exc)) from exc
        raise AssertionError("unreachable")

    def _record_in(
        self,
        session: Connection,
        ae_title: str,
        rec: InstanceRecord,
        path: str,
        size: int,
        calling_ae_title: str,
        quota: Quota | None,
    ) -> RecordOutcome:
        """The statements of ``record``, in the caller's transaction."""
        # Core statements on a Core connection, not ORM objects in a Session: an ingest is
        # a handful of keyed selects and writes, and the ORM's bookkeeping cost more than
        # SQLite itself.
        now = utcnow()
        outcome = RecordOutcome()
        key = {"ae_title": ae_title, "sop_instance_uid": rec.sop_instance_uid}
        existing = session.execute(_SELECT_INSTANCE, key).first()
        # The study's byte count follows in its own update; an instance that moves
        # from another study, or a series that does, makes both studies counted again.
        moved = existing is not None and existing.study_instance_uid != rec.study_instance_uid
        added = size - existing.size if existing is not None and not moved else size
        recount: set[int] = {existing.study_pk} if moved else set()
        left_studies: list[int] = []
        left_patients: list[int] = []
        patient_pk, _ = _upsert_level(
            session,
            Patient,
            {
                "ae_title": ae_title,
                "patient_id": rec.patient["patient_id"],
                "issuer_of_patient_id": rec.patient["issuer_of_patient_id"],
            },
            {"ae_title": ae_title, **rec.patient},
            rec.attrs["PATIENT"],
        )
        study_pk, new_study = _upsert_level(
            session,
            Study,
            {"ae_title": ae_title, "study_instance_uid": rec.study_instance_uid},
            {
                "ae_title": ae_title,
                "study_instance_uid": rec.study_instance_uid,
                "patient_pk": patient_pk,
                **rec.study,
            },
            rec.attrs["STUDY"],
            inserted={"created_at": now},
            always={"updated_at": now},
            added={"total_bytes": added},
            left_parents=left_patients,
        )
        if quota is not None and new_study:
            outcome.files_to_delete += _evict_oldest_studies(
                session, ae_title, quota.max_studies, new=study_pk
            )
        series_pk, _ = _upsert_level(
            session,
            Series,
            {"ae_title": ae_title, "series_instance_uid": rec.series_instance_uid},
            {
                "ae_title": ae_title,
                "series_instance_uid": rec.series_instance_uid,
                "study_pk": study_pk,
                **rec.series,
            },
            rec.attrs["SERIES"],
            left_parents=left_studies,
        )
        if left_studies:
            recount.update((study_pk, *left_studies))
        if left_studies or left_patients:
            _prune_left_parents(session, left_studies, left_patients)
        values = {
            "series_pk": series_pk,
            "sop_class_uid": rec.sop_class_uid,
            "instance_number": rec.instance["instance_number"],
            "transfer_syntax_uid": rec.transfer_syntax_uid,
            "path": path,
            "size": size,
            "received_at": now,
            "calling_ae_title": calling_ae_title,
            "attrs": rec.attrs["IMAGE"],
        }
        if existing is None:
            instance_pk = session.execute(_insert(Instance), {**key, **values}).scalar_one()
        else:
            instance_pk = existing.pk
            outcome.replaced = True
            if existing.path != path:
                outcome.files_to_delete.append(existing.path)
            session.execute(_update(Instance, tuple(values)), {"_pk": instance_pk, **values})
            if existing.series_pk != series_pk:
                _prune_empty(session, existing.series_pk)
        if recount:
            _recount_bytes(session, recount)
        if quota is not None:
            outcome.files_to_delete += _enforce_study_bytes(
                session, study_pk, quota.max_bytes_per_study, keep=instance_pk
            )
        if self.outbox:
            session.execute(
                _insert_event(),
                {
                    "ae_title": ae_title,
                    "sop_instance_uid": rec.sop_instance_uid,
                    "study_instance_uid": rec.study_instance_uid,
                    "series_instance_uid": rec.series_instance_uid,
                    "sop_class_uid": rec.sop_class_uid,
                    "calling_ae_title": calling_ae_title,
                    "received_at": now,
                },
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
            # over-long IDs are kept cut (with a digest) in the column: compare that form
            stmt = stmt.where(
                Patient.patient_id.in_([index_value(Patient.patient_id, p) for p in patient_ids])
            )
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
            series_pks = {r.series_pk for r in rows}
            study_pks = set(
                session.scalars(select(Series.study_pk).where(Series.pk.in_(series_pks)))
            )
            session.execute(delete(Instance).where(Instance.pk.in_([r.pk for r in rows])))
            for series_pk in series_pks:
                _prune_empty(session, series_pk)
            _recount_bytes(session, study_pks)
            return [r.path for r in rows]


# Statements are built once per shape and executed with bound parameters: building a fresh
# select/insert/update for every instance (SQLAlchemy coercing every value, the JSON too)
# cost several times what SQLite itself spends on an ingest.


@cache
def _select_level(model: Any, key_names: tuple[str, ...], names: tuple[str, ...]) -> Any:
    table = model.__table__
    return select(table.c.pk, table.c.attrs, *(table.c[n] for n in names)).where(
        *(table.c[k] == bindparam(k) for k in key_names)
    )


@cache
def _insert(model: Any) -> Any:
    table = model.__table__
    return insert(table).returning(table.c.pk)


@cache
def _update(model: Any, names: tuple[str, ...], added: tuple[str, ...] = ()) -> Any:
    """UPDATE of ``names`` (bound by name) and ``column += :add_<column>`` of ``added``."""
    table = model.__table__
    values: dict[str, Any] = {n: bindparam(n) for n in names}
    values.update({a: table.c[a] + bindparam(f"add_{a}") for a in added})
    return update(table).where(table.c.pk == bindparam("_pk")).values(values)


@cache
def _insert_event() -> Any:
    return insert(IngestEvent)


_SELECT_INSTANCE = (
    select(
        Instance.pk,
        Instance.path,
        Instance.size,
        Instance.series_pk,
        Series.study_pk,
        Study.study_instance_uid,
    )
    .join(Series, Instance.series_pk == Series.pk)
    .join(Study, Series.study_pk == Study.pk)
    .where(
        Instance.ae_title == bindparam("ae_title"),
        Instance.sop_instance_uid == bindparam("sop_instance_uid"),
    )
)


def _upsert_level(
    session: Executor,
    model: Any,
    key: dict[str, Any],
    columns: dict[str, Any],
    attrs: dict[str, Any],
    inserted: dict[str, Any] | None = None,
    always: dict[str, Any] | None = None,
    added: dict[str, int] | None = None,
    left_parents: list[int] | None = None,
) -> tuple[int, bool]:
    """Insert a patient/study/series row, or update it; returns (primary key, inserted).

    Latest instance wins for the level's attributes (as dcmqrscp and Orthanc do), but only
    what changed is written: the instances of a series nearly always repeat their patient,
    study and series attributes, and rewriting those rows (their JSON above all) for every
    instance would dominate the cost of an ingest.  A row that moves to another parent (a
    study now under another PatientID) appends the parent it left to ``left_parents``,
    which may now be empty.  ``added`` columns are counters: the value is added to the
    row's, or is the new row's.
    """
    names = tuple(columns)
    row = session.execute(_select_level(model, tuple(key), names), key).first()
    if row is None:
        values = {**columns, "attrs": attrs, **(inserted or {}), **(always or {}), **(added or {})}
        return int(session.execute(_insert(model), values).scalar_one()), True
    changes = {n: columns[n] for n in names if getattr(row, n) != columns[n]}
    if left_parents is not None:
        left_parents += [getattr(row, n) for n in _PARENT_COLUMNS & changes.keys()]
    current = row.attrs or {}
    if any(current.get(k) != v for k, v in attrs.items()):
        changes["attrs"] = {**current, **attrs}
    changes.update(always or {})
    if changes or added:
        counters = {f"add_{name}": value for name, value in (added or {}).items()}
        session.execute(
            _update(model, tuple(changes), tuple(added or ())),
            {"_pk": row.pk, **changes, **counters},
        )
    return int(row.pk), False


_PARENT_COLUMNS = frozenset({"patient_pk", "study_pk"})


def _prune_left_parents(
    session: Executor, left_studies: list[int], left_patients: list[int]
) -> None:
    """Remove studies and patients that a re-parented series or study left empty."""
    for study_pk in left_studies:
        if session.scalar(select(Series.pk).where(Series.study_pk == study_pk).limit(1)):
            continue
        patient_pk = session.scalar(select(Study.patient_pk).where(Study.pk == study_pk))
        session.execute(delete(Study).where(Study.pk == study_pk))
        if patient_pk is not None:
            left_patients.append(patient_pk)
    for patient_pk in left_patients:
        if not session.scalar(select(Study.pk).where(Study.patient_pk == patient_pk).limit(1)):
            session.execute(delete(Patient).where(Patient.pk == patient_pk))


def _prune_empty(session: Executor, series_pk: int) -> None:
    """Remove a series, study and patient left without instances."""
    if session.scalar(select(Instance.pk).where(Instance.series_pk == series_pk).limit(1)):
        return
    study_pk = session.scalar(select(Series.study_pk).where(Series.pk == series_pk))
    if study_pk is None:
        return
    session.execute(delete(Series).where(Series.pk == series_pk))
    if session.scalar(select(Series.pk).where(Series.study_pk == study_pk).limit(1)):
        return
    patient_pk = session.scalar(select(Study.patient_pk).where(Study.pk == study_pk))
    session.execute(delete(Study).where(Study.pk == study_pk))
    if patient_pk is None or session.scalar(
        select(Study.pk).where(Study.patient_pk == patient_pk).limit(1)
    ):
        return
    session.execute(delete(Patient).where(Patient.pk == patient_pk))


def _study_paths(session: Executor, study_pk: int) -> list[tuple[int, str, int, int]]:
    return [
        (r.pk, r.path, r.size, r.series_pk)
        for r in session.execute(
            select(Instance.pk, Instance.path, Instance.size, Instance.series_pk)
            .join(Series, Instance.series_pk == Series.pk)
            .where(Series.study_pk == study_pk)
            .order_by(Instance.received_at, Instance.pk)
        )
    ]


def _delete_study(session: Executor, study_pk: int) -> list[str]:
    rows = _study_paths(session, study_pk)
    if rows:
        session.execute(delete(Instance).where(Instance.pk.in_([r[0] for r in rows])))
    for series_pk in {r[3] for r in rows}:
        _prune_empty(session, series_pk)
    # a study without instances (should not happen) goes too
    session.execute(delete(Study).where(Study.pk == study_pk))
    return [r[1] for r in rows]


def _evict_oldest_studies(session: Executor, ae_title: str, keep: int, new: int) -> list[str]:
    """dcmqrscp: a new study beyond maxStudies deletes the study with the oldest last image.

    ``new`` is the study just created, which stays.
    """
    count = int(session.scalar(select(func.count()).where(Study.ae_title == ae_title)) or 0)
    files: list[str] = []
    while count > max(keep, 1):
        oldest = session.scalar(
            select(Study.pk)
            .where(Study.ae_title == ae_title, Study.pk != new)
            .order_by(Study.updated_at, Study.pk)
            .limit(1)
        )
        if oldest is None:
            break
        logger.info("quota: deleting study pk=%s of %s (maxStudies reached)", oldest, ae_title)
        files += _delete_study(session, oldest)
        count -= 1
    return files


def _enforce_study_bytes(session: Executor, study_pk: int, max_bytes: int, keep: int) -> list[str]:
    """dcmqrscp: an image that pushes a study over its byte quota deletes its oldest images."""
    if int(session.execute(_SELECT_STUDY_BYTES, {"pk": study_pk}).scalar() or 0) <= max_bytes:
        return []  # the common case: one value read by primary key
    rows = _study_paths(session, study_pk)
    total = sum(r[2] for r in rows)
    files: list[str] = []
    for pk, path, size, series_pk in rows:
        if total <= max_bytes:
            break
        if pk == keep:
            continue
        session.execute(delete(Instance).where(Instance.pk == pk))
        _prune_empty(session, series_pk)
        files.append(path)
        total -= size
        logger.info("quota: deleted %s to keep its study under %d bytes", path, max_bytes)
    session.execute(update(Study).where(Study.pk == study_pk).values(total_bytes=total))
    return files


_SELECT_STUDY_BYTES = select(Study.total_bytes).where(Study.pk == bindparam("pk"))


def _recount_bytes(session: Executor, study_pks: set[int]) -> None:
    """Count the bytes of these studies again (after instances moved between studies)."""
    if not study_pks:
        return
    total = (
        select(func.coalesce(func.sum(Instance.size), 0))
        .join(Series, Instance.series_pk == Series.pk)
        .where(Series.study_pk == Study.pk)
        .scalar_subquery()
    )
    session.execute(update(Study).where(Study.pk.in_(sorted(study_pks))).values(total_bytes=total))
