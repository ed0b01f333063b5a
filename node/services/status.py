"""The one place where errors become PS3.4 status codes.

A handler catches the typed errors of ``storage`` and the tools and asks ``status_for`` which
status to send; ``tests/services/test_status.py`` checks that every error class is mapped.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from storage import ingest, query

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
#: C-STORE / C-FIND / C-MOVE failure codes used by the node (PS3.4 B.2.3, C.4.1.1.4).
REFUSED_NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
MOVE_OUT_OF_RESOURCES_SUBOPS = 0xA702
MOVE_DESTINATION_UNKNOWN = 0xA801
IDENTIFIER_DOES_NOT_MATCH = 0xA900
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
UNABLE_TO_PROCESS = 0xC000
SUBOPERATIONS_FAILED = 0xB000

STATUS_FOR: dict[type[Exception], int] = {
    ingest.UnreadableDatasetError: CANNOT_UNDERSTAND,
    ingest.DatasetMismatchError: DATASET_DOES_NOT_MATCH,
    ingest.OutOfResourcesError: OUT_OF_RESOURCES,
    ingest.NotAuthorizedError: REFUSED_NOT_AUTHORIZED,
    query.InvalidIdentifierError: IDENTIFIER_DOES_NOT_MATCH,
}


def status_for(exc: Exception, default: int = UNABLE_TO_PROCESS) -> int:
    """The status for an error: the most specific mapped class it is an instance of."""
    for klass in type(exc).__mro__:
        if klass in STATUS_FOR:
            return STATUS_FOR[klass]
    return default


def failure(status: int, comment: str) -> Dataset:
    """A status dataset with an Error Comment (LO: at most 64 characters, ASCII)."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment.encode("ascii", "replace").decode()[:64]
    return ds
