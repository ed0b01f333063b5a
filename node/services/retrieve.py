"""What C-MOVE and C-GET share: which instances a request names, and how to send each one.

Why here: both services resolve the identifier to stored files the same way, and both must
send each file in a transfer syntax the receiving side accepted: the stored syntax when a
context for it exists (the bytes go out as stored, elements undecoded), otherwise decoded to
an uncompressed syntax (transcode-on-retrieve), otherwise the sub-operation fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from config.model import AEEntry
from node.services import status
from node.services.context import NodeContext
from storage.index import StoredInstance

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_MAX_CONTEXTS = 128


class RetrieveError(Exception):
    """An identifier that does not name instances, or a file that cannot be sent."""


@dataclass(frozen=True)
class Selection:
    level: str
    instances: list[StoredInstance]


def _uids(identifier: Dataset, keyword: str) -> list[str]:
    value = identifier.get(keyword)
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("\\") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def select_instances(ctx: NodeContext, ae: AEEntry, identifier: Dataset) -> Selection:
    """The stored instances a C-MOVE/C-GET identifier names (unique keys of each level)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    keys = {
        "patient_ids": _uids(identifier, "PatientID"),
        "study_uids": _uids(identifier, "StudyInstanceUID"),
        "series_uids": _uids(identifier, "SeriesInstanceUID"),
        "sop_uids": _uids(identifier, "SOPInstanceUID"),
    }
    required = {
        "PATIENT": "patient_ids",
        "STUDY": "study_uids",
        "SERIES": "series_uids",
        "IMAGE": "sop_uids",
    }.get(level)
    if required is None:
        raise RetrieveError(f"QueryRetrieveLevel {level!r} is not valid")
    if not keys[required]:
        raise RetrieveError(f"the {level} level needs its unique key")
    return Selection(level, ctx.index.instances(ae.title, **keys))


def storage_area(ctx: NodeContext, instance: StoredInstance) -> str:
    return str(ctx.stores[instance.ae_title].absolute(instance.path))


def proposed_contexts(instances: list[StoredInstance]) -> list[PresentationContext]:
    """Contexts for a sub-association: each stored syntax, plus an uncompressed fallback."""
    contexts: list[PresentationContext] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for instance in instances:
        syntax = UID(instance.transfer_syntax_uid)
        options = [UNCOMPRESSED] if syntax in UNCOMPRESSED else [(syntax,), UNCOMPRESSED]
        for syntaxes in options:
            key = (instance.sop_class_uid, tuple(syntaxes))
            if key in seen or len(contexts) >= _MAX_CONTEXTS:
                continue
            seen.add(key)
            contexts.append(build_context(instance.sop_class_uid, list(syntaxes)))
    return contexts


def dataset_for(
    path: str, instance: StoredInstance, accepted: list[PresentationContext]
) -> Dataset:
    """The dataset to send over ``accepted`` contexts (raw elements, or decompressed)."""
    ours = [cx for cx in accepted if cx.abstract_syntax == instance.sop_class_uid]
    syntaxes = {UID(cx.transfer_syntax[0]) for cx in ours}
    stored = UID(instance.transfer_syntax_uid)
    ds = dcmread(path)
    if stored in syntaxes or (stored in UNCOMPRESSED and syntaxes & set(UNCOMPRESSED)):
        return ds
    if syntaxes & set(UNCOMPRESSED) and stored.is_compressed:
        try:
            ds.decompress()
        except Exception as exc:  # noqa: BLE001 - no decoder for this stream
            raise RetrieveError(f"cannot decompress {stored.name}: {exc}") from exc
        return ds
    raise RetrieveError(f"no accepted presentation context for {instance.sop_class_uid}")


def send_all(
    event: Event,
    ctx: NodeContext,
    instances: list[StoredInstance],
    accepted: Callable[[], list[PresentationContext]],
    log: logging.LoggerAdapter[logging.Logger],
) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """Yield (Pending, dataset) per instance; a file that cannot go counts as failed."""
    failed: list[str] = []
    for instance in instances:
        if event.is_cancelled:
            log.info("C-MOVE/C-GET cancelled")
            cancelled = Dataset()
            cancelled.FailedSOPInstanceUIDList = failed
            yield status.CANCEL, cancelled
            return
        try:
            ds = dataset_for(storage_area(ctx, instance), instance, accepted())
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            log.error("cannot send %s: %s", instance.sop_instance_uid, exc)
            failed.append(instance.sop_instance_uid)
            # A dataset without SOPClassUID makes pynetdicom's C-STORE sub-operation fail,
            # which it counts as failed and lists in FailedSOPInstanceUIDList.
            placeholder = Dataset()
            placeholder.SOPInstanceUID = instance.sop_instance_uid
            yield status.PENDING, placeholder
            continue
        yield status.PENDING, ds
    # pynetdicom sends the final response (Success, or 0xB000 with the failed UIDs) itself
    # once every sub-operation has run.
