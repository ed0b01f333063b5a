"""The FastAPI application of the admin API: routers, errors, token check, OpenAPI.

``/docs`` and ``/redoc`` are off (they load scripts from a CDN); ``/openapi.json`` serves
the OpenAPI document and, like every path, needs the token.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from node import __version__
from node.api import _browse, _jobs, _media, _routes, _status
from node.api._auth import TokenAuth
from node.api._context import ApiContext
from node.api._errors import install_error_handlers
from node.api._models import Problem

TITLE = "dicom-node admin API"

#: The routers the app serves, in this order.
ROUTERS = (_status.router, _browse.router, _jobs.router, _routes.router, _media.router)

#: Every operation can answer these (the token check and the error mapping).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no token, or a wrong one"},
    404: {"model": Problem, "description": "no such resource"},
    400: {"model": Problem, "description": "a parameter the endpoint cannot use"},
}


def all_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint of ``app``, the routers' included (FastAPI may keep those apart)."""
    found: dict[tuple[str, frozenset[str]], APIRoute] = {}
    candidates = [*app.routes, *(r for router in ROUTERS for r in router.routes)]
    for route in candidates:
        if isinstance(route, APIRoute):
            found.setdefault((route.path, frozenset(route.methods)), route)
    return list(found.values())


def create_app(ctx: ApiContext) -> FastAPI:
    """The admin API around ``ctx``; every request needs ``Authorization: Bearer <token>``."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description="Status, index, jobs, routes, rendering and export of a dicom-node. "
        "Every request needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=COMMON_RESPONSES,
    )
    app.state.ctx = ctx
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document() -> dict[str, Any]:
        return openapi()

    app.add_middleware(TokenAuth, token=ctx.token)
    return app
