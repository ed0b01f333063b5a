"""C-MOVE SCP: send the named instances to a destination from the config's tables.

pynetdicom opens the sub-association with the contexts we hand it (the stored syntaxes plus
an uncompressed fallback) and reports pending/final counts; a handler bound to the
sub-association's EVT_ESTABLISHED hands its C-STOREs to the node's sender
(``node.services.sender``), which sends each instance as stored or transcoded
(``retrieve.payload_for``) for the contexts the destination accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pynetdicom import evt
from pynetdicom.events import Event

from node.services import retrieve, sender, status
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

    def _established(sub_event: Event) -> None:
        # runs on this thread, inside pynetdicom's associate(), before the sub-association's
        # own thread starts: the C-STOREs are ours from here (node.services.sender)
        retrieve.send_on_sub_association(sub_event.assoc, log)

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
            "evt_handlers": [(evt.EVT_ESTABLISHED, _established)],
            "max_pdu": ctx.settings.max_pdu_size,
        },
    )
    sender.fast_pending_responses(event.assoc)
    yield len(instances)
    yield from retrieve.send_all(event, ctx, instances, log)


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
