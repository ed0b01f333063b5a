"""Who may associate: the AETable decides, as dcmqrscp does.

Several AE titles share one port, each with its own storage area and records, so the called
AE title must be one of the AETable's (else A-ASSOCIATE-RJ: called AE title not recognised),
and the calling AE title *and* its host must match one of that entry's peers, unless the
entry says ``ANY`` (else: calling AE title not recognised).  pynetdicom only knows a single
AE title and a flat list of calling titles, so the check runs in a small ACSE subclass that
each accepted association gets from ``NodeRequestHandler``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from copy import deepcopy
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.acse import ACSE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket, RequestHandler

from config.model import Settings
from node.dul import IDLE_WAIT, NodeDUL
from node.net import set_nodelay
from node.receive import NodeDIMSE, PartFolder

if TYPE_CHECKING:
    from pynetdicom.ae import ApplicationEntity

logger = logging.getLogger(__name__)

KNOWN_SYNTAXES = frozenset(AllTransferSyntaxes)

# A-ASSOCIATE-RJ (result, source, reason) - PS3.8 9.3.4
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE
REJECT_CALLED_AE = (0x01, 0x01, 0x07)  # rejected-permanent, service-user, called AE
REJECT_NO_REASON = (0x01, 0x01, 0x01)  # rejected-permanent, service-user, no reason given


@lru_cache(maxsize=256)
def _addresses(hostname: str, _ttl_bucket: int) -> frozenset[str]:
    try:
        infos = socket.getaddrinfo(hostname, None)
    except OSError:
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


def host_matches(hostname: str, address: str) -> bool:
    """Does the configured ``hostname`` (a name or an address) designate ``address``?"""
    if hostname == address:
        return True
    # resolve at most once a minute per name: DNS may change, but not per association
    return address in _addresses(hostname, int(time.monotonic() // 60))


def rejection(settings: Settings, called: str, calling: str, address: str) -> tuple[int, ...]:
    """The A-ASSOCIATE-RJ reason for a request, or ``()`` when it may proceed."""
    entry = settings.ae(called)
    if entry is None:
        return REJECT_CALLED_AE
    if entry.peers is None:
        return ()
    calling = calling.strip()
    for peer in entry.peers:
        if peer.ae_title == calling and host_matches(peer.hostname, address):
            return ()
    return REJECT_CALLING_AE


class PolicyACSE(ACSE):
    """ACSE that applies the AETable's rules before pynetdicom's own negotiation."""

    settings: Settings

    def _negotiate_as_acceptor(self) -> None:
        request = self.requestor.primitive
        called = str(request.called_ae_title).strip()
        calling = str(request.calling_ae_title).strip()
        address = self.assoc.requestor.address
        reason = rejection(self.settings, called, calling, address)
        if not reason and self.settings.require_user_identity and not self.requestor.user_identity:
            reason = REJECT_NO_REASON
        if reason:
            logger.warning(
                "rejecting association from %s@%s to %s: %s",
                calling,
                address,
                called,
                {
                    REJECT_CALLED_AE: "called AE title not configured",
                    REJECT_CALLING_AE: "calling AE title/host not among the AE's peers",
                }.get(reason, "no user identity (RequireUserIdentity)"),
            )
            self.requestor.ae_title = calling
            self.send_reject(*reason)
            evt.trigger(self.assoc, evt.EVT_REJECTED, {})
            self.assoc.kill()
            return
        # Answer with the AE title that was called (several share the port).
        self.acceptor.ae_title = called
        _prefer_known_syntaxes(request.presentation_context_definition_list)
        super()._negotiate_as_acceptor()


def _prefer_known_syntaxes(contexts: list[PresentationContext]) -> None:
    """Drop proposed transfer syntaxes pydicom cannot parse, when a known one is proposed too.

    pynetdicom's unrestricted storage negotiation accepts the first proposed syntax; a
    private syntax we cannot parse would turn every C-STORE on that context into a failure.
    The caller's order among the remaining syntaxes is kept (its first choice wins).
    """
    for context in contexts:
        proposed = list(context.transfer_syntax)
        known = [uid for uid in proposed if uid in KNOWN_SYNTAXES]
        if known and len(known) != len(proposed):
            context._transfer_syntax = [UID(uid) for uid in known]


class NodeAssociation(Association):
    """An accepted association whose two threads wait on events instead of polling.

    pynetdicom's acceptor reactor sleeps 1 ms between looks at the DIMSE queue; this one
    blocks on ``wake``, which the DUL (``node.dul.NodeDUL``) and DIMSE
    (``node.receive.NodeDIMSE``) set whenever they queue something for it or the DUL
    stops.  The checks after each wake-up are pynetdicom's, in its order.
    """

    def __init__(self, ae: ApplicationEntity, mode: str, part_folder: PartFolder) -> None:
        super().__init__(ae, mode)
        self.wake = threading.Event()
        #: Held while a request is served, on whichever thread (``serve_here``).
        self.serving = threading.Lock()
        self._serving_here = False
        self.dul = NodeDUL(self, self.wake)
        self.dimse = NodeDIMSE(self, self.wake, part_folder)
        # the timeout setters configure the DUL's timers: apply them to the new DUL
        self.acse_timeout = self.acse_timeout
        self.network_timeout = self.network_timeout

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            cast(NodeDIMSE, self.dimse).discard()

    def _run_reactor(self) -> None:
        self._is_paused = False
        while not self._kill:
            # Paused while waiting: a thread that wants the reactor out of the way
            # (send_*() from another thread) may clear the checkpoint and go ahead.
            self._is_paused = True
            self.wake.wait(IDLE_WAIT)
            self.wake.clear()
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self.wake.set()  # there may be more: look again before waiting
                with self.serving:
                    self._serve_request(msg, cast(int, context_id))

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                logger.debug("association released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)  # so EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired() and not self._serving_here:
                logger.error("network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return

    def _serve_request(self, msg: Any, context_id: int) -> None:
        """pynetdicom's, telling DIMSE which request is being served (see
        ``NodeDIMSE.cancel_req``: a C-CANCEL for it that arrived first is kept)."""
        dimse = cast(NodeDIMSE, self.dimse)
        message_id = getattr(msg, "MessageID", None)
        dimse.serving_message_id = message_id
        try:
            super()._serve_request(msg, context_id)
        finally:
            dimse.serving_message_id = None
            dimse.cancel_req.pop(message_id, None)  # type: ignore[arg-type]

    def serve_here(self, msg: Any, context_id: int) -> bool:
        """Serve ``msg`` on the calling (DUL) thread if no other request is being served.

        Returns False, doing nothing, when the association thread is serving or paused
        (``_reactor_checkpoint`` cleared): the caller queues the message instead.
        """
        if not self._reactor_checkpoint.is_set() or not self.serving.acquire(blocking=False):
            return False
        try:
            self._serving_here = True
            self._serve_request(msg, context_id)
        finally:
            self._serving_here = False
            self.dul._idle_timer.restart()  # the network was idle because we were busy
            self.serving.release()
        return True


def make_request_handler(settings: Settings, part_folder: PartFolder) -> type[RequestHandler]:
    """A pynetdicom request handler class bound to ``settings``.

    ``part_folder`` says where the C-STORE datasets of an association are received (the
    called AE's store ``.tmp``: ``node.receive``).
    """

    class NodeRequestHandler(RequestHandler):
        def _create_association(self) -> Association:
            # pynetdicom's RequestHandler._create_association, with our Association class
            set_nodelay(self.request)
            ae = self.ae
            assoc = NodeAssociation(ae, MODE_ACCEPTOR, part_folder)
            assoc._server = self.server
            timestamp = datetime.strftime(datetime.now(), "%Y%m%d%H%M%S")
            assoc.name = f"AcceptorThread@{timestamp}"
            assoc.set_socket(AssociationSocket(assoc, client_socket=self.request))
            assoc.acceptor.maximum_length = ae.maximum_pdu_size
            assoc.acceptor.ae_title = self.server.ae_title
            assoc.acceptor.address_info = self.local
            assoc.acceptor.implementation_class_uid = ae.implementation_class_uid
            assoc.acceptor.implementation_version_name = ae.implementation_version_name
            assoc.acceptor.supported_contexts = deepcopy(self.server.contexts)
            assoc.requestor.address_info = self.remote
            for event, bound in self.server._handlers.items():
                if event.is_intervention and bound:
                    assoc.bind(event, *cast(tuple[Any, Any], bound))
                elif isinstance(event, evt.NotificationEvent):
                    for handler, args in cast(list[tuple[Any, Any]], bound):
                        assoc.bind(event, handler, args)
            acse = PolicyACSE(assoc)
            acse.settings = settings
            assoc.acse = acse
            return assoc

    return NodeRequestHandler
