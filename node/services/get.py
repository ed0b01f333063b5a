"""C-GET SCP: send the named instances back on the same association (role selection)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pynetdicom.events import Event

from node.services import retrieve, status
from node.services.context import NodeContext, assoc_log

logger = logging.getLogger(__name__)


def handle_get(event: Event, ctx: NodeContext) -> Iterator[Any]:
    log = assoc_log(logger, event.assoc)
    ae = ctx.called_ae(event.assoc)
    try:
        selection = retrieve.select_instances(ctx, ae, event.identifier)
    except Exception as exc:  # noqa: BLE001
        log.error("C-GET refused: %s", exc)
        yield 0
        yield status.failure(status.IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
        return
    log.info("C-GET %s level: %d instance(s)", selection.level, len(selection.instances))
    retrieve.send_on_association(event.assoc, log)
    yield len(selection.instances)
    yield from retrieve.send_all(event, ctx, selection.instances, log)
