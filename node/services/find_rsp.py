"""C-FIND-RSP messages sent by hand: the command set encoded here, one P-DATA per response.

Why: pynetdicom sends each Pending C-FIND-RSP by encoding the identifier ``Dataset``
(pydicom ``write_dataset``), building a command set ``Dataset`` and encoding it twice (once
more for the group length), then a P-DATA for the command set and another for the
identifier.  That cost about a millisecond per match, more than the query.  Here the command
set is a handful of fixed elements in Implicit VR Little Endian (PS3.7 6.3.1, 9.3.2.2),
byte-identical to pynetdicom's (``tests/services/test_find_rsp.py`` compares them), and the
command set and the identifier (already encoded, ``storage.query.encoded_responses``) go
in one P-DATA-TF as two presentation data values (PS3.8 9.3.5 allows several), through the
association's DUL (``NodeDUL.send_pdu`` sends it from this thread on plain TCP).

The handler sends the Pending responses itself and yields its final status to pynetdicom's
C-FIND service class as before, which sends it through the association's ``send_msg``,
wrapped here (``fast_final_responses``) to encode a plain final response the same way.
When someone listens to EVT_DIMSE_SENT (who expects a ``DIMSEMessage`` per response),
``sender_for`` says no and the handler yields ``Dataset`` identifiers to pynetdicom as
before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

from node import commands
from node.commands import fragments

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.events import Event

PENDING = 0xFF00


class PendingSender:
    """Sends the Pending C-FIND-RSPs of one C-FIND request on its association."""

    def __init__(self, event: Event) -> None:
        assoc: Association = event.assoc
        self.assoc = assoc
        context = event.context
        self.context_id = int(context.context_id)
        syntax = context.transfer_syntax
        self.implicit_vr = bool(syntax.is_implicit_VR)
        self.little_endian = bool(syntax.is_little_endian)
        self.deflated = bool(syntax.is_deflated)
        request = event.request
        self._command = commands.c_find_rsp(
            str(request.AffectedSOPClassUID), int(request.MessageID or 0), PENDING
        )

    @property
    def plain(self) -> bool:
        """Is the identifier Little Endian, not deflated (``encoded_responses`` can make it)?"""
        return self.little_endian and not self.deflated

    def encode(self, identifier: Dataset) -> bytes:
        """``identifier`` in the context's transfer syntax, as pynetdicom would encode it."""
        encoded = encode(identifier, self.implicit_vr, self.little_endian, self.deflated)
        if not encoded:
            raise ValueError("the response identifier cannot be encoded")
        return bytes(encoded)

    def is_open(self) -> bool:
        """Is the association still there to send on (pynetdicom's ``_wrap_handler`` check)?"""
        assoc = self.assoc
        return (
            assoc.is_established
            and not assoc.acse.is_aborted()
            and not assoc.acse.is_release_requested()
        )

    def send(self, identifier: bytes) -> None:
        """Send a Pending C-FIND-RSP with ``identifier`` (encoded in the context's syntax)."""
        max_pdu = int(self.assoc.dimse.maximum_pdu_size or 0)
        cid = self.context_id
        # One presentation data value per P-DATA-TF, as DCMTK and pynetdicom send them:
        # gdcmscu (GDCM 3.0) does not read a command and its identifier from one PDU, and
        # waited 60 s for each C-FIND answered that way.
        for control, chunk in commands.message_fragments(self._command, identifier, max_pdu):
            pdata = P_DATA()
            pdata.presentation_data_value_list = [[cid, bytes((control,)) + chunk]]
            self.assoc.dul.send_pdu(pdata)


def fast_final_responses(assoc: Association) -> None:
    """Encode the association's final C-FIND-RSPs (no identifier, no comment) by hand.

    pynetdicom's C-FIND service class sends the final response of every C-FIND through
    ``DIMSEServiceProvider.send_msg`` (pydicom encoding the command set twice); wrapping the
    association's ``send_msg`` once (as ``node.services.sender`` does for Pending
    C-MOVE/C-GET responses) sends those few bytes as the Pending ones are sent.  Anything
    else, or when someone listens to EVT_DIMSE_SENT, goes through the original.
    """
    dimse: Any = assoc.dimse
    if getattr(dimse, "_node_fast_find_final", False):
        return
    original = dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        if (
            type(primitive) is not C_FIND
            or primitive.MessageIDBeingRespondedTo is None
            or primitive.Identifier is not None
            or primitive.Status is None
            or primitive.OffendingElement is not None
            or primitive.ErrorComment is not None
            or primitive.AffectedSOPClassUID is None
            or assoc.get_handlers(evt.EVT_DIMSE_SENT)
        ):
            original(primitive, context_id)
            return
        command = commands.c_find_rsp(
            str(primitive.AffectedSOPClassUID),
            int(primitive.MessageIDBeingRespondedTo),
            int(primitive.Status),
            identifier=False,
        )
        max_pdu = int(dimse.maximum_pdu_size or 0)
        for control, chunk in fragments(
            command, commands.COMMAND_LAST, commands.COMMAND_MORE, max_pdu
        ):
            pdata = P_DATA()
            pdata.presentation_data_value_list = [[context_id, bytes((control,)) + chunk]]
            dimse.dul.send_pdu(pdata)

    dimse.send_msg = send_msg
    dimse._node_fast_find_final = True


def sender_for(event: Event) -> PendingSender | None:
    """A ``PendingSender`` for ``event``'s C-FIND, or None when pynetdicom must send
    (someone listens to EVT_DIMSE_SENT, or the association has no DIMSE provider yet)."""
    assoc: Any = event.assoc
    if assoc.get_handlers(evt.EVT_DIMSE_SENT) or getattr(assoc, "dimse", None) is None:
        return None
    fast_final_responses(assoc)
    return PendingSender(event)
