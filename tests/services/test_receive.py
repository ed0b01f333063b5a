"""The node's receive path (node/dul.py, node/receive.py) over real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pynetdicom import evt
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind

from node.app import Node
from node.dul import NodeDUL
from node.receive import NodeDIMSE, c_store_success_rsp
from tests.services.helpers import associate, make_ct, scu


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_dataset_is_received_into_the_store_and_stored_without_a_copy(node: Node) -> None:
    seen: list[tuple[type, type]] = []

    def spy(event: object) -> None:
        assoc = event.assoc  # type: ignore[attr-defined]
        seen.append((type(assoc.dul), type(assoc.dimse)))

    assert node.server is not None
    node.server.bind(evt.EVT_ESTABLISHED, spy)
    assoc = associate(scu(storage=True), node.port)
    ds = make_ct()
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    assert seen == [(NodeDUL, NodeDIMSE)]
    store = node.stores["NODE"]
    (row,) = node.index.instances("NODE")
    stored = dcmread(store.absolute(row.path))
    assert stored.file_meta.SourceApplicationEntityTitle == "TESTSCU"
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert stored.PixelData == ds.PixelData
    assert list(store.tmp.iterdir()) == []  # received file adopted, marker dropped


def test_interleaved_services_on_one_association(node: Node) -> None:
    """C-STORE, C-ECHO and C-FIND one after the other: no message waits for a poll."""
    ae = scu(storage=True)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(ae, node.port)
    study = make_ct().StudyInstanceUID
    start = time.monotonic()
    for _ in range(20):
        assert assoc.send_c_store(make_ct(study_uid=study, rows=16)).Status == 0x0000
        assert assoc.send_c_echo().Status == 0x0000
    query = make_ct()
    for keyword in list(query.keys()):
        del query[keyword]
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    query.NumberOfStudyRelatedInstances = ""
    answers = [
        ident
        for status, ident in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
        if status and status.Status in (0xFF00, 0xFF01)
    ]
    assoc.release()
    assert [int(a.NumberOfStudyRelatedInstances) for a in answers] == [20]
    assert time.monotonic() - start < 30


def test_concurrent_associations_all_land(node: Node) -> None:
    errors: list[str] = []

    def send(n: int) -> None:
        assoc = associate(scu(storage=True), node.port)
        for _ in range(n):
            status = assoc.send_c_store(make_ct(rows=32)).Status
            if status != 0:
                errors.append(hex(status))
        assoc.release()

    threads = [threading.Thread(target=send, args=(10,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert node.index.counts("NODE")["instances"] == 40


def test_abort_in_the_middle_of_a_dataset_leaves_no_file(node: Node) -> None:
    assoc = associate(scu(storage=True), node.port)
    ds = make_ct(rows=256)  # 128 KiB of pixels: many P-DATA fragments
    context = next(cx for cx in assoc.accepted_contexts if cx.abstract_syntax == CTImageStorage)
    syntax = context.transfer_syntax[0]
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = syntax.is_implicit_VR, True
    write_dataset(buffer, ds)
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = BytesIO(buffer.getvalue())
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    fragments = list(message.encode_msg(context.context_id, 16384))
    for primitive in fragments[: len(fragments) // 2]:  # command and half the dataset
        assoc.dul.send_pdu(primitive)
    tmp = node.stores["NODE"].tmp
    assert _wait(lambda: any(tmp.glob("tmprecv*.dcm"))), "the dataset is not being received"
    assoc.abort()
    assert _wait(lambda: not any(Path(tmp).iterdir())), list(tmp.iterdir())
    assert node.index.counts("NODE")["instances"] == 0


@pytest.mark.parametrize("sop_uid", ["1.2.3.4", "1.2.3.45"])
def test_c_store_success_response_is_encoded_as_pynetdicom_does(sop_uid: str) -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = CTImageStorage
    rsp.AffectedSOPInstanceUID = sop_uid
    rsp.Status = 0x0000
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    (pdata,) = message.encode_msg(1, 16384)
    ((_, pdv),) = pdata.presentation_data_value_list
    assert pdv[0] == 0x03
    assert c_store_success_rsp(rsp) == pdv[1:]
    rsp.Status = 0xA700  # anything but a plain Success goes through pynetdicom
    assert c_store_success_rsp(rsp) is None
