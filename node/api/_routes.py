"""Routes: list them, run one now (or dry-run it), read its history (``node.jobs.routes``).

A dry run selects the studies the route would take and shows one instance's header before
and after the route's de-identification, without sending or recording anything: what would
leave the building.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from node.api._context import ApiContext, RouteServiceLike, get_context
from node.api._models import RouteHistory, RouteList
from node.jobs.routes import UnknownRoute

logger = logging.getLogger(__name__)

router = APIRouter(tags=["routes"])

Ctx = Annotated[ApiContext, Depends(get_context)]
RouteName = Annotated[str, Path(max_length=64, description="the route's name in the config")]


def _service(ctx: ApiContext, name: str) -> RouteServiceLike:
    """The route service; without one (no RouteTable) every name is unknown."""
    if ctx.routes is None:
        raise UnknownRoute(name)
    return ctx.routes


@router.get("/routes", response_model=RouteList, summary="The configured routes")
def list_routes(ctx: Ctx) -> RouteList:
    return RouteList(routes=ctx.routes.list() if ctx.routes is not None else [])


@router.post(
    "/routes/{name}/run",
    responses={
        200: {"description": "dry run: the selection and a sample header before/after"},
        202: {"description": "the run was started: its jobs are queued"},
        404: {"description": "no route of that name"},
    },
    summary="Run a route now (or dry-run it)",
)
def run_route(
    ctx: Ctx,
    name: RouteName,
    response: Response,
    dry_run: Annotated[bool, Query(description="select and show, send nothing")] = False,
) -> dict[str, Any]:
    result = _service(ctx, name).run(name, dry_run=dry_run, reason="manual")
    if not dry_run:
        logger.info("admin API: route %s run %s", name, result.get("run"))
    response.status_code = 200 if dry_run else 202
    return result


@router.get("/routes/{name}/history", response_model=RouteHistory, summary="A route's runs")
def route_history(
    ctx: Ctx,
    name: RouteName,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> RouteHistory:
    return RouteHistory(route=name, runs=_service(ctx, name).history(name, limit=limit))
