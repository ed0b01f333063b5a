"""Patients, studies, series and instances: listing with C-FIND matching, and deletion.

Filters are DICOM keywords with C-FIND semantics (``storage.query``, the engine behind the
C-FIND SCP): ``PatientName=DOE*`` (wildcards, case-insensitive for names),
``StudyDate=20240101-20240131`` (ranges), ``StudyInstanceUID=1.2\\1.3`` (UID lists).  A page
holds at most ``limit`` items after ``offset``; ``more`` says whether another follows.

Deletion goes through the job queue: ``DELETE`` submits a ``delete`` job for the selection
and answers 202 with the job (``Location: /jobs/N``).  It is durable (a restart resumes it)
and the files go the same way as every other job's work; poll the job to know when it is done.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.api._context import ApiContext, get_context
from node.api._errors import NotFound
from node.api._jobs import job_json, submit
from node.api._models import (
    InstanceItem,
    InstancePage,
    Job,
    PatientItem,
    PatientPage,
    SeriesItem,
    SeriesPage,
    StudyItem,
    StudyPage,
)
from storage import query
from storage.models import Patient, Study

router = APIRouter(tags=["index"])

Ctx = Annotated[ApiContext, Depends(get_context)]
AeParam = Annotated[
    str | None, Query(description="AETable title whose records to use (default: the first)")
]
Limit = Annotated[int, Query(ge=1, le=1000, description="most items in the page")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]
#: What a UID in a path may look like (stored UIDs may break the rules, never this far).
_UID = re.compile(r"^[0-9A-Za-z.\-_]{1,64}$")
UidPath = Annotated[str, Path(max_length=64)]


PatientIDQ = Annotated[
    str | None, Query(alias="PatientID", description="exact, or with * and ? wildcards")
]
PatientNameQ = Annotated[
    str | None,
    Query(alias="PatientName", description="case-insensitive, * and ? wildcards (DOE^J*)"),
]
StudyUIDQ = Annotated[
    str | None, Query(alias="StudyInstanceUID", description="a UID, or a \\-separated list")
]
SeriesUIDQ = Annotated[
    str | None, Query(alias="SeriesInstanceUID", description="a UID, or a \\-separated list")
]
StudyDateQ = Annotated[
    str | None, Query(alias="StudyDate", description="YYYYMMDD, or a range: A-B, A-, -B")
]
AccessionQ = Annotated[str | None, Query(alias="AccessionNumber", description="exact or wildcards")]
ModalityQ = Annotated[str | None, Query(alias="Modality", description="e.g. CT, or CT\\MR")]


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else ""


def _matches(
    session: Session,
    ae: str,
    level: str,
    filters: dict[str, str | None],
    limit: int,
    offset: int,
) -> tuple[list[query.Match], bool]:
    """The page of ``level`` entities of ``ae`` matching ``filters`` (C-FIND rules)."""
    identifier = Dataset()
    for keyword, value in filters.items():
        if value:
            tag = tag_for_keyword(keyword)
            assert tag is not None, keyword
            identifier.add_new(tag, dictionary_VR(tag), value)
    identifier.QueryRetrieveLevel = level
    parsed = query.parse_identifier(identifier, query.PATIENT_ROOT)
    found = list(islice(query.run(session, ae, parsed, limit=offset + limit + 1), offset, None))
    return found[:limit], len(found) > limit


def _computed(
    session: Session, matches: Sequence[query.Match], keywords: Iterable[str]
) -> dict[tuple[str, int], Any]:
    return query.computed_values(session, set(keywords), matches) if matches else {}


def _patients(session: Session, matches: Sequence[query.Match]) -> list[PatientItem]:
    values = _computed(
        session, matches, ("NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances")
    )
    out = []
    for m in matches:
        p = m.patient
        out.append(
            PatientItem(
                ae=p.ae_title,
                PatientID=p.patient_id,
                IssuerOfPatientID=p.issuer_of_patient_id,
                PatientName=p.patient_name,
                PatientBirthDate=p.patient_birth_date,
                PatientSex=p.patient_sex,
                NumberOfPatientRelatedStudies=values[("NumberOfPatientRelatedStudies", p.pk)],
                NumberOfPatientRelatedInstances=values[("NumberOfPatientRelatedInstances", p.pk)],
            )
        )
    return out


def _studies(session: Session, matches: Sequence[query.Match]) -> list[StudyItem]:
    values = _computed(
        session,
        matches,
        ("ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    )
    out = []
    for m in matches:
        s, p = m.study, m.patient
        assert s is not None
        out.append(
            StudyItem(
                ae=s.ae_title,
                StudyInstanceUID=s.study_instance_uid,
                StudyDate=s.study_date,
                StudyTime=s.study_time,
                AccessionNumber=s.accession_number,
                StudyID=s.study_id,
                StudyDescription=s.study_description,
                ReferringPhysicianName=s.referring_physician_name,
                PatientID=p.patient_id,
                IssuerOfPatientID=p.issuer_of_patient_id,
                PatientName=p.patient_name,
                ModalitiesInStudy=values[("ModalitiesInStudy", s.pk)],
                NumberOfStudyRelatedSeries=values[("NumberOfStudyRelatedSeries", s.pk)],
                NumberOfStudyRelatedInstances=values[("NumberOfStudyRelatedInstances", s.pk)],
                updated_at=_iso(s.updated_at),
            )
        )
    return out


def _series(session: Session, matches: Sequence[query.Match]) -> list[SeriesItem]:
    values = _computed(session, matches, ("NumberOfSeriesRelatedInstances",))
    out = []
    for m in matches:
        se, st = m.series, m.study
        assert se is not None and st is not None
        out.append(
            SeriesItem(
                ae=se.ae_title,
                SeriesInstanceUID=se.series_instance_uid,
                StudyInstanceUID=st.study_instance_uid,
                PatientID=m.patient.patient_id,
                Modality=se.modality,
                SeriesNumber=se.series_number,
                SeriesDate=se.series_date,
                SeriesDescription=se.series_description,
                NumberOfSeriesRelatedInstances=values[("NumberOfSeriesRelatedInstances", se.pk)],
            )
        )
    return out


def _instances(matches: Sequence[query.Match]) -> list[InstanceItem]:
    out = []
    for m in matches:
        i, se, st = m.instance, m.series, m.study
        assert i is not None and se is not None and st is not None
        out.append(
            InstanceItem(
                ae=i.ae_title,
                SOPInstanceUID=i.sop_instance_uid,
                SOPClassUID=i.sop_class_uid,
                SeriesInstanceUID=se.series_instance_uid,
                StudyInstanceUID=st.study_instance_uid,
                PatientID=m.patient.patient_id,
                InstanceNumber=i.instance_number,
                TransferSyntaxUID=i.transfer_syntax_uid,
                size=i.size,
                received_at=_iso(i.received_at),
                calling_ae_title=i.calling_ae_title,
            )
        )
    return out


def _one(ctx: ApiContext, ae: str | None, level: str, keyword: str, uid: str) -> Any:
    """The single item of ``level`` whose unique key is ``uid``; :class:`NotFound` if none."""
    entry = ctx.ae_entry(ae)
    what = {"STUDY": "study", "SERIES": "series", "IMAGE": "instance"}[level]
    if not _UID.match(uid):
        raise NotFound(f"{entry.title} holds no {what} {uid!r}")
    with ctx.index.read_session() as session:
        matches, _ = _matches(session, entry.title, level, {keyword: uid}, 1, 0)
        if not matches:
            raise NotFound(f"{entry.title} holds no {what} {uid}")
        if level == "STUDY":
            return _studies(session, matches)[0]
        if level == "SERIES":
            return _series(session, matches)[0]
        return _instances(matches)[0]


# -- listing -------------------------------------------------------------------------------


@router.get("/patients", response_model=PatientPage, summary="List patients")
def list_patients(
    ctx: Ctx,
    ae: AeParam = None,
    patient_id: PatientIDQ = None,
    patient_name: PatientNameQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> PatientPage:
    entry = ctx.ae_entry(ae)
    filters = {"PatientID": patient_id, "PatientName": patient_name}
    with ctx.index.read_session() as session:
        matches, more = _matches(session, entry.title, "PATIENT", filters, limit, offset)
        items = _patients(session, matches)
    return PatientPage(ae=entry.title, limit=limit, offset=offset, more=more, items=items)


@router.get("/studies", response_model=StudyPage, summary="List studies")
def list_studies(
    ctx: Ctx,
    ae: AeParam = None,
    patient_id: PatientIDQ = None,
    patient_name: PatientNameQ = None,
    study_uid: StudyUIDQ = None,
    study_date: StudyDateQ = None,
    accession: AccessionQ = None,
    modality: ModalityQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StudyPage:
    entry = ctx.ae_entry(ae)
    filters = {
        "PatientID": patient_id,
        "PatientName": patient_name,
        "StudyInstanceUID": study_uid,
        "StudyDate": study_date,
        "AccessionNumber": accession,
        "ModalitiesInStudy": modality,
    }
    with ctx.index.read_session() as session:
        matches, more = _matches(session, entry.title, "STUDY", filters, limit, offset)
        items = _studies(session, matches)
    return StudyPage(ae=entry.title, limit=limit, offset=offset, more=more, items=items)


@router.get("/series", response_model=SeriesPage, summary="List series")
def list_series(
    ctx: Ctx,
    ae: AeParam = None,
    patient_id: PatientIDQ = None,
    study_uid: StudyUIDQ = None,
    series_uid: SeriesUIDQ = None,
    modality: ModalityQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> SeriesPage:
    entry = ctx.ae_entry(ae)
    filters = {
        "PatientID": patient_id,
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "Modality": modality,
    }
    with ctx.index.read_session() as session:
        matches, more = _matches(session, entry.title, "SERIES", filters, limit, offset)
        items = _series(session, matches)
    return SeriesPage(ae=entry.title, limit=limit, offset=offset, more=more, items=items)


@router.get("/instances", response_model=InstancePage, summary="List instances")
def list_instances(
    ctx: Ctx,
    ae: AeParam = None,
    study_uid: StudyUIDQ = None,
    series_uid: SeriesUIDQ = None,
    sop_uid: Annotated[str | None, Query(alias="SOPInstanceUID")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> InstancePage:
    entry = ctx.ae_entry(ae)
    filters = {
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "SOPInstanceUID": sop_uid,
    }
    with ctx.index.read_session() as session:
        matches, more = _matches(session, entry.title, "IMAGE", filters, limit, offset)
        items = _instances(matches)
    return InstancePage(ae=entry.title, limit=limit, offset=offset, more=more, items=items)


@router.get("/studies/{uid}", response_model=StudyItem, summary="One study")
def get_study(ctx: Ctx, uid: UidPath, ae: AeParam = None) -> StudyItem:
    item: StudyItem = _one(ctx, ae, "STUDY", "StudyInstanceUID", uid)
    return item


@router.get("/series/{uid}", response_model=SeriesItem, summary="One series")
def get_series(ctx: Ctx, uid: UidPath, ae: AeParam = None) -> SeriesItem:
    item: SeriesItem = _one(ctx, ae, "SERIES", "SeriesInstanceUID", uid)
    return item


@router.get("/instances/{uid}", response_model=InstanceItem, summary="One instance")
def get_instance(ctx: Ctx, uid: UidPath, ae: AeParam = None) -> InstanceItem:
    item: InstanceItem = _one(ctx, ae, "IMAGE", "SOPInstanceUID", uid)
    return item


# -- deletion ------------------------------------------------------------------------------

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "a delete job was queued; the body is the job"},
    404: {"description": "nothing of that UID is held"},
}


def _delete(ctx: ApiContext, ae: str, key: str, uids: list[str], response: Response) -> Job:
    pk = submit(ctx, "delete", {"ae": ae, key: uids})
    response.headers["Location"] = f"/jobs/{pk}"
    return job_json(ctx, pk)


@router.delete(
    "/patients/{patient_id}",
    status_code=202,
    response_model=Job,
    responses=_ACCEPTED,
    summary="Delete a patient's studies (a delete job)",
)
def delete_patient(
    ctx: Ctx,
    patient_id: Annotated[str, Path(max_length=64)],
    response: Response,
    ae: AeParam = None,
    issuer: Annotated[str | None, Query(description="IssuerOfPatientID")] = None,
) -> Job:
    entry = ctx.ae_entry(ae)
    stmt = (
        select(Study.study_instance_uid)
        .join(Patient, Study.patient_pk == Patient.pk)
        .where(Patient.ae_title == entry.title, Patient.patient_id == patient_id)
        .order_by(Study.pk)
    )
    if issuer is not None:
        stmt = stmt.where(Patient.issuer_of_patient_id == issuer)
    with ctx.index.read_session() as session:
        studies = list(session.scalars(stmt))
    if not studies:
        raise NotFound(f"{entry.title} holds no study of patient {patient_id!r}")
    return _delete(ctx, entry.title, "studies", studies, response)


@router.delete(
    "/studies/{uid}",
    status_code=202,
    response_model=Job,
    responses=_ACCEPTED,
    summary="Delete a study (a delete job)",
)
def delete_study(ctx: Ctx, uid: UidPath, response: Response, ae: AeParam = None) -> Job:
    item = get_study(ctx, uid, ae)
    return _delete(ctx, item.ae, "studies", [uid], response)


@router.delete(
    "/series/{uid}",
    status_code=202,
    response_model=Job,
    responses=_ACCEPTED,
    summary="Delete a series (a delete job)",
)
def delete_series(ctx: Ctx, uid: UidPath, response: Response, ae: AeParam = None) -> Job:
    item = get_series(ctx, uid, ae)
    return _delete(ctx, item.ae, "series", [uid], response)


@router.delete(
    "/instances/{uid}",
    status_code=202,
    response_model=Job,
    responses=_ACCEPTED,
    summary="Delete an instance (a delete job)",
)
def delete_instance(ctx: Ctx, uid: UidPath, response: Response, ae: AeParam = None) -> Job:
    item = get_instance(ctx, uid, ae)
    return _delete(ctx, item.ae, "instances", [uid], response)
