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
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from config.model import AEEntry
from node.scu import install_reactor_gate
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


class StoredFile(Dataset):
    """Stands for a stored file that goes out byte for byte (see ``send_stored_files``).

    pynetdicom's C-MOVE/C-GET loops want a ``Dataset`` per sub-operation and re-encode it,
    which drops group lengths and other bytes; this one carries only the UIDs (so the loops
    can count and report it) and the path whose dataset bytes are streamed as stored.
    """

    source_path: str

    @classmethod
    def of(cls, path: str, instance: StoredInstance) -> StoredFile:
        ds = cls()
        ds.SOPClassUID = instance.sop_class_uid
        ds.SOPInstanceUID = instance.sop_instance_uid
        object.__setattr__(ds, "source_path", path)
        return ds


def send_stored_files(assoc: Association) -> None:
    """Make ``assoc.send_c_store`` stream ``StoredFile`` placeholders from their file.

    Installed per association (the C-GET association, or a C-MOVE sub-association), so
    nothing else in the process changes.  Streaming needs pynetdicom's chunked sending,
    which only changes how a *path* is sent, so turning it on globally is harmless.
    """
    _config.STORE_SEND_CHUNKED_DATASET = True
    # The C-STORE-RSP race of pynetdicom's reactor (see node.scu.install_reactor_gate)
    # bites sub-associations as much as node-ctl's own.
    install_reactor_gate(assoc)
    original = assoc.send_c_store

    def send_c_store(dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if isinstance(dataset, StoredFile):
            return original(dataset.source_path, *args, **kwargs)
        return original(dataset, *args, **kwargs)

    assoc.send_c_store = send_c_store  # type: ignore[method-assign]


def dataset_for(
    path: str, instance: StoredInstance, accepted: list[PresentationContext]
) -> Dataset:
    """What to send over ``accepted`` contexts: the file as stored, or decompressed."""
    ours = [cx for cx in accepted if cx.abstract_syntax == instance.sop_class_uid]
    syntaxes = {UID(cx.transfer_syntax[0]) for cx in ours}
    stored = UID(instance.transfer_syntax_uid)
    if stored in syntaxes:
        return StoredFile.of(path, instance)
    ds = dcmread(path)
    if stored in UNCOMPRESSED and syntaxes & set(UNCOMPRESSED):
        return ds  # pynetdicom converts between the uncompressed syntaxes
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
