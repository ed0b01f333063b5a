"""C-STORE sub-operations of C-MOVE and C-GET, sent without pynetdicom's per-message machinery.

Why: pynetdicom's ``send_c_store`` encodes the command set with pydicom (twice), re-reads the
file meta of each file, hands every P-DATA to a DUL thread that polls its queue and the
socket with 1 ms sleeps, and waits for the C-STORE-RSP through two queues; for 0.5 MB
instances that was about 8 ms each, most of it waiting or encoding.  Here:

- the command set is encoded by hand (``node.commands``);
- the dataset bytes are what ``payload`` returns (``node.services.retrieve``: the stored
  file's bytes, read once, or a transcoded encoding), cut into P-DATA fragments of the
  peer's maximum PDU;
- on a C-MOVE sub-association (``take_over``) the sending thread owns the socket: it sends
  the PDUs with ``sendmsg`` straight from the file buffer and reads the C-STORE-RSP itself,
  while pynetdicom's DUL and association threads are parked (blocked, not polling) until
  the release, which goes back through pynetdicom;
- on a C-GET (``install``), the association is the node's own (``node.association``, whose
  DUL blocks on the socket and sends P-DATA from the calling thread): PDUs go through its
  DUL, the response comes from its DIMSE queue as soon as it is decoded.

pynetdicom's C-MOVE/C-GET loops still drive everything (counts, pending and final
responses, cancel): only ``send_c_store`` (and, for a sub-association, ``release``) of the
association object is replaced.  Pending C-MOVE-RSP/C-GET-RSP are encoded by hand as well
(``fast_pending_responses``).
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE
from pynetdicom.pdu_primitives import P_DATA

from node import commands

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.presentation import PresentationContext

Log = logging.LoggerAdapter[logging.Logger]

_PDU_HEADER = struct.Struct(">BBL")
_PDATA_HEADER = struct.Struct(">BBLLBB")  # P-DATA-TF header + one PDV item header
_PDV_LENGTH = struct.Struct(">L")
#: A-ABORT-RQ, source 0 (service user), reason 0 (PS3.8 9.3.8)
_A_ABORT = bytes((0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0))
#: iovecs per ``sendmsg`` call (Linux IOV_MAX is 1024)
_IOV_BATCH = 512
#: Longest PDU accepted while waiting for a C-STORE-RSP (a response is ~100 bytes)
_MAX_RSP_PDU = 1 << 20
#: How often a C-GET sender waiting for a response checks that the association still lives
_LIVENESS_CHECK = 0.5


class SendError(Exception):
    """A C-STORE sub-operation that got no response.

    ``PeerGone``: the association ended (aborted, closed, timed out, or aborted by us after
    a protocol error); no later sub-operation can be sent on it.
    """


class PeerGone(SendError):
    """The association ended before the C-STORE-RSP arrived."""


class ProtocolError(SendError):
    """The peer sent something other than the C-STORE-RSP: the association is aborted."""


class ResponseTimeout(SendError):
    """No C-STORE-RSP within the DIMSE timeout: the association is aborted."""


@dataclass(frozen=True)
class Payload:
    """One C-STORE sub-operation: the context, the UIDs and the encoded dataset."""

    context_id: int
    sop_class_uid: str
    sop_instance_uid: str
    data: bytes | bytearray | memoryview


#: Turns what pynetdicom's loop hands ``send_c_store`` into a payload for the accepted contexts.
PayloadFor = Callable[[Dataset, "list[PresentationContext]"], Payload]


def fragments(
    command: bytes, data: bytes | bytearray | memoryview, max_pdu: int
) -> list[tuple[int, commands.Fragment]]:
    """(message control header, fragment) of a DIMSE message, each fitting ``max_pdu``
    (``node.commands.message_fragments``; a peer PDU too small for any data still gets
    one byte per value, as before)."""
    if max_pdu:
        max_pdu = max(max_pdu, commands.PDV_OVERHEAD + 1)
    return commands.message_fragments(command, data, max_pdu)


# -- links: how the PDUs travel --------------------------------------------------------------


class Link(Protocol):
    max_pdu: int

    def send_message(self, context_id: int, command: bytes, data: Any) -> None: ...

    def read_store_rsp(self, message_id: int) -> commands.StoreResponse: ...


class SocketLink:
    """A socket this thread alone uses: PDUs out with ``sendmsg``, responses read here."""

    def __init__(self, sock: socket.socket, max_pdu: int) -> None:
        self.sock = sock
        self.max_pdu = max_pdu
        self._gather = not isinstance(sock, ssl.SSLSocket)  # no sendmsg on TLS

    def send_message(self, context_id: int, command: bytes, data: Any) -> None:
        buffers: list[bytes | memoryview] = []
        for control, fragment in fragments(command, data, self.max_pdu):
            n = len(fragment)
            buffers.append(_PDATA_HEADER.pack(0x04, 0, n + 6, n + 2, context_id, control))
            buffers.append(fragment)
        if self._gather:
            _sendmsg_all(self.sock, buffers)
        else:
            self.sock.sendall(b"".join(buffers))

    def read_store_rsp(self, message_id: int) -> commands.StoreResponse:
        command = bytearray()
        while True:
            pdu_type, _, length = _PDU_HEADER.unpack(self._read(6))
            if length > _MAX_RSP_PDU:
                raise ProtocolError(f"a {length}-byte PDU where a C-STORE-RSP was expected")
            body = self._read(length)
            if pdu_type == 0x07:
                raise PeerGone("the peer aborted the association (A-ABORT)")
            if pdu_type != 0x04:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X} during a C-STORE")
            for control, value in _pdv_items(body):
                if not control & 0x01:
                    raise ProtocolError("a dataset fragment where a C-STORE-RSP was expected")
                command += value
                if control & 0x02:
                    return _checked(commands.parse_store_rsp(command), message_id)

    def _read(self, size: int) -> bytearray:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        try:
            while got < size:
                n = self.sock.recv_into(view[got:], size - got)
                if not n:
                    raise PeerGone("the peer closed the connection")
                got += n
        except TimeoutError as exc:
            raise ResponseTimeout("no C-STORE-RSP within the DIMSE timeout") from exc
        except OSError as exc:
            raise PeerGone(f"connection lost: {exc}") from exc
        return buf


class DimseLink:
    """An association whose DUL keeps reading: PDUs through it, responses from DIMSE."""

    def __init__(self, assoc: Association) -> None:
        self.assoc = assoc
        self.max_pdu = assoc.dimse.maximum_pdu_size

    def send_message(self, context_id: int, command: bytes, data: Any) -> None:
        dul = self.assoc.dul
        for control, fragment in fragments(command, data, self.max_pdu):
            pdata = P_DATA()
            pdata.presentation_data_value_list = [[context_id, bytes((control,)) + fragment]]
            dul.send_pdu(pdata)

    def read_store_rsp(self, message_id: int) -> commands.StoreResponse:
        assoc = self.assoc
        timeout = assoc.dimse_timeout
        waited = 0.0
        while True:
            step = _LIVENESS_CHECK if timeout is None else min(_LIVENESS_CHECK, timeout - waited)
            try:
                _, rsp = assoc.dimse.msg_queue.get(timeout=max(step, 0.0))
            except queue.Empty:
                waited += step
                if not assoc.is_established or not assoc.dul.is_alive():
                    raise PeerGone("the association ended") from None
                if timeout is not None and waited >= timeout:
                    raise ResponseTimeout("no C-STORE-RSP within the DIMSE timeout") from None
                continue
            if not isinstance(rsp, C_STORE) or rsp.MessageIDBeingRespondedTo is None:
                raise ProtocolError(f"received {type(rsp).__name__} while awaiting a C-STORE-RSP")
            comment = rsp.ErrorComment
            return _checked(
                commands.StoreResponse(
                    responding_to=int(rsp.MessageIDBeingRespondedTo),
                    status=int(cast(int, rsp.Status)),
                    error_comment=str(comment) if comment else None,
                ),
                message_id,
            )


def _checked(rsp: commands.StoreResponse, message_id: int) -> commands.StoreResponse:
    if rsp.responding_to != message_id:
        raise ProtocolError(f"C-STORE-RSP to message {rsp.responding_to}, expected {message_id}")
    return rsp


def _pdv_items(body: bytearray) -> Iterator[tuple[int, memoryview]]:
    view = memoryview(body)
    offset, end = 0, len(body)
    while offset < end:
        if end - offset < 6:
            raise ProtocolError("truncated presentation data value item")
        (length,) = _PDV_LENGTH.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > end:
            raise ProtocolError(f"bad presentation data value item length {length}")
        yield body[offset + 5], view[offset + 6 : offset + 4 + length]
        offset += 4 + length


def _sendmsg_all(sock: socket.socket, buffers: list[bytes | memoryview]) -> None:
    """``sendmsg`` every buffer, in batches, resuming after partial sends."""
    pending = [memoryview(b) for b in buffers]
    while pending:
        batch = pending[:_IOV_BATCH]
        sent = sock.sendmsg(batch)
        done = 0
        while done < len(batch) and sent >= len(batch[done]):
            sent -= len(batch[done])
            done += 1
        pending = pending[done:]
        if sent:
            pending[0] = pending[0][sent:]


# -- the sender ------------------------------------------------------------------------------


class StoreSender:
    """``send_c_store`` for pynetdicom's C-MOVE/C-GET loops: one C-STORE over ``link``."""

    def __init__(
        self,
        assoc: Association,
        link: Link,
        payload_for: PayloadFor,
        log: Log,
        on_gone: Callable[[SendError], None] | None = None,
    ) -> None:
        self.assoc = assoc
        self.link = link
        self.payload_for = payload_for
        self.log = log
        self.on_gone = on_gone
        self.gone: SendError | None = None
        self.peer = assoc.remote.get("ae_title", "?")

    def send_c_store(
        self,
        dataset: Any,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        """Send one instance; return the response's status, raise when there is none.

        A raised error makes pynetdicom count the sub-operation as failed and list its SOP
        Instance UID (``dataset.SOPInstanceUID``) in the final response.
        """
        uid = str(getattr(dataset, "SOPInstanceUID", "") or "")
        if self.gone is not None:
            raise PeerGone(f"not sent: {self.gone}")
        try:
            payload = self.payload_for(dataset, self.assoc.accepted_contexts)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            self.log.error("cannot send %s to %s: %s", uid, self.peer, exc)
            raise
        command = commands.c_store_rq(
            payload.sop_class_uid,
            payload.sop_instance_uid,
            msg_id,
            priority,
            originator_aet,
            originator_id,
        )
        try:
            self.link.send_message(payload.context_id, command, payload.data)
            rsp = self.link.read_store_rsp(msg_id)
        except (SendError, OSError) as exc:
            error = exc if isinstance(exc, SendError) else PeerGone(f"connection lost: {exc}")
            self.gone = error
            self.log.error(
                "C-STORE of %s to %s failed: %s; the association is given up",
                uid,
                self.peer,
                error,
            )
            if self.on_gone is not None:
                self.on_gone(error)
            raise error from exc
        status = Dataset()
        status.Status = rsp.status
        if rsp.error_comment:
            status.ErrorComment = rsp.error_comment[:64]
        if rsp.status == 0x0000:
            self.log.debug("C-STORE of %s to %s: Success", uid, self.peer)
        else:
            self.log.warning(
                "C-STORE of %s to %s: status 0x%04X%s",
                uid,
                self.peer,
                rsp.status,
                f" ({rsp.error_comment})" if rsp.error_comment else "",
            )
        return status


def install(assoc: Association, payload_for: PayloadFor, log: Log) -> None:
    """Make ``assoc.send_c_store`` (an association whose DUL keeps running) use ``StoreSender``.

    For C-GET: the C-STOREs go back on the association the request came on.  Installed once
    per association, nothing else in the process changes.
    """
    if getattr(assoc, "_node_store_sender", None) is not None:
        return
    sender = StoreSender(assoc, DimseLink(assoc), payload_for, log, lambda _: assoc.abort())
    assoc._node_store_sender = sender  # type: ignore[attr-defined]
    assoc.send_c_store = sender.send_c_store  # type: ignore[method-assign]


# -- owning a pynetdicom requestor association ---------------------------------------------


class _ParkedDUL:
    """Holds pynetdicom's DUL reactor still (blocked, not polling) while its socket is ours.

    The reactor loop calls ``_is_transport_event`` to look at the socket; until ``resume``,
    that call blocks instead, so the reactor neither reads nor sleeps-and-polls.
    """

    def __init__(self, assoc: Association) -> None:
        self.dul = assoc.dul
        self.parked = threading.Event()
        self._resume = threading.Event()
        original = self.dul._is_transport_event
        dul = self.dul

        def parked() -> bool:
            self.parked.set()
            self._resume.wait()
            if dul._kill_thread:
                return False
            return original()

        dul._is_transport_event = parked  # type: ignore[method-assign]

    def wait(self) -> None:
        """Return once the reactor is parked; raise ``PeerGone`` if it stopped instead."""
        while not self.parked.wait(0.05):
            if not self.dul.is_alive():
                raise PeerGone("the association ended before the first C-STORE")

    def resume(self) -> None:
        self.dul.__dict__.pop("_is_transport_event", None)
        self._resume.set()


class OwnedAssociation:
    """A pynetdicom requestor association whose data transfer this thread does itself.

    ``take_over`` installs it from the sub-association's EVT_ESTABLISHED handler, which runs
    on the thread that asked for the association (the C-MOVE's) before pynetdicom starts the
    association thread: that thread is kept paused (``_reactor_checkpoint``), the DUL parked.
    ``release`` hands both back to pynetdicom, which releases as usual; when the peer went
    away or misbehaved, both threads are stopped and the socket closed instead.
    """

    def __init__(self, assoc: Association, payload_for: PayloadFor, log: Log) -> None:
        self.assoc = assoc
        sock = self._socket()
        self._release = assoc.release
        assoc._reactor_checkpoint.clear()
        self.parking = _ParkedDUL(assoc)
        self._owned = False
        self._timeout: float | None = None
        self._finished = False
        self.sender = StoreSender(
            assoc,
            SocketLink(sock, assoc.dimse.maximum_pdu_size),
            payload_for,
            log,
            self._give_up,
        )
        assoc.send_c_store = self.send_c_store  # type: ignore[method-assign]
        assoc.release = self.release  # type: ignore[method-assign]

    def _socket(self) -> socket.socket:
        wrapper = self.assoc.dul.socket
        raw = wrapper.socket if wrapper is not None else None
        if raw is None:
            raise PeerGone("the association has no socket")
        return cast(socket.socket, raw)

    def send_c_store(self, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if not self._owned and self.sender.gone is None:
            try:
                self.parking.wait()
            except PeerGone as exc:
                self.sender.gone = exc
                self._give_up(exc)
                raise
            sock = self._socket()
            self._timeout = sock.gettimeout()
            sock.settimeout(self.assoc.dimse_timeout)
            self._owned = True
        return self.sender.send_c_store(dataset, *args, **kwargs)

    def _give_up(self, error: SendError) -> None:
        """End the association after ``error``: A-ABORT unless the peer already left."""
        if self._finished:
            return
        self._finished = True
        assoc, dul = self.assoc, self.assoc.dul
        if not isinstance(error, PeerGone):  # a timeout or a protocol error: we end it
            try:
                self._socket().sendall(_A_ABORT)
            except (OSError, SendError):
                pass
        dul._kill_thread = True
        self.parking.resume()
        assoc.is_aborted = True
        assoc.is_established = False
        evt.trigger(assoc, evt.EVT_ABORTED, {})
        assoc.kill()
        wrapper = dul.socket
        if wrapper is not None:
            wrapper.close()

    def release(self) -> None:
        """Give the association back to pynetdicom and release it (or finish an abort)."""
        if self._finished:
            return
        if self._owned:
            try:
                self._socket().settimeout(self._timeout)
            except (OSError, SendError):
                pass
        self.parking.resume()
        self.assoc.dul._idle_timer.restart()
        self._release()


def take_over(assoc: Association, payload_for: PayloadFor, log: Log) -> OwnedAssociation:
    """Send the C-STOREs of pynetdicom's C-MOVE loop on ``assoc`` (a sub-association) ourselves."""
    return OwnedAssociation(assoc, payload_for, log)


# -- pending C-MOVE-RSP / C-GET-RSP ------------------------------------------------------------


def fast_pending_responses(assoc: Association) -> None:
    """Encode the association's Pending C-MOVE-RSP/C-GET-RSP by hand (once per association).

    pynetdicom sends one per sub-operation, each encoded by pydicom; anything else (final
    responses, identifiers, an EVT_DIMSE_SENT listener, a tiny peer PDU) goes through
    the original ``send_msg``.
    """
    dimse = assoc.dimse
    if getattr(dimse, "_node_fast_pending", False):
        return
    original = dimse.send_msg

    def send_msg(primitive: Any, context_id: int) -> None:
        command = _pending_command(primitive)
        max_pdu = dimse.maximum_pdu_size
        if (
            command is None
            or (max_pdu and len(command) + 6 > max_pdu)
            or assoc.get_handlers(evt.EVT_DIMSE_SENT)
        ):
            original(primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list = [[context_id, b"\x03" + command]]
        dimse.dul.send_pdu(pdata)

    dimse.send_msg = send_msg  # type: ignore[method-assign]
    dimse._node_fast_pending = True  # type: ignore[attr-defined]


def _pending_command(primitive: Any) -> bytes | None:
    kind = type(primitive)
    if (
        kind not in (C_MOVE, C_GET)
        or primitive.MessageIDBeingRespondedTo is None
        or primitive.Status != 0xFF00
        or primitive.Identifier is not None
        or getattr(primitive, "ErrorComment", None) is not None
        or primitive.AffectedSOPClassUID is None
    ):
        return None
    counts = (
        primitive.NumberOfRemainingSuboperations,
        primitive.NumberOfCompletedSuboperations,
        primitive.NumberOfFailedSuboperations,
        primitive.NumberOfWarningSuboperations,
    )
    if any(count is None for count in counts):
        return None
    return commands.pending_rsp(
        commands.C_MOVE_RSP if kind is C_MOVE else commands.C_GET_RSP,
        str(primitive.AffectedSOPClassUID),
        int(primitive.MessageIDBeingRespondedTo),
        *(int(cast(int, count)) for count in counts),
    )
