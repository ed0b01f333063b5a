"""C-FIND SCP: Patient Root and Study Root, through ``storage.query``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pynetdicom.events import Event
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from node.services import find_rsp, status
from node.services.context import NodeContext, assoc_log
from storage import query

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

ROOTS = {
    PatientRootQueryRetrieveInformationModelFind: query.PATIENT_ROOT,
    StudyRootQueryRetrieveInformationModelFind: query.STUDY_ROOT,
}


def handle_find(event: Event, ctx: NodeContext) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    log = assoc_log(logger, event.assoc)
    try:
        ae = ctx.called_ae(event.assoc)
        if not ae.can_read:
            yield status.failure(status.UNABLE_TO_PROCESS, f"{ae.title} is write-only"), None
            return
        root = ROOTS.get(event.request.AffectedSOPClassUID, query.PATIENT_ROOT)
        parsed = query.parse_identifier(event.identifier, root)
    except query.QueryError as exc:
        log.error("C-FIND refused: %s", exc)
        yield status.failure(status.status_for(exc), str(exc)), None
        return
    except Exception as exc:  # noqa: BLE001
        log.exception("C-FIND: cannot read the identifier")
        yield status.failure(status.IDENTIFIER_DOES_NOT_MATCH, f"bad identifier: {exc}"), None
        return
    charsets = response_charsets(ctx, event.identifier)
    log.info("C-FIND %s level %s", root, parsed.level)
    count = 0
    sender = find_rsp.sender_for(event)
    try:
        with ctx.index.read_session() as session:
            if sender is None:  # pynetdicom sends each response
                for response in query.responses(session, ae.title, parsed, ae.title, charsets):
                    if event.is_cancelled:
                        log.info("C-FIND cancelled after %d matches", count)
                        yield status.CANCEL, None
                        return
                    count += 1
                    yield status.PENDING, response
            else:  # we send the Pending responses, pynetdicom the final one
                for encoded in _encoded(session, sender, ae.title, parsed, charsets):
                    if event.is_cancelled:
                        log.info("C-FIND cancelled after %d matches", count)
                        yield status.CANCEL, None
                        return
                    if not sender.is_open():
                        log.info("C-FIND: association ended after %d matches", count)
                        break
                    sender.send(encoded)
                    count += 1
    except Exception as exc:  # noqa: BLE001
        log.exception("C-FIND failed")
        yield status.failure(status.UNABLE_TO_PROCESS, f"query failed: {exc}"), None
        return
    log.info("C-FIND done: %d match(es)", count)
    yield status.SUCCESS, None


def _encoded(
    session: Session,
    sender: find_rsp.PendingSender,
    ae_title: str,
    parsed: query.Query,
    charsets: list[str],
) -> Iterator[bytes]:
    """The response identifiers, encoded in the transfer syntax of the request's context."""
    if sender.plain:
        yield from query.encoded_responses(
            session, ae_title, parsed, ae_title, charsets, implicit_vr=sender.implicit_vr
        )
        return
    for response in query.responses(session, ae_title, parsed, ae_title, charsets):
        yield sender.encode(response)


def response_charsets(ctx: NodeContext, identifier: Dataset) -> list[str]:
    """Character sets to answer in, by preference (dcmqrscp's SpecificCharacterSet rules).

    ``override`` puts the configured set first; otherwise the request's comes first and the
    configured one is the fallback.  When none can hold a value, the answer is UTF-8 rather
    than dcmqrscp's ASCII with lost characters.
    """
    requested = identifier.get("SpecificCharacterSet") or []
    if isinstance(requested, str):
        requested = [requested]
    requested = [str(c) for c in requested if str(c).strip()] or ["ISO_IR 6"]
    configured = ctx.settings.response_character_set
    options = ctx.settings.character_set_options
    if configured and "override" in options:
        return [configured]
    return requested + ([configured] if configured else [])
