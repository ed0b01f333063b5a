"""The admin HTTP API: status, index, jobs, routes, rendering, export (FastAPI on uvicorn).

It runs inside the daemon, on the daemon's asyncio loop, bound to ``AdminAPIAddress``
(127.0.0.1 by default) on ``AdminAPIPort`` (none: no API).  Every request needs
``Authorization: Bearer <token>``: ``AdminToken``, else a token generated once into
``<DataDir>/admin.token`` (mode 0600) that ``node-ctl`` reads with the same config.
``docs/api.md`` lists the endpoints.

Public API::

    api = await start_admin_api(settings, node, queue=..., routes=..., counters=...)
    ...
    await api.stop()

    create_app(ApiContext(...)) -> FastAPI        # the app alone (tests, other servers)
    server_token(settings) -> str                # the token the API requires

Modules: ``_app`` (factory), ``_auth`` (token), ``_errors`` (error -> status table),
``_context`` (dependencies), ``_models`` (bodies), one router per resource (``_status``,
``_browse``, ``_jobs``, ``_routes``, ``_media``), ``_server`` (uvicorn on the loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from config.model import Settings
from node.api._app import all_routes, create_app
from node.api._auth import TOKEN_FILE, read_token_file, server_token, token_path
from node.api._context import ApiContext, RouteServiceLike
from node.api._errors import STATUS_FOR, ApiError, BadRequest, Conflict, NotFound, UnknownAE
from node.api._server import AdminApi
from storage.jobs import JobQueue

if TYPE_CHECKING:
    from node.app import Node


async def start_admin_api(
    settings: Settings,
    node: Node,
    *,
    queue: JobQueue | None = None,
    routes: RouteServiceLike | None = None,
    counters: Callable[[], dict[str, int]] | None = None,
) -> AdminApi | None:
    """Start the admin API for a running ``node`` (None when ``AdminAPIPort`` is not set).

    Raises ``OSError`` when the address cannot be bound.
    """
    if settings.admin_api_port is None:
        return None
    ctx = ApiContext(
        settings=settings,
        index=node.index,
        stores=node.stores,
        queue=queue if queue is not None else JobQueue(node.index.engine),
        token=server_token(settings),
        routes=routes,
        associations=lambda: len(node.ae.active_associations),
        dicom_port=node.port,
    )
    if counters is not None:
        ctx.counters = counters
    api = AdminApi(create_app(ctx), settings.admin_api_address, settings.admin_api_port)
    await api.start()
    return api


__all__ = [
    "STATUS_FOR",
    "TOKEN_FILE",
    "AdminApi",
    "ApiContext",
    "ApiError",
    "BadRequest",
    "Conflict",
    "NotFound",
    "RouteServiceLike",
    "UnknownAE",
    "all_routes",
    "create_app",
    "read_token_file",
    "server_token",
    "start_admin_api",
    "token_path",
]
