"""``GET /status``: what the node is, how long it has run, what it holds and is doing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends

from node import __version__
from node.api._context import ApiContext, get_context
from node.api._models import AECounts, Status

router = APIRouter(tags=["status"])

Ctx = Annotated[ApiContext, Depends(get_context)]


@router.get("/status", response_model=Status, summary="Version, uptime, counts, activity")
def status(ctx: Ctx) -> Status:
    titles = []
    totals = dict.fromkeys(("patients", "studies", "series", "instances"), 0)
    for entry in ctx.settings.ae_table:
        counts = ctx.index.counts(entry.title)
        for name in totals:
            totals[name] += counts[name]
        titles.append(AECounts(title=entry.title, access=entry.access, **counts))
    started = datetime.fromtimestamp(ctx.started_at, UTC).replace(tzinfo=None)
    return Status(
        version=__version__,
        started_at=started.isoformat(timespec="seconds") + "Z",
        uptime_seconds=round(time.time() - ctx.started_at, 3),
        dicom_port=ctx.dicom_port,
        ae_titles=titles,
        index=totals,
        jobs=ctx.queue.counts(),
        associations=ctx.associations(),
        events=dict(ctx.counters()),
    )
