"""An event-driven DICOM Upper Layer for the associations the node accepts.

Why: pynetdicom's ``DULServiceProvider`` polls.  Its reactor sleeps 1 ms whenever the socket
is momentarily empty and nothing is queued, reads a PDU with ``recv(4096)`` into a growing
``bytearray``, copies it again to decode it, and passes every P-DATA-TF through two queues
and the state machine.  On a C-STORE stream (``storescu`` waits for each response before it
sends the next instance) the sleeps alone cost a few milliseconds per instance.

``NodeDUL`` keeps pynetdicom's state machine, timers and queues, and changes how it waits
and reads:

- it blocks in ``select()`` on the socket and on a wake-up pipe that is written when the
  association thread queues a primitive to send (or kills the DUL), instead of sleeping;
- it reads the socket in large chunks (``recv_into``, up to ``READ_CHUNK`` at a time) and
  cuts PDUs out of them as memoryview slices: a C-STORE stream of 16 KiB PDUs takes a
  system call per several PDUs, not three per PDU (``pdu_limits``' peek included: this
  reader checks each PDU's announced length itself before reading its body);
- a P-DATA sent in state Sta6 goes out from the sending thread (action DT-1 without the
  queue hand-off and the wake-up of the DUL thread): from the DUL thread itself (a C-STORE
  served there, ``node.receive``), or from the association thread on plain TCP only
  (OpenSSL does not allow one thread to write while another reads the same connection);
- a P-DATA-TF received in state Sta6 (the only state where it is valid for data transfer)
  is decoded in place (memoryview slices of the PDU, no copy) and handed to DIMSE
  directly, as the state machine's action DT-2 does, without the queue round trip.  Any
  other PDU, or a P-DATA-TF in another state, takes pynetdicom's path unchanged.

Everything the association thread waits for (a DIMSE message, an A-RELEASE or A-ABORT
primitive, the DUL's exit) sets the association's ``wake`` event (``node.association``),
so neither thread polls.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from node import pdu_limits

if TYPE_CHECKING:
    from pynetdicom.association import Association
    from pynetdicom.transport import AssociationSocket

logger = logging.getLogger(__name__)

#: Longest time the reactor blocks without checking its timers and flags (seconds).  Every
#: event that matters wakes it earlier; this only bounds the ARTIM timer's resolution.
IDLE_WAIT = 0.05

_PDU_HEADER = struct.Struct(">BBL")
_RECV_STEP = 1 << 20
#: Bytes asked of the socket per read; PDUs are cut out of what arrives.
READ_CHUNK = 64 << 10
_PDV_LENGTH = struct.Struct(">L")
_PDU_LENGTH = struct.Struct(">L")
_VALID_PDU_TYPES = frozenset(range(1, 8))


class WakeQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that calls ``on_put`` after each put (to wake whoever waits for it)."""

    def __init__(self, on_put: Callable[[], None]) -> None:
        super().__init__()
        self._on_put = on_put

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._on_put()


class NodeDUL(DULServiceProvider):
    """pynetdicom's DUL, waiting on ``select()`` and reading PDUs without extra copies."""

    def __init__(self, assoc: Association, wake: threading.Event) -> None:
        super().__init__(assoc)
        # The association thread waits on ``wake``; the DUL on its socket and this pipe.
        self.wake = wake
        self._pipe_r, self._pipe_w = os.pipe()
        os.set_blocking(self._pipe_r, False)
        os.set_blocking(self._pipe_w, False)
        self.to_provider_queue = WakeQueue(self._signal)
        self.to_user_queue = WakeQueue(wake.set)
        self._send_lock = threading.RLock()
        # Received bytes not yet cut into PDUs: ``_chunk[_start:_end]``.  A chunk is never
        # resized (PDVs handed to DIMSE are views of it); a new one takes over when a PDU
        # does not fit in the room left.
        self._chunk = bytearray()
        self._start = 0
        self._end = 0

    #: ``node.pdu_limits`` leaves the length checks to this reader (its socket peek would
    #: look past the bytes already buffered here).
    checks_pdu_limits = True

    # -- sending -------------------------------------------------------------------------

    def send_pdu(self, primitive: Any) -> None:
        """Send a P-DATA at once from the calling thread when that is safe, else queue it."""
        sock = cast("AssociationSocket | None", self.socket)
        if (
            isinstance(primitive, P_DATA)
            and self.state_machine.current_state == "Sta6"
            and sock is not None
            and sock.socket is not None
            # OpenSSL: no writing from one thread while another reads the connection
            and (threading.current_thread() is self or not isinstance(sock.socket, ssl.SSLSocket))
        ):
            with self._send_lock:
                if self.to_provider_queue.empty():  # keep the order of queued primitives
                    self._send(P_DATA_TF(primitive))  # action DT-1, state stays Sta6
                    return
        super().send_pdu(primitive)

    def _send(self, pdu: Any) -> None:
        with self._send_lock:
            super()._send(pdu)

    # -- waking --------------------------------------------------------------------------

    def _signal(self) -> None:
        """Wake the reactor if it blocks in ``select()``."""
        try:
            os.write(self._pipe_w, b"\0")
        except OSError:  # full (already signalled) or closed (reactor gone)
            pass

    def _drain(self) -> None:
        try:
            while os.read(self._pipe_r, 4096):
                pass
        except OSError:  # BlockingIOError: empty
            pass

    def kill_dul(self) -> None:
        self._kill_thread = True
        self._signal()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self._signal()
            if self.is_alive() and threading.current_thread() is not self:
                self.join()
            return True
        return False

    def _wait(self) -> None:
        """Block until the socket has data, a primitive was queued, or IDLE_WAIT passed."""
        if self._end - self._start >= 6:
            return  # a PDU header is buffered: no need to wait for the socket
        sock = cast("AssociationSocket", self.socket)
        raw = sock.socket if sock is not None else None
        if raw is None or not sock._is_connected:
            select.select([self._pipe_r], [], [], IDLE_WAIT)
            self._drain()
            return
        if isinstance(raw, ssl.SSLSocket) and raw.pending():
            return  # decrypted bytes buffered inside OpenSSL: select() cannot see them
        try:
            readable, _, _ = select.select([raw.fileno(), self._pipe_r], [], [], IDLE_WAIT)
        except (OSError, ValueError):  # closed under us: the next read reports Evt17
            time.sleep(0.001)
            readable = [self._pipe_r]
        if self._pipe_r in readable:
            self._drain()

    # -- the reactor ---------------------------------------------------------------------

    def run_reactor(self) -> None:
        """pynetdicom's reactor loop, blocking on the socket instead of sleeping."""
        try:
            self._run()
        finally:
            self.wake.set()
            for fd in (self._pipe_r, self._pipe_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _run(self) -> None:
        self._idle_timer.start()
        self.assoc._dul_ready.set()
        while True:
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            received = False
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
                    received = True
            except Exception as exc:  # noqa: BLE001 - same recovery as pynetdicom's reactor
                logger.error("exception in the DUL reactor, aborting the association")
                logger.exception(exc)
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                try:
                    cast("AssociationSocket", self.socket).send(abort_pdu.encode())
                except Exception:  # noqa: BLE001 - the connection may be gone already
                    pass
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                # after a PDU, look at the socket again before blocking: more may be there
                if not received and self.to_provider_queue.empty():
                    self._wait()
                continue
            self.state_machine.do_action(event)

    # -- reading PDUs --------------------------------------------------------------------

    def _is_transport_event(self) -> bool:
        """pynetdicom's check for incoming data, seeing the PDUs already buffered too."""
        sock = cast("AssociationSocket | None", self.socket)
        if self._end - self._start >= 6 and sock is not None and sock._is_connected:
            self._read_pdu_data()
            return True
        return bool(super()._is_transport_event())

    def _fill(self, needed: int) -> bool:
        """Read until ``needed`` bytes are buffered; False when the connection closed.

        New bytes go into the room left in the current chunk when the rest of the item
        fits there, else into a new chunk that starts with the bytes still unread.
        """
        sock = cast("AssociationSocket", self.socket)
        raw = sock.socket
        if raw is None:
            return False
        try:
            while self._end - self._start < needed:
                missing = needed - (self._end - self._start)
                if len(self._chunk) - self._end < missing:
                    kept = self._end - self._start
                    chunk = bytearray(max(READ_CHUNK, needed))
                    chunk[:kept] = memoryview(self._chunk)[self._start : self._end]
                    self._chunk, self._start, self._end = chunk, 0, kept
                if needed <= 6 and raw.gettimeout() is None and not _readable(raw):
                    return False  # a partial header, then nothing for HEADER_WAIT
                with memoryview(self._chunk) as view:
                    n = raw.recv_into(view[self._end :])
                if not n:
                    return False
                self._end += n
        except (OSError, TimeoutError) as exc:
            logger.debug("connection closed while reading a PDU: %s", exc)
            return False
        return True

    def _take(self, size: int) -> memoryview | None:
        """The next ``size`` bytes (a view of the chunk), or None when the connection closed."""
        if not self._fill(size):
            return None
        view = memoryview(self._chunk)[self._start : self._start + size]
        self._start += size
        return view

    def _recv_large(self, size: int) -> bytearray | None:
        """A PDU body over ``_RECV_STEP``: the buffered bytes, then the rest, grown as it
        arrives (never allocated up front from the announced length)."""
        buf = bytearray(memoryview(self._chunk)[self._start : self._end][:size])
        self._start += len(buf)
        raw = cast("AssociationSocket", self.socket).socket
        if raw is None:
            return None
        try:
            while len(buf) < size:
                got = len(buf)
                buf.extend(bytes(min(size - got, _RECV_STEP)))
                with memoryview(buf) as view:
                    while got < len(buf):
                        n = raw.recv_into(view[got:], len(buf) - got)
                        if not n:
                            return None
                        got += n
        except (OSError, TimeoutError) as exc:
            logger.debug("connection closed while reading a PDU: %s", exc)
            return None
        return buf

    def _read_pdu_data(self) -> None:
        header = self._take(6)
        if header is None:
            self.event_queue.put("Evt17")  # transport connection closed
            return
        pdu_type, _, length = _PDU_HEADER.unpack(header)
        if pdu_type not in _VALID_PDU_TYPES:
            logger.error("unknown PDU type 0x%02X received", pdu_type)
            self.event_queue.put("Evt19")
            return
        if pdu_limits.pdu_too_long(self, pdu_type, length):
            # checked before a byte of the body is read (pdu_limits leaves it to us)
            self._refused_pdu = True
            self.event_queue.put("Evt19")
            return
        body: memoryview | bytearray | None
        if not length:
            body = bytearray()
        elif length > _RECV_STEP:
            body = self._recv_large(length)
        else:
            body = self._take(length)
        if body is None:
            logger.error("connection closed before the entire PDU was received")
            self.event_queue.put("Evt17")
            return
        if (
            pdu_type == 0x04
            and self.state_machine.current_state == "Sta6"
            and not self.assoc.get_handlers(evt.EVT_DATA_RECV)
            and not self.assoc.get_handlers(evt.EVT_PDU_RECV)
        ):
            # Action DT-2 (Sta6 + Evt10 -> Sta6): P-DATA indication straight to DIMSE; the
            # P-DATA-TF PDUs already buffered behind it follow without a reactor turn.
            while self._indicate(body) and (length := self._buffered_pdata()):
                self._start += 6
                body = self._take(length)
            return
        try:
            pdu, event = self._decode_pdu(bytes(header) + bytes(body))
        except Exception as exc:  # noqa: BLE001 - pynetdicom: any decode error is Evt19
            logger.error("unable to decode the received PDU: %s", exc)
            self.event_queue.put("Evt19")
            return
        self._recv_pdu.put(pdu)
        self.event_queue.put(event)

    def _indicate(self, body: memoryview | bytearray) -> bool:
        """Hand a P-DATA-TF's values to DIMSE; False (Evt19 queued) when it is invalid.

        A PDU holding one dataset fragment that is not the last goes straight to the file
        it is being received into (``NodeDIMSE.dataset_fragment``): most PDUs of a C-STORE.
        """
        dimse = self.assoc.dimse
        if (
            len(body) > 6
            and body[5] == 0x00  # message control header: dataset, not the last fragment
            and _PDV_LENGTH.unpack_from(body)[0] == len(body) - 4
            and getattr(dimse, "dataset_fragment", _never)(memoryview(body)[6:])
        ):
            return True
        try:
            primitive = _p_data(body)
        except ValueError as exc:
            logger.error("invalid P-DATA-TF PDU: %s", exc)
            self.event_queue.put("Evt19")
            return False
        dimse.receive_primitive(primitive)
        return True

    def _buffered_pdata(self) -> int:
        """The body length of the next PDU if it is a P-DATA-TF already buffered whole (and
        nothing else waits: an event, a kill, another state), else 0."""
        start = self._start
        if (
            self._end - start < 6
            or self._chunk[start] != 0x04
            or self._kill_thread
            or not self.event_queue.empty()
            or self.state_machine.current_state != "Sta6"
        ):
            return 0
        (length,) = _PDU_LENGTH.unpack_from(self._chunk, start + 2)
        if not length or self._end - start - 6 < length:
            return 0
        if length > pdu_limits.pdu_limit(self, 0x04):
            return 0  # the normal path refuses it
        return int(length)


def _never(_data: memoryview) -> bool:
    return False


def _readable(raw: Any) -> bool:
    """Wait up to ``pdu_limits.HEADER_WAIT`` for data on a socket without a timeout."""
    try:
        return bool(select.select([raw], [], [], pdu_limits.HEADER_WAIT)[0])
    except (OSError, ValueError):
        return True  # let the read report it


def _p_data(body: bytearray | memoryview) -> P_DATA:
    """A P-DATA primitive whose PDV values are memoryview slices of ``body`` (no copy)."""
    view = memoryview(body)
    items: list[tuple[int, Any]] = []
    offset, end = 0, len(body)
    while offset < end:
        if end - offset < 6:
            raise ValueError("truncated presentation data value item")
        (item_length,) = _PDV_LENGTH.unpack_from(body, offset)
        if item_length < 2 or offset + 4 + item_length > end:
            raise ValueError(f"bad presentation data value item length {item_length}")
        items.append((body[offset + 4], view[offset + 5 : offset + 4 + item_length]))
        offset += 4 + item_length
    primitive = P_DATA()
    # the setter insists on bytes; DIMSE only slices and writes the values
    primitive._presentation_data_value_list = items
    return primitive
