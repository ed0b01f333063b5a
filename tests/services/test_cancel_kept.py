"""A C-CANCEL read before the association thread starts the request it cancels is kept.

The DUL thread stores a C-CANCEL the moment it arrives; pynetdicom clears the stored ones
as it starts serving a request, which dropped a C-CANCEL that came right behind its
C-FIND.  One stored before the request itself arrived belongs to an earlier request with
the same MessageID and must not cancel the new one.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

from pynetdicom.dimse_primitives import C_CANCEL

from node.receive import NodeDIMSE


def _dimse() -> NodeDIMSE:
    return NodeDIMSE(SimpleNamespace(), threading.Event(), lambda _assoc: None)  # type: ignore[arg-type]


def _cancel(message_id: int) -> C_CANCEL:
    cancel = C_CANCEL()
    cancel.MessageIDBeingRespondedTo = message_id
    return cancel


def test_pynetdicom_clearing_keeps_the_cancel_of_the_request_being_served() -> None:
    dimse = _dimse()
    dimse.cancel_req[7] = _cancel(7)  # read by the DUL thread right behind the C-FIND
    dimse.cancel_req[3] = _cancel(3)
    dimse.serving_message_id = 7
    dimse.cancel_req = {}  # what pynetdicom's _serve_request does before the service class
    assert set(dimse.cancel_req) == {7}


def test_clearing_outside_a_request_clears_everything() -> None:
    dimse = _dimse()
    dimse.cancel_req[7] = _cancel(7)
    dimse.cancel_req = {}
    assert dimse.cancel_req == {}
