"""What the admin API's handlers need, handed over once by the daemon (no globals).

Why one dataclass: like ``NodeContext`` for the DIMSE handlers, every endpoint receives the
same typed dependencies (settings, index, stores, job queue, routes, live counters), so a
test can build the app around a real index without a running DICOM listener.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request

from config.model import AEEntry, Settings
from node.api._errors import UnknownAE
from storage.files import FileStore
from storage.index import Index
from storage.jobs import JobQueue


class RouteServiceLike(Protocol):
    """The part of ``node.jobs.routes.RouteService`` the API calls."""

    def list(self) -> list[dict[str, Any]]: ...

    def run(
        self, name: str, *, dry_run: bool = False, reason: str = "manual"
    ) -> dict[str, Any]: ...

    def history(self, name: str, limit: int = 20) -> builtins.list[dict[str, Any]]: ...


def _no_counters() -> dict[str, int]:
    return {}


def _no_associations() -> int:
    return 0


@dataclass
class ApiContext:
    """The dependencies of every endpoint."""

    settings: Settings
    index: Index
    stores: dict[str, FileStore]
    queue: JobQueue
    #: The secret every request must carry (``Authorization: Bearer <token>``).
    token: str
    #: ``None`` when the node runs no route service (every route name is then unknown).
    routes: RouteServiceLike | None = None
    #: Events counted by the daemon's relay (``instance-stored``...), read live.
    counters: Callable[[], dict[str, int]] = field(default=_no_counters)
    #: Number of DICOM associations in progress, read live.
    associations: Callable[[], int] = field(default=_no_associations)
    #: The port the DICOM listener is bound to (the configured one until it is known).
    dicom_port: int | None = None
    started_at: float = field(default_factory=time.time)
    #: Who submitted the jobs the API creates (``Job.origin``).
    origin: str = "api"

    def ae_entry(self, title: str | None) -> AEEntry:
        """The AETable entry ``title`` (default: the first); :class:`UnknownAE` if none."""
        if not self.settings.ae_table:
            raise UnknownAE("the configuration has no AETable entry")
        if not title:
            return self.settings.ae_table[0]
        entry = self.settings.ae(title)
        if entry is None:
            known = ", ".join(e.title for e in self.settings.ae_table)
            raise UnknownAE(f"AE title {title!r} is not in the AETable (it has {known})")
        return entry


def get_context(request: Request) -> ApiContext:
    """FastAPI dependency: the context the app was built with."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
