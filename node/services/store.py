"""C-STORE SCP: hand the received bytes to ``storage.ingest`` and answer only when durable."""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from node.receive import ReceivedPart
from node.services import status
from node.services.context import NodeContext, assoc_log
from storage.ingest import IngestError, OutOfResourcesError, Received

logger = logging.getLogger(__name__)


def handle_store(event: Event, ctx: NodeContext) -> int | Dataset:
    log = assoc_log(logger, event.assoc)
    request = event.request
    sop_uid = str(request.AffectedSOPInstanceUID or "")
    try:
        ae = ctx.called_ae(event.assoc)
        result = ctx.ingestor.store(
            ae,
            received(event),
            str(event.context.transfer_syntax),
            calling_ae_title=event.assoc.requestor.ae_title.strip(),
            expected_sop_class_uid=str(request.AffectedSOPClassUID or "") or None,
            expected_sop_instance_uid=sop_uid or None,
        )
    except IngestError as exc:
        code = status.status_for(exc)
        log.error("C-STORE %s refused: 0x%04X %s", sop_uid, code, exc)
        return status.failure(code, str(exc))
    except Exception as exc:  # noqa: BLE001 - never let a handler raise (pynetdicom: 0xC211)
        log.exception("C-STORE %s failed", sop_uid)
        return status.failure(status.OUT_OF_RESOURCES, f"internal error: {exc}")
    log.info(
        "C-STORE %s stored%s (%d bytes)",
        sop_uid,
        " (replaced)" if result.replaced else "",
        result.size,
    )
    ctx.notify(
        "instance-stored",
        {
            "ae_title": ae.title,
            "calling_ae_title": event.assoc.requestor.ae_title.strip(),
            "sop_instance_uid": result.sop_instance_uid,
            "study_instance_uid": result.study_instance_uid,
        },
    )
    return 0x0000


def received(event: Event) -> Received:
    """The dataset of a C-STORE: our receive file, pynetdicom's temp file, or its buffer."""
    part = getattr(event.request, "_dataset_file", None)
    if isinstance(part, ReceivedPart):
        if part.error is not None:
            raise OutOfResourcesError(f"cannot receive the dataset: {part.error}")
        return Received(
            path=Path(part.name), offset=len(part.meta), meta=part.meta, header=part.header
        )
    path = getattr(event.request, "_dataset_path", None)
    if path is not None:
        return Received.from_file(Path(path))
    return Received(data=event.request.DataSet.getbuffer())  # type: ignore[union-attr]
