"""The typed dependencies every handler receives (bound with ``(evt.EVT_*, handler, [ctx])``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pynetdicom.association import Association

from config.model import AEEntry, Settings
from storage.files import FileStore
from storage.index import Index
from storage.ingest import Ingestor


@dataclass
class NodeContext:
    """What the services need: settings, the index, the stores, and a way to signal events."""

    settings: Settings
    index: Index
    ingestor: Ingestor
    stores: dict[str, FileStore]
    #: Called (from the association's thread) when something happened that the asyncio
    #: side may act on, e.g. ``("instance-stored", {...})``.  Must not block.
    notify: Callable[[str, dict[str, Any]], None] = field(default=lambda kind, info: None)

    def called_ae(self, assoc: Association) -> AEEntry:
        """The AETable entry the peer called (the acceptor checked it exists)."""
        entry = self.settings.ae(assoc.acceptor.ae_title)
        if entry is None:  # cannot happen after the association policy accepted it
            raise LookupError(f"called AE {assoc.acceptor.ae_title!r} not configured")
        return entry


class AssociationLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every message with the association, the peer AE/host and the called AE."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.extra['prefix']} {msg}", kwargs  # type: ignore[index]


def assoc_log(logger: logging.Logger, assoc: Association) -> AssociationLog:
    peer = assoc.requestor
    prefix = (
        f"[{assoc.name} {peer.ae_title.strip()}@{peer.address}:{peer.port}"
        f" -> {assoc.acceptor.ae_title.strip()}]"
    )
    return AssociationLog(logger, {"prefix": prefix})
