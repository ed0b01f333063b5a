"""The index schema: patient / study / series / instance, jobs, routes, UID maps.

Why this shape: every AE title of the AETable has its own records (dcmqrscp semantics), so
each level carries ``ae_title`` and its natural key is unique per AE.  Patients are keyed by
(PatientID, IssuerOfPatientID), never by name.  The query keys clients use most are columns
with indexes; every other top-level attribute of a level is kept in ``attrs`` (DICOM JSON,
decoded to Unicode) so that any key can be matched or returned.  ``*_key`` columns hold the
upper-cased form of person names for case-insensitive matching.

Alembic migrations (``migrations/``) import only this module; change the schema there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of the index."""


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("ae_title", "patient_id", "issuer_of_patient_id", name="uq_patient"),
        # text_pattern_ops on PostgreSQL: C-FIND's PN prefix ranges (~>=~ / ~<~, migration 0003)
        Index(
            "ix_patients_name_key",
            "ae_title",
            "patient_name_key",
            postgresql_ops={"patient_name_key": "text_pattern_ops"},
        ),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_name_key: Mapped[str] = mapped_column(String(324), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    attrs: Mapped[dict] = mapped_column(JSON, default=dict)

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        UniqueConstraint("ae_title", "study_instance_uid", name="uq_study"),
        Index("ix_studies_date", "ae_title", "study_date"),
        Index("ix_studies_accession", "ae_title", "accession_number"),
        Index("ix_studies_patient", "patient_pk"),
        Index("ix_studies_updated", "ae_title", "updated_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.pk", ondelete="CASCADE"))
    ae_title: Mapped[str] = mapped_column(String(16))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[str] = mapped_column(String(8), default="")
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    study_id: Mapped[str] = mapped_column(String(16), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    attrs: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    #: Time the last instance of the study arrived: quotas and study-stable triggers use it.
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    #: Bytes of the study's instance files, kept by ``storage.index`` (the byte quota).
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (
        UniqueConstraint("ae_title", "series_instance_uid", name="uq_series"),
        Index("ix_series_study", "study_pk"),
        Index("ix_series_modality", "ae_title", "modality"),
        Index("ix_series_date", "ae_title", "series_date"),
        Index(
            "ix_series_description",
            "ae_title",
            "series_description",
            postgresql_ops={"series_description": "text_pattern_ops"},
        ),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("studies.pk", ondelete="CASCADE"))
    ae_title: Mapped[str] = mapped_column(String(16))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[str] = mapped_column(String(12), default="")
    series_date: Mapped[str] = mapped_column(String(8), default="")
    series_description: Mapped[str] = mapped_column(String(64), default="")
    attrs: Mapped[dict] = mapped_column(JSON, default=dict)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("ae_title", "sop_instance_uid", name="uq_instance"),
        Index("ix_instances_series", "series_pk"),
        Index("ix_instances_sop_class", "ae_title", "sop_class_uid"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.pk", ondelete="CASCADE"))
    ae_title: Mapped[str] = mapped_column(String(16))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[str] = mapped_column(String(12), default="")
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    #: Path relative to the AE's storage area (never absolute, never built from a non-UID).
    path: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    calling_ae_title: Mapped[str] = mapped_column(String(16), default="")
    attrs: Mapped[dict] = mapped_column(JSON, default=dict)

    series: Mapped[Series] = relationship(back_populates="instances")


class Job(Base):
    """A durable unit of server-side work (anonymize, convert, render, export, forward...)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "state", "next_attempt_at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    #: Set by a cancel of a running job; the runner stops at its next step.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What the job has finished so far (kind-specific), so a resumed job skips it.
    checkpoint: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: Who asked: ``api``, ``cli``, ``trigger:NAME``, ``route:NAME``.
    origin: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class IngestEvent(Base):
    """An instance that was indexed and has not yet been seen by the ingest triggers.

    Why a table (a transactional outbox) rather than an in-memory event: the row is written
    in the same transaction as the instance, so a crash after the C-STORE-RSP cannot lose a
    trigger, and ingest worker processes need no channel to the process running triggers.
    """

    __tablename__ = "ingest_events"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    calling_ae_title: Mapped[str] = mapped_column(String(16), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime)


class StableMark(Base):
    """The study version (its ``updated_at``) a study-stable trigger last fired for."""

    __tablename__ = "stable_marks"
    __table_args__ = (UniqueConstraint("ae_title", "study_instance_uid", name="uq_stable_mark"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    fired_for: Mapped[datetime] = mapped_column(DateTime)
    fired_at: Mapped[datetime] = mapped_column(DateTime)


class RouteRun(Base):
    """One run of a route: why it ran, what it selected, what went and what did not."""

    __tablename__ = "route_runs"
    __table_args__ = (Index("ix_route_runs_route", "route", "started_at"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    route: Mapped[str] = mapped_column(String(64))
    #: ``schedule``, ``manual``, ``stable``, ``ingest``.
    reason: Mapped[str] = mapped_column(String(32))
    #: ``running``, ``succeeded``, ``partial``, ``failed``.
    state: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    selected: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RouteStudy(Base):
    """A study a route took: the version it took (the study's ``updated_at``) and its fate.

    Why per study and per version: "new since the last run" is a study that was never sent
    or changed since it was sent, which survives failed runs and restarts.
    """

    __tablename__ = "route_studies"
    __table_args__ = (
        UniqueConstraint("route", "ae_title", "study_instance_uid", name="uq_route_study"),
        Index("ix_route_studies_run", "run_pk"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    route: Mapped[str] = mapped_column(String(64))
    ae_title: Mapped[str] = mapped_column(String(16))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    study_updated_at: Mapped[datetime] = mapped_column(DateTime)
    #: ``queued``, ``sent``, ``failed``.
    state: Mapped[str] = mapped_column(String(16), default="queued")
    run_pk: Mapped[int | None] = mapped_column(
        ForeignKey("route_runs.pk", ondelete="SET NULL"), nullable=True
    )
    job_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    instances_sent: Mapped[int] = mapped_column(Integer, default=0)
    new_study_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


#: APScheduler 3's SQLAlchemyJobStore table, created here (Alembic is the only schema path);
#: the store's own ``create_all`` then finds it and does nothing.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class UidMap(Base):
    """Original UID -> replacement UID, per namespace (an anonymization secret or route)."""

    __tablename__ = "uid_maps"
    __table_args__ = (UniqueConstraint("namespace", "original_uid", name="uq_uid_map"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    original_uid: Mapped[str] = mapped_column(String(64))
    new_uid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
