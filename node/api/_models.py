"""The JSON bodies of the admin API, as pydantic models (they make the OpenAPI schemas)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AECounts(BaseModel):
    title: str
    access: str
    patients: int
    studies: int
    series: int
    instances: int


class Status(BaseModel):
    version: str
    started_at: str = Field(description="ISO 8601 UTC")
    uptime_seconds: float
    dicom_port: int | None
    ae_titles: list[AECounts]
    index: dict[str, int] = Field(description="patients, studies, series, instances (all AEs)")
    jobs: dict[str, int] = Field(description="number of jobs per state")
    associations: int = Field(description="DICOM associations in progress")
    events: dict[str, int] = Field(description="events counted since start, by kind")


class PatientItem(BaseModel):
    ae: str
    PatientID: str
    IssuerOfPatientID: str
    PatientName: str
    PatientBirthDate: str
    PatientSex: str
    NumberOfPatientRelatedStudies: int
    NumberOfPatientRelatedInstances: int


class StudyItem(BaseModel):
    ae: str
    StudyInstanceUID: str
    StudyDate: str
    StudyTime: str
    AccessionNumber: str
    StudyID: str
    StudyDescription: str
    ReferringPhysicianName: str
    PatientID: str
    IssuerOfPatientID: str
    PatientName: str
    ModalitiesInStudy: list[str]
    NumberOfStudyRelatedSeries: int
    NumberOfStudyRelatedInstances: int
    updated_at: str = Field(description="when its last instance arrived (ISO 8601 UTC)")


class SeriesItem(BaseModel):
    ae: str
    SeriesInstanceUID: str
    StudyInstanceUID: str
    PatientID: str
    Modality: str
    SeriesNumber: str
    SeriesDate: str
    SeriesDescription: str
    NumberOfSeriesRelatedInstances: int


class InstanceItem(BaseModel):
    ae: str
    SOPInstanceUID: str
    SOPClassUID: str
    SeriesInstanceUID: str
    StudyInstanceUID: str
    PatientID: str
    InstanceNumber: str
    TransferSyntaxUID: str
    size: int = Field(description="bytes stored")
    received_at: str = Field(description="ISO 8601 UTC")
    calling_ae_title: str


class Page(BaseModel):
    ae: str
    limit: int
    offset: int
    more: bool = Field(description="true when another page follows")


class PatientPage(Page):
    items: list[PatientItem]


class StudyPage(Page):
    items: list[StudyItem]


class SeriesPage(Page):
    items: list[SeriesItem]


class InstancePage(Page):
    items: list[InstanceItem]


class Job(BaseModel):
    pk: int
    kind: str
    params: dict[str, Any]
    state: str = Field(description="queued, running, succeeded, failed or cancelled")
    attempts: int
    max_attempts: int
    next_attempt_at: str
    progress_done: int
    progress_total: int
    result: dict[str, Any] | None
    error: str | None
    lease_owner: str | None
    lease_expires_at: str | None
    cancel_requested: bool
    checkpoint: dict[str, Any] | None
    origin: str
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


class JobPage(BaseModel):
    limit: int
    offset: int
    more: bool
    items: list[Job]


class JobRequest(BaseModel):
    kind: str = Field(description="forward, anonymize, convert, render, export, delete...")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='the kind\'s parameters, with the selection {"ae", "studies", "series", '
        '"instances"}',
    )


class JobKindInfo(BaseModel):
    name: str
    help: str


class RouteList(BaseModel):
    routes: list[dict[str, Any]]


class RouteHistory(BaseModel):
    route: str
    runs: list[dict[str, Any]]


class Problem(BaseModel):
    """Every error answer."""

    detail: str
