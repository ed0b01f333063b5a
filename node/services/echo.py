"""C-ECHO SCP: the verification service."""

from __future__ import annotations

import logging

from pynetdicom.events import Event

from node.services.context import NodeContext, assoc_log

logger = logging.getLogger(__name__)


def handle_echo(event: Event, ctx: NodeContext) -> int:
    assoc_log(logger, event.assoc).info("C-ECHO")
    return 0x0000
