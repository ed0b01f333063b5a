"""DIMSE message assembly for accepted associations: C-STORE datasets go straight to the store.

pynetdicom's chunked receive (``_config.STORE_RECV_CHUNKED_DATASET``) writes each C-STORE
dataset into a ``NamedTemporaryFile`` behind its own file meta, flushing after every
fragment; ingest then parsed that meta again and copied the whole dataset into a second
file in the store.  ``NodeDIMSE`` assembles the fragments itself and writes a C-STORE
dataset, as it arrives, into a file in the called AE's store ``.tmp`` folder behind the
file meta the store would write (``storage.ingest.build_file_meta``: our implementation UID,
the calling AE as SourceApplicationEntityTitle).  ``storage.ingest`` then adopts that file
(rename, link, fsync) instead of copying it, when the meta it builds from the dataset
is byte-for-byte the one written here.

The file is named ``tmp*.dcm``: start-up recovery (``FileStore.recover``) removes such files
left by a receive that a crash interrupted.  The rest (command sets, C-FIND identifiers,
C-CANCEL, N-EVENT-REPORT, the queue the association reactor reads) behaves as pynetdicom's
``DIMSEServiceProvider.receive_primitive``.
"""

from __future__ import annotations

import io
import logging
import secrets
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydicom.dataset import Dataset
from pynetdicom import _config, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import _MESSAGE_TYPES, C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_CANCEL, C_STORE, N_EVENT_REPORT
from pynetdicom.dsutils import decode
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.utils import make_target

from node import commands
from node.dul import WakeQueue
from storage.ingest import EarlyHeader, build_file_meta

if TYPE_CHECKING:
    from pynetdicom.association import Association

logger = logging.getLogger(__name__)

#: Where the dataset of a C-STORE to the association's called AE is received (the store's
#: ``.tmp``), or None for the process's temp folder.
PartFolder = Callable[["Association"], "Path | None"]


class ReceivedPart:
    """Where a C-STORE dataset is received: ``meta`` (our file meta), then the dataset.

    The header (everything before the pixel data) is parsed as soon as its bytes are here
    (``header``), while the sender goes on filling the socket buffers, so that less is left
    between the last fragment and the C-STORE-RSP (the sender waits for that response
    before it sends the next instance).  Asking the kernel to start writing the file back
    as it grows (``sync_file_range``) was measured too: it cost more CPU than the final
    fsync saved.

    A write that fails (disk full) is not raised in the DUL thread, which would abort the
    association: the file is removed, the rest of the dataset is read and dropped, and
    ``error`` tells the C-STORE handler to answer Out of Resources.
    """

    def __init__(self, folder: Path | None, meta: bytes, transfer_syntax_uid: str = "") -> None:
        folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        #: pynetdicom's StorageServiceClass closes and unlinks ``name`` after the handler
        self.name = str(folder / f"tmprecv{secrets.token_hex(8)}.dcm")
        self.meta = meta
        self.error: OSError | None = None
        #: The dataset's header, parsed while the rest arrived (None: parse it at the end).
        self.header: Dataset | None = None
        self._head = EarlyHeader(transfer_syntax_uid)
        self._fh: io.FileIO | None = None
        try:
            self._fh = io.FileIO(self.name, "xb")
        except OSError as exc:
            self.error = exc
            return
        self._write(memoryview(meta))

    def write(self, data: Any) -> None:
        view = memoryview(data)
        if self._head.waiting:
            self.header = self._head.feed(view)
        self._write(view)

    def _write(self, view: memoryview) -> None:
        if self._fh is None:
            return
        try:
            while view:
                view = view[self._fh.write(view) or 0 :]
        except OSError as exc:
            self.error = exc
            self.discard()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def discard(self) -> None:
        """Close and remove the file (the dataset will not be stored)."""
        self.close()
        Path(self.name).unlink(missing_ok=True)


class NodeDIMSE(DIMSEServiceProvider):
    """DIMSE provider that writes C-STORE datasets straight into the store's ``.tmp``."""

    def __init__(self, assoc: Association, wake: threading.Event, part_folder: PartFolder):
        #: MessageID of the request being served (``NodeAssociation._serve_request``).
        self.serving_message_id: int | None = None
        super().__init__(assoc)
        self.msg_queue = WakeQueue(wake.set)
        self._part_folder = part_folder

    @property
    def cancel_req(self) -> dict[int, C_CANCEL]:
        """C-CANCEL requests received, by the MessageID they cancel."""
        return self._cancel_req

    @cancel_req.setter
    def cancel_req(self, value: dict[int, C_CANCEL]) -> None:
        """pynetdicom clears the C-CANCELs as it starts serving a request; one for the
        request being served is kept.

        Why: the DUL thread reads and stores a C-CANCEL as soon as it arrives, which can be
        before the association thread starts the C-FIND/C-MOVE/C-GET it cancels; pynetdicom
        (which read it later) would drop it there, and the operation would run to the end.
        """
        serving = self.serving_message_id
        kept = getattr(self, "_cancel_req", {}).get(serving) if serving is not None else None
        self._cancel_req = dict(value)
        if kept is not None and serving is not None:
            self._cancel_req.setdefault(serving, kept)

    def receive_primitive(self, primitive: P_DATA) -> None:
        """Add the fragments of a P-DATA to the message being received; queue it when done."""
        if self.message is None:
            self.message = DIMSEMessage()
        msg = self.message
        for context_id, data in primitive.presentation_data_value_list:
            control = data[0]
            if control & 1:  # command set fragment
                msg.encoded_command_set.write(data[1:])
                if not control & 2:
                    continue
                msg.context_id = context_id
                msg.command_set = decode(msg.encoded_command_set, True, True)
                msg.__class__ = _MESSAGE_TYPES[cast(int, msg.command_set.CommandField)][1]
                if msg.command_set.CommandDataSetType == 0x0101:  # no dataset follows
                    self._complete(msg)
                    return
                if _config.STORE_RECV_CHUNKED_DATASET and isinstance(msg, C_STORE_RQ):
                    self._open_part(msg, context_id)
            else:  # dataset fragment
                part = msg._data_set_file
                if part is not None:
                    part.write(data[1:])
                else:
                    cast(io.BytesIO, msg.data_set).write(data[1:])
                if control & 2:
                    self._complete(msg)
                    return

    def dataset_fragment(self, data: memoryview) -> bool:
        """Write a dataset fragment (not the last) of the C-STORE being received to its file.

        The DUL's shortcut for most PDUs of a C-STORE (``NodeDUL._indicate``); False when
        no C-STORE dataset is being received into a file, and the fragment takes the
        general path (``receive_primitive``).  Nothing the limits check applies here: the
        command is complete and the dataset goes to disk, not memory.
        """
        msg = self.message
        part = getattr(msg, "_data_set_file", None) if msg is not None else None
        if not isinstance(part, ReceivedPart):
            return False
        part.write(data)
        return True

    def _open_part(self, msg: DIMSEMessage, context_id: int) -> None:
        assoc = self.assoc
        cs = msg.command_set
        syntax = assoc._accepted_cx[context_id].transfer_syntax[0]
        meta = build_file_meta(
            str(cs.AffectedSOPClassUID or ""),
            str(cs.AffectedSOPInstanceUID or ""),
            str(syntax),
            assoc.requestor.ae_title,
        )
        part = ReceivedPart(self._part_folder(assoc), meta, str(syntax))
        msg._data_set_file = part  # type: ignore[assignment]
        msg._data_set_path = Path(part.name)

    def _complete(self, msg: DIMSEMessage) -> None:
        """As pynetdicom's ``receive_primitive`` does with a completely received message."""
        if msg._data_set_file is not None:
            msg._data_set_file.close()  # the handler reads it by name
        evt.trigger(self.assoc, evt.EVT_DIMSE_RECV, {"message": msg})
        context_id = cast(int, msg.context_id)
        try:
            primitive = msg.message_to_primitive()
        except Exception as exc:  # noqa: BLE001 - pynetdicom: an invalid message is Evt19
            logger.error("received an invalid DIMSE message: %s", exc)
            self.dul.event_queue.put("Evt19")
            return
        self.message = None
        if isinstance(primitive, C_CANCEL):
            if len(self.cancel_req) < 10:
                self.cancel_req[cast(int, primitive.MessageIDBeingRespondedTo)] = primitive
            return
        # A C-CANCEL stored before this request came was for an earlier one with the same
        # MessageID (clients that always use 1): it must not cancel this one.
        self._cancel_req.pop(getattr(primitive, "MessageID", None), None)  # type: ignore[arg-type]
        if isinstance(primitive, N_EVENT_REPORT) and primitive.is_valid_request:
            threading.Thread(
                target=make_target(self.assoc._serve_request), args=(primitive, context_id)
            ).start()
        elif not self._serve_here(primitive, context_id):
            self.msg_queue.put((context_id, cast(Any, primitive)))

    def send_msg(self, primitive: Any, context_id: int) -> None:
        """Send a DIMSE message; a plain C-STORE-RSP (Success) is encoded here.

        pydicom's encoding of the seven-element command set (a ``Dataset``, the group
        length computed by encoding it twice) cost more than a millisecond per instance.
        Anything else, or when someone listens to EVT_DIMSE_SENT, goes through pynetdicom.
        """
        command = c_store_success_rsp(primitive)
        if command is None or self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
            super().send_msg(primitive, context_id)
            return
        pdata = P_DATA()
        # one PDV: message control header 0x03 (command set, last fragment)
        pdata.presentation_data_value_list = [[context_id, b"\x03" + command]]
        self.dul.send_pdu(pdata)

    def _serve_here(self, primitive: Any, context_id: int) -> bool:
        """Serve a C-STORE request on this (the DUL's) thread when the association is idle.

        The peer waits for the C-STORE-RSP before it sends anything else (no asynchronous
        operations window is negotiated), so nothing needs reading meanwhile; serving here
        spares the hand-off to the association thread, its wake-up and the GIL going back
        and forth, per instance.  Anything else, or a C-STORE while the association thread
        is busy or paused, goes through the queue as in pynetdicom.
        """
        assoc = self.assoc
        serve = getattr(assoc, "serve_here", None)
        if (
            serve is None
            or not isinstance(primitive, C_STORE)
            or primitive.MessageIDBeingRespondedTo is not None
            or not self.msg_queue.empty()
        ):
            return False
        return bool(serve(primitive, context_id))

    def discard(self) -> None:
        """Remove the file of a C-STORE whose dataset never arrived completely."""
        msg = self.message
        part = getattr(msg, "_data_set_file", None) if msg is not None else None
        if isinstance(part, ReceivedPart):
            part.discard()
        self.message = None


def c_store_success_rsp(primitive: Any) -> bytes | None:
    """The command set of a C-STORE-RSP with status Success and nothing optional, encoded
    (Implicit VR Little Endian, PS3.7 9.3.1.2), or None for any other message."""
    if (
        type(primitive) is not C_STORE
        or primitive.MessageIDBeingRespondedTo is None
        or primitive.Status != 0x0000
        or primitive.OffendingElement is not None
        or primitive.ErrorComment is not None
        or primitive.AffectedSOPClassUID is None
        or primitive.AffectedSOPInstanceUID is None
    ):
        return None
    return commands.c_store_rsp(
        str(primitive.AffectedSOPClassUID),
        str(primitive.AffectedSOPInstanceUID),
        int(primitive.MessageIDBeingRespondedTo),
    )
