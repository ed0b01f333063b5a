"""What C-MOVE and C-GET share: which instances a request names, and what to send for each.

Why here: both services resolve the identifier to stored files the same way, and both must
send each file in a transfer syntax the receiving side accepted: the stored syntax when a
context for it exists (the bytes go out as stored, elements undecoded), otherwise decoded to
an uncompressed syntax (transcode-on-retrieve), otherwise the sub-operation fails.  How the
C-STOREs travel is ``node.services.sender``'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom.association import Association
from pynetdicom.dsutils import encode
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from config.model import AEEntry
from node.services import sender, status
from node.services.context import AssociationLog, NodeContext
from node.services.sender import Payload
from node.services.storedfile import StoredDataset
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
    """Contexts for a sub-association: each stored syntax, plus an uncompressed fallback.

    An uncompressed stored syntax is offered first in one context with the other one (a
    peer that honours the order takes it, and the bytes go out as stored); a second context
    for the same SOP class would be clearer, but GDCM's gdcmscu aborts on such a request.
    """
    contexts: list[PresentationContext] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for instance in instances:
        syntax = UID(instance.transfer_syntax_uid)
        if syntax in UNCOMPRESSED:
            options = [(syntax, *(uid for uid in UNCOMPRESSED if uid != syntax))]
        else:
            options = [(syntax,), UNCOMPRESSED]
        for syntaxes in options:
            key = (instance.sop_class_uid, tuple(syntaxes))
            if key in seen or len(contexts) >= _MAX_CONTEXTS:
                continue
            seen.add(key)
            contexts.append(build_context(instance.sop_class_uid, list(syntaxes)))
    return contexts


class StoredFile(Dataset):
    """Stands for a stored file in pynetdicom's C-MOVE/C-GET loops (see ``payload_for``).

    The loops want a ``Dataset`` per sub-operation; this one carries only the UIDs (so they
    can count and report it) and the path whose dataset bytes go out as stored.
    """

    source_path: str

    @classmethod
    def of(cls, path: str, instance: StoredInstance) -> StoredFile:
        ds = cls()
        ds.SOPClassUID = instance.sop_class_uid
        ds.SOPInstanceUID = instance.sop_instance_uid
        object.__setattr__(ds, "source_path", path)
        return ds


def payload_for(item: Dataset, accepted: list[PresentationContext]) -> Payload:
    """What to send for ``item`` over the ``accepted`` contexts.

    The file's dataset bytes as stored when a context for its SOP class and transfer syntax
    was accepted; otherwise decoded (and decompressed) and encoded in an accepted
    uncompressed syntax (transcode-on-retrieve); otherwise ``RetrieveError``.
    """
    if not isinstance(item, StoredFile):
        raise RetrieveError("no stored file to send")
    sop_class = str(item.SOPClassUID)
    ours = [
        cx
        for cx in accepted
        if cx.abstract_syntax == sop_class and cx.as_scu is not False and cx.context_id
    ]
    stored = StoredDataset.read(item.source_path)
    for cx in ours:
        if cx.transfer_syntax[0] == stored.transfer_syntax:
            return Payload(
                cast(int, cx.context_id), sop_class, str(item.SOPInstanceUID), stored.data
            )
    target = next(
        (cx for syntax in UNCOMPRESSED for cx in ours if cx.transfer_syntax[0] == syntax), None
    )
    syntax = UID(stored.transfer_syntax)
    if target is None:
        raise RetrieveError(
            f"no accepted presentation context for {sop_class} in {syntax.name} "
            "or an uncompressed transfer syntax"
        )
    ds = dcmread(item.source_path)
    if syntax.is_compressed:
        try:
            # a change of transfer syntax is the same instance (the C-STORE names its UID):
            # pydicom would otherwise give the decompressed dataset a new SOP Instance UID
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # noqa: BLE001 - no decoder for this stream
            raise RetrieveError(f"cannot decompress {syntax.name}: {exc}") from exc
    out = UID(target.transfer_syntax[0])
    data = encode(ds, out.is_implicit_VR, out.is_little_endian, out.is_deflated)
    if data is None:
        raise RetrieveError(f"cannot encode the dataset in {out.name}")
    return Payload(cast(int, target.context_id), sop_class, str(item.SOPInstanceUID), data)


def send_on_sub_association(assoc: Association, log: AssociationLog) -> None:
    """Send a C-MOVE's C-STOREs on ``assoc`` (its sub-association) with the node's sender."""
    sender.take_over(assoc, payload_for, log)


def send_on_association(assoc: Association, log: AssociationLog) -> None:
    """Send a C-GET's C-STOREs back on ``assoc`` with the node's sender."""
    sender.install(assoc, payload_for, log)
    sender.fast_pending_responses(assoc)


def send_all(
    event: Event,
    ctx: NodeContext,
    instances: list[StoredInstance],
    log: logging.LoggerAdapter[logging.Logger],
) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """Yield (Pending, stored file) per instance; the sender turns each into a C-STORE.

    A file that cannot go (unreadable, no acceptable context) fails in the sender, which
    pynetdicom counts as a failed sub-operation and lists in FailedSOPInstanceUIDList.
    """
    failed: list[str] = []
    for instance in instances:
        if event.is_cancelled:
            log.info("C-MOVE/C-GET cancelled")
            cancelled = Dataset()
            cancelled.FailedSOPInstanceUIDList = failed
            yield status.CANCEL, cancelled
            return
        try:
            path = storage_area(ctx, instance)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            log.error("cannot send %s: %s", instance.sop_instance_uid, exc)
            failed.append(instance.sop_instance_uid)
            placeholder = Dataset()  # not a StoredFile: the sender fails it
            placeholder.SOPInstanceUID = instance.sop_instance_uid
            yield status.PENDING, placeholder
            continue
        yield status.PENDING, StoredFile.of(path, instance)
    # pynetdicom sends the final response (Success, or 0xB000 with the failed UIDs) itself
    # once every sub-operation has run.
