"""The admin API's errors, and the one table that turns any error into an HTTP status.

Errors raised by the API itself::

    ApiError
     +-- NotFound      404  no such patient, study, series or instance
     +-- BadRequest    400  a parameter the endpoint cannot use
     |    +-- UnknownAE     an ``ae`` that is not an AETable title
     +-- Conflict      409  the resource's state refuses the action (a finished job
                            cancelled, an instance without pixel data rendered)

Errors of the layers below are mapped in :data:`STATUS_FOR` (by class, the nearest base
wins), so a handler lets them propagate and never builds an error response itself; a test
checks that every subclass of the mapped trees resolves to a status.  Every error answer is
JSON ``{"detail": "..."}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from node.jobs.kinds.base import InvalidJobParams
from node.jobs.routes import RouteError, UnknownRoute
from node.tools.dicomdir import (
    DicomdirError,
    InvalidFileID,
    InvalidValue,
    NothingToWrite,
    OutputError,
    UnknownProfile,
)
from node.tools.render import (
    InvalidOption,
    NoPixelData,
    OutputFormatError,
    RenderError,
    RenderOutputError,
    UnsupportedImage,
)
from storage.index import IndexError_, IndexUnavailableError, QuotaExceededError
from storage.jobs import JobError, LeaseLost, UnknownJob
from storage.query import InvalidIdentifierError, QueryError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of the errors the API raises itself."""


class NotFound(ApiError):
    """No such patient, study, series or instance."""


class BadRequest(ApiError):
    """A parameter the endpoint cannot use."""


class UnknownAE(BadRequest):
    """An ``ae`` parameter that names no AETable entry."""


class Conflict(ApiError):
    """The resource's state refuses the action."""


#: Exception class -> HTTP status; the nearest class in an exception's MRO decides.  Every
#: subclass of a class listed here is listed too (a test checks): a new error must be given
#: its status on purpose, not inherit a 500 by accident.
STATUS_FOR: dict[type[Exception], int] = {
    ApiError: 500,
    NotFound: 404,
    BadRequest: 400,
    UnknownAE: 400,
    Conflict: 409,
    # the job queue and the kinds (node.jobs.kinds validates the parameters)
    JobError: 500,
    UnknownJob: 404,
    LeaseLost: 409,
    InvalidJobParams: 400,
    # routes
    RouteError: 500,
    UnknownRoute: 404,
    # listing filters (C-FIND matching)
    QueryError: 400,
    InvalidIdentifierError: 400,
    # rendering: the frame or size asked for, or an instance that has no picture
    RenderError: 500,
    InvalidOption: 400,
    NoPixelData: 409,
    UnsupportedImage: 409,
    OutputFormatError: 500,
    RenderOutputError: 500,
    # export: the profile asked for, or nothing exportable in the study
    DicomdirError: 500,
    UnknownProfile: 400,
    NothingToWrite: 409,
    InvalidFileID: 500,
    InvalidValue: 500,
    OutputError: 500,
    # the index
    IndexError_: 500,
    IndexUnavailableError: 503,
    QuotaExceededError: 409,
}


def status_for(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (500 for anything the table does not know)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_FOR:
            return STATUS_FOR[cls]
    return 500


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every mapped error as ``{"detail": ...}`` with its status."""
    for cls in STATUS_FOR:
        app.add_exception_handler(cls, _handle)


__all__ = [
    "STATUS_FOR",
    "ApiError",
    "BadRequest",
    "Conflict",
    "NotFound",
    "UnknownAE",
    "install_error_handlers",
    "status_for",
]
