"""Bounds on what a peer can make the node hold in memory or leave on disk.

Why: pynetdicom (3.0) trusts the peer's numbers.  Its DUL reads a PDU until the length the
header announces has arrived, however large (``DULServiceProvider._read_pdu_data``), and a
reader that allocates the announced length up front (``bytearray(length)``) takes 4 GiB for
a P-DATA-TF header of 0xFFFFFFF0 before a byte of the body arrives.  Its DIMSE layer appends
command fragments, and the fragments of every dataset it does not stream to a file
(C-FIND/C-MOVE/C-GET identifiers), to a ``BytesIO`` until the last fragment comes, which a
peer may never send.  And a C-STORE dataset being received into a temp file (chunked
receive) stays on disk when the association ends before the dataset is complete.

``install()`` adds these guards, once per process, to pynetdicom's classes and to every
subclass already imported (the node's own DUL and DIMSE providers included):

- ``_read_pdu_data`` first peeks at the 6-byte PDU header (``MSG_PEEK``: nothing consumed)
  and answers a PDU longer than its limit like any invalid PDU (Evt19: A-ABORT, then the
  connection closes) without reading its body.  Limits: P-DATA-TF, the maximum length the
  local side announced (PS3.8 9.3.1: the peer must not exceed it) plus ``PDATA_SLACK`` for
  peers that count the header in; A-ASSOCIATE-RQ/AC, ``ASSOCIATION_PDU_LIMIT``; the
  fixed-size PDUs (RJ, release, abort), ``SMALL_PDU_LIMIT``.  A header left incomplete
  past the network timeout closes the connection.  A TLS socket cannot be
  peeked at below OpenSSL: a reader that wants the check there calls ``pdu_too_long`` after
  reading the header itself;
- ``receive_primitive`` (DIMSE) gives up on a message whose command set grows past
  ``COMMAND_LIMIT``, or whose in-memory dataset grows past ``IDENTIFIER_LIMIT``, or that
  gets a command fragment before its dataset is complete (PS3.8 E.2 forbids interleaving;
  pynetdicom would start the new command in the same message and orphan the temp file of
  the dataset), and aborts the association the same way;
- when an accepted association ends, the temp file of a C-STORE dataset that was still
  arriving (or received but never served) is removed; when its thread fails (pynetdicom's
  negotiation raises on a presentation context without a transfer syntax), the
  association is aborted and the connection closed instead of left open for good.

The limits are module attributes, read at each use, so a test (or a deployment) can change
them after ``install()``.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pynetdicom
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA

logger = logging.getLogger(__name__)

#: Largest A-ASSOCIATE-RQ/AC accepted: 128 presentation contexts with dozens of transfer
#: syntaxes each, extended negotiation and a user identity fit many times over.
ASSOCIATION_PDU_LIMIT = 1 << 20
#: A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT carry 4 bytes (PS3.8 9.3.4-9.3.8).
SMALL_PDU_LIMIT = 1024
#: Tolerance over the announced maximum for P-DATA-TF PDUs.
PDATA_SLACK = 64
#: P-DATA-TF limit when the local side announced no maximum (0: unlimited).
PDATA_UNLIMITED_CAP = 64 << 20
#: A command set is a handful of small elements; 64 KiB is generous.
COMMAND_LIMIT = 64 << 10
#: A dataset held in memory (C-FIND/C-MOVE/C-GET identifier, N-service dataset).
IDENTIFIER_LIMIT = 8 << 20

#: Longest wait for the rest of a PDU header without a network timeout (seconds).
HEADER_WAIT = 60.0

_HEADER = struct.Struct(">BBL")
_PDU_TYPES = frozenset(range(0x01, 0x08))
_installed: list[tuple[type, str, Callable[..., Any]]] = []


def pdu_limit(dul: DULServiceProvider, pdu_type: int) -> int:
    """The largest PDU body (the length field's value) accepted for ``pdu_type``."""
    if pdu_type == 0x04:
        local = dul.assoc.acceptor if dul.assoc.is_acceptor else dul.assoc.requestor
        announced = local.maximum_length or 0
        return announced + PDATA_SLACK if announced else PDATA_UNLIMITED_CAP
    if pdu_type in (0x01, 0x02):
        return ASSOCIATION_PDU_LIMIT
    return SMALL_PDU_LIMIT


def pdu_too_long(dul: DULServiceProvider, pdu_type: int, length: int) -> bool:
    """True (and logged) when a PDU of ``length`` must not be read: the caller aborts."""
    if pdu_type not in _PDU_TYPES:
        return False  # the reader answers unknown types itself
    limit = pdu_limit(dul, pdu_type)
    if length <= limit:
        return False
    logger.warning(
        "[%s] PDU type 0x%02X announces %d bytes (limit %d): aborting",
        getattr(dul.assoc, "name", "?"),
        pdu_type,
        length,
        limit,
    )
    return True


def _peek_header(dul: DULServiceProvider) -> tuple[int, int] | None | bool:
    """The next PDU's type and length, left unread in the socket.

    None when it cannot tell (TLS, closed after a partial header: the reader reports it);
    False when the peer stalls with a partial header past the network timeout.  A header
    split over several segments is waited for (with the socket's receive low-water mark at
    6, ``select`` wakes only for the whole header or the end of the connection), so that
    a peer cannot slip a huge length past the check by sending it a byte at a time.
    """
    sock = getattr(dul.socket, "socket", None)
    if sock is None or type(sock) is not socket.socket:  # TLS: OpenSSL owns the bytes
        return None
    try:
        header = sock.recv(6, socket.MSG_PEEK)
        if 0 < len(header) < 6:
            wait = dul.network_timeout or HEADER_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 6)
            try:
                if not select.select([sock], [], [], wait)[0]:
                    return False
            finally:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            header = sock.recv(6, socket.MSG_PEEK)
    except (OSError, ValueError):
        return None
    if len(header) < 6:
        return None
    pdu_type, _, length = _HEADER.unpack(header[:6])
    return pdu_type, length


def _discard_input(dul: DULServiceProvider) -> None:
    """After a refused PDU: drop what the peer still sends, until it closes (Evt17)."""
    sock = dul.socket.socket if dul.socket is not None else None
    try:
        data = sock.recv(1 << 16) if sock is not None else b""
    except (OSError, ValueError):
        data = b""
    if not data:
        dul.event_queue.put("Evt17")


def _guard_read(original: Callable[[DULServiceProvider], None]) -> Callable[..., None]:
    def _read_pdu_data(self: DULServiceProvider) -> None:
        if getattr(self, "_refused_pdu", False):
            _discard_input(self)
            return
        if getattr(self, "checks_pdu_limits", False):
            original(self)  # a reader that buffers checks each length itself (node.dul)
            return
        peeked = _peek_header(self)
        if peeked is False:
            logger.warning("[%s] partial PDU header, then nothing: closing", self.assoc.name)
            self._refused_pdu = True  # type: ignore[attr-defined]
            self.event_queue.put("Evt17")  # as if the connection closed
            return
        if isinstance(peeked, tuple) and pdu_too_long(self, *peeked):
            self._refused_pdu = True  # type: ignore[attr-defined]
            self.event_queue.put("Evt19")  # invalid PDU: A-ABORT, then close
            return
        original(self)

    _read_pdu_data.__doc__ = original.__doc__
    return _read_pdu_data


def message_too_large(message: Any) -> bool:
    """True when a DIMSE message being received holds more than the limits in memory."""
    if message is None:
        return False
    command = message.encoded_command_set.tell()
    data = message.data_set.tell() if isinstance(message.data_set, BytesIO) else 0
    return command > COMMAND_LIMIT or data > IDENTIFIER_LIMIT


def _command_inside_dataset(message: Any, primitive: Any) -> bool:
    """True when ``primitive`` carries a command fragment while ``message`` (whose command
    is complete: its class is no longer the generic one) still waits for its dataset."""
    if message is None or type(message) is DIMSEMessage:
        return False
    values = getattr(primitive, "presentation_data_value_list", None) or []
    return any(len(data) and data[0] & 1 for _, data in values)


def _refuse(dimse: DIMSEServiceProvider, why: str) -> None:
    """Give up on the message being received: free it, remove its temp file, abort."""
    logger.warning("[%s] %s: aborting", getattr(dimse.assoc, "name", "?"), why)
    dimse._refused_message = True  # type: ignore[attr-defined]
    message = dimse.message
    if message is not None:
        handle = getattr(message, "_data_set_file", None)
        if handle is not None:
            _remove(handle)
            message._data_set_file = None
        message.encoded_command_set = BytesIO()
        message.data_set = BytesIO()
    dimse.dul.event_queue.put("Evt19")


def _remove(handle: Any) -> None:
    try:
        handle.close()
        os.unlink(handle.name)
    except OSError:
        pass


def _guard_receive(original: Callable[..., None]) -> Callable[..., None]:
    def receive_primitive(self: DIMSEServiceProvider, primitive: Any) -> None:
        if getattr(self, "_refused_message", False):
            return  # aborting: drop whatever still arrives
        values = primitive.presentation_data_value_list
        if len(values) > 1:  # one PDV at a time, so that each is checked in its context
            for value in values:
                single = P_DATA()
                single._presentation_data_value_list = [value]
                receive_primitive(self, single)
            return
        if _command_inside_dataset(self.message, primitive):
            # PS3.8 E.2: no fragment of another message before this one is complete.
            # pynetdicom would start the new command in the same message object and
            # orphan the temp file of the dataset being received.
            _refuse(self, "a command fragment arrived inside a dataset")
            return
        original(self, primitive)
        message = self.message
        if message_too_large(message):
            _refuse(
                self,
                f"DIMSE message over the limits (command {message.encoded_command_set.tell()}"
                " bytes, or its dataset in memory)",
            )

    receive_primitive.__doc__ = original.__doc__
    return receive_primitive


def _guard_run(original: Callable[[Association], None]) -> Callable[[Association], None]:
    def run_reactor(self: Association) -> None:
        try:
            original(self)
        except Exception as exc:
            if not self.is_acceptor:
                raise
            # pynetdicom's negotiation raises on some malformed requests (a presentation
            # context without a transfer syntax); the thread would die and leave the DUL
            # thread and the connection open for good, outside MaxAssociations.
            logger.warning("[%s] association failed (%r): aborting", self.name, exc)
            logger.debug("association failure", exc_info=True)
            abort_quietly(self)
        finally:
            if self.is_acceptor:
                discard_partial_datasets(self)

    run_reactor.__doc__ = original.__doc__
    return run_reactor


def abort_quietly(assoc: Association) -> None:
    """A-ABORT, stop the DUL and close the connection, whatever state they are in."""
    try:
        assoc.abort()
    except Exception as exc:  # noqa: BLE001 - best effort: the socket is closed below
        logger.debug("[%s] abort failed: %r", assoc.name, exc)
        assoc.dul.kill_dul()
    sock = getattr(assoc.dul.socket, "socket", None)
    server = getattr(assoc, "_server", None)
    if sock is not None and server is not None:
        server.shutdown_request(sock)


def discard_partial_datasets(assoc: Association) -> int:
    """Remove the temp files of C-STORE datasets the association will never serve."""
    handles = []
    message = assoc.dimse.message
    if message is not None and getattr(message, "_data_set_file", None) is not None:
        handles.append(message._data_set_file)
        message._data_set_file = None
    while True:
        try:
            _, primitive = assoc.dimse.msg_queue.get(block=False)
        except queue.Empty:
            break
        handle = getattr(primitive, "_dataset_file", None)
        if handle is not None:
            handles.append(handle)
    for handle in handles:
        _remove(handle)
    if handles:
        logger.info("[%s] removed %d partial C-STORE dataset(s)", assoc.name, len(handles))
    return len(handles)


def _hierarchy(base: type) -> list[type]:
    found, todo = [], [base]
    while todo:
        klass = todo.pop()
        found.append(klass)
        todo.extend(klass.__subclasses__())
    return found


def _patch(klass: type, name: str, guard: Callable[[Any], Any]) -> None:
    original = klass.__dict__.get(name)
    if original is None or getattr(original, "_node_guard", False):
        return  # inherited (the base's guard applies) or already guarded
    guarded = guard(original)
    guarded._node_guard = True  # type: ignore[attr-defined]
    setattr(klass, name, guarded)
    _installed.append((klass, name, original))


def install() -> None:
    """Guard pynetdicom's DUL, DIMSE and Association classes and their loaded subclasses.

    Idempotent; call it before serving, after the modules defining subclasses are imported
    (a subclass imported later is guarded by the next call).
    """
    if not pynetdicom.__version__.startswith("3."):
        raise RuntimeError(
            f"node.pdu_limits is written for pynetdicom 3.x, not {pynetdicom.__version__}"
        )
    for klass in _hierarchy(DULServiceProvider):
        _patch(klass, "_read_pdu_data", _guard_read)
    for klass in _hierarchy(DIMSEServiceProvider):
        _patch(klass, "receive_primitive", _guard_receive)
    _patch(Association, "run_reactor", _guard_run)


def uninstall() -> None:
    """Restore the original methods (for tests that need pynetdicom's own behaviour)."""
    while _installed:
        klass, name, original = _installed.pop()
        setattr(klass, name, original)


__all__ = [
    "abort_quietly",
    "discard_partial_datasets",
    "install",
    "message_too_large",
    "pdu_limit",
    "pdu_too_long",
    "uninstall",
]
