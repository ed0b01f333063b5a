"""C-MOVE SCP: send the named instances to a destination from the config's tables.

pynetdicom opens the sub-association with the contexts we hand it (the stored syntaxes plus
an uncompressed fallback) and reports pending/final counts; a handler bound to the
sub-association's EVT_ACCEPTED tells us what the destination accepted, so each instance goes
out as stored or decompressed on the fly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pynetdicom import evt
from pynetdicom.events import Event

from node.services import retrieve, status
from node.services.context import NodeContext, assoc_log

logger = logging.getLogger(__name__)


def handle_move(event: Event, ctx: NodeContext) -> Iterator[Any]:
    log = assoc_log(logger, event.assoc)
    destination_ae = str(event.move_destination or "").strip()
    ae = ctx.called_ae(event.assoc)
    destination = ctx.settings.move_destination(destination_ae)
    if destination is None:
        comment = f"Move destination {destination_ae} unknown: not in AETable/HostTable"
        log.error(
            "C-MOVE refused: move destination %r is not configured (add it to the HostTable "
            "with its host and port)",
            destination_ae,
        )
        _comment_next_failure(event, comment)
        yield None, None
        return
    try:
        selection = retrieve.select_instances(ctx, ae, event.identifier)
    except Exception as exc:  # noqa: BLE001
        log.error("C-MOVE refused: %s", exc)
        yield destination.hostname, destination.port
        yield 0
        yield status.failure(status.IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
        return

    accepted: dict[str, Any] = {}

    def _capture(sub_event: Event) -> None:
        accepted["contexts"] = sub_event.assoc.accepted_contexts
        retrieve.send_stored_files(sub_event.assoc)

    instances = selection.instances
    log.info(
        "C-MOVE %s level: %d instance(s) to %s@%s:%d",
        selection.level,
        len(instances),
        destination_ae,
        destination.hostname,
        destination.port,
    )
    yield (
        destination.hostname,
        destination.port,
        {
            "contexts": retrieve.proposed_contexts(instances) or None,
            "evt_handlers": [(evt.EVT_ACCEPTED, _capture)],
            "max_pdu": ctx.settings.max_pdu_size,
        },
    )
    yield len(instances)
    yield from retrieve.send_all(event, ctx, instances, lambda: accepted.get("contexts", []), log)


def _comment_next_failure(event: Event, comment: str) -> None:
    """Put ``comment`` in the 0xA801 response pynetdicom sends for an unknown destination.

    pynetdicom builds that response itself and offers no way to add an Error Comment, the
    one thing that tells an admin what to fix; so the association's DIMSE sender is wrapped
    for exactly that one message.
    """
    dimse = event.assoc.dimse
    original = dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        if getattr(primitive, "Status", None) == status.MOVE_DESTINATION_UNKNOWN:
            primitive.ErrorComment = comment[:64]
            dimse.send_msg = original  # type: ignore[method-assign]
        original(primitive, context_id)

    dimse.send_msg = send_msg  # type: ignore[method-assign]
