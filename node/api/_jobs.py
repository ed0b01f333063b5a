"""Jobs: submit, list, show, cancel, retry (the durable queue of ``storage.jobs``).

A job is submitted with its kind and parameters as ``node-ctl job submit`` builds them
(``node.jobs.kinds``: each kind validates its parameters, so a bad one is a 400 here and
never a failed job later).  Cancelling a queued job ends it at once; a running one stops at
its next step (``cancel_requested`` until then).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from node.api._context import ApiContext, get_context
from node.api._errors import BadRequest, Conflict
from node.api._models import Job, JobKindInfo, JobPage, JobRequest
from node.jobs.kinds import KINDS, submit_job
from storage.jobs import FINAL_STATES, STATES

logger = logging.getLogger(__name__)

router = APIRouter(tags=["jobs"])

Ctx = Annotated[ApiContext, Depends(get_context)]
JobPk = Annotated[int, Path(ge=1, description="the job's number")]


def submit(ctx: ApiContext, kind: str, params: dict[str, Any]) -> int:
    """Validate and queue a job (``InvalidJobParams`` -> 400); returns its number."""
    pk = submit_job(ctx.queue, ctx.settings, kind, params, ctx.origin)
    logger.info("admin API: job %d (%s) submitted", pk, kind)
    return pk


def job_json(ctx: ApiContext, pk: int) -> Job:
    return Job(**ctx.queue.get(pk).as_json())


@router.get("/jobs", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(
    ctx: Ctx,
    state: Annotated[list[str], Query(description=f"any of {', '.join(STATES)}")] = [],  # noqa: B006
    kind: Annotated[list[str], Query(description="job kinds")] = [],  # noqa: B006
    origin: Annotated[str | None, Query(description="origin prefix: api, cli, route:...")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    unknown = sorted(set(state) - set(STATES))
    if unknown:
        raise BadRequest(f"unknown state(s) {', '.join(unknown)}: use {', '.join(STATES)}")
    views = ctx.queue.list(states=state, kinds=kind, origin=origin, limit=limit + 1, offset=offset)
    items = [Job(**view.as_json()) for view in views[:limit]]
    return JobPage(limit=limit, offset=offset, more=len(views) > limit, items=items)


@router.get("/jobs/kinds", response_model=list[JobKindInfo], summary="The kinds of job")
def list_kinds(ctx: Ctx) -> list[JobKindInfo]:
    return [JobKindInfo(name=name, help=kind.help) for name, kind in sorted(KINDS.items())]


@router.post(
    "/jobs",
    status_code=201,
    response_model=Job,
    responses={400: {"description": "unknown kind or invalid parameters"}},
    summary="Submit a job",
)
def submit_endpoint(ctx: Ctx, body: JobRequest, response: Response) -> Job:
    pk = submit(ctx, body.kind, body.params)
    response.headers["Location"] = f"/jobs/{pk}"
    return job_json(ctx, pk)


@router.get("/jobs/{pk}", response_model=Job, summary="One job")
def show_job(ctx: Ctx, pk: JobPk) -> Job:
    return job_json(ctx, pk)


@router.post(
    "/jobs/{pk}/cancel",
    response_model=Job,
    responses={409: {"description": "the job has already finished"}},
    summary="Cancel a job (a running one stops at its next step)",
)
def cancel_job(ctx: Ctx, pk: JobPk) -> Job:
    current = ctx.queue.get(pk)
    if current.state in FINAL_STATES:
        raise Conflict(f"job {pk} has already finished ({current.state})")
    logger.info("admin API: job %d (%s) cancelled", pk, current.kind)
    return Job(**ctx.queue.cancel(pk).as_json())


@router.post(
    "/jobs/{pk}/retry",
    response_model=Job,
    responses={409: {"description": "the job is neither failed nor cancelled"}},
    summary="Queue a failed or cancelled job again",
)
def retry_job(ctx: Ctx, pk: JobPk) -> Job:
    current = ctx.queue.get(pk)
    if current.state not in ("failed", "cancelled"):
        raise Conflict(f"job {pk} is {current.state}: only failed or cancelled jobs are retried")
    logger.info("admin API: job %d (%s) queued again", pk, current.kind)
    return Job(**ctx.queue.retry(pk).as_json())
