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
import time
from functools import lru_cache

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import evt
from pynetdicom.acse import ACSE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler

from config.model import Settings
from node.net import set_nodelay

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


def make_request_handler(settings: Settings) -> type[RequestHandler]:
    """A pynetdicom request handler class bound to ``settings``."""

    class NodeRequestHandler(RequestHandler):
        def _create_association(self) -> Association:
            set_nodelay(self.request)
            assoc = super()._create_association()
            acse = PolicyACSE(assoc)
            acse.settings = settings
            assoc.acse = acse
            return assoc

    return NodeRequestHandler
