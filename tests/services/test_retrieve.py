"""C-MOVE and C-GET SCP over real sockets: destinations, counts, transcode-on-retrieve."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from config.model import HostEntry
from node.app import Node
from tests.services.helpers import associate, make_ct, scu


class Receiver:
    """A pynetdicom storage SCP that keeps what it receives (the move destination)."""

    def __init__(self, port: int, syntaxes: list[str] | None = None) -> None:
        self.received: list[Dataset] = []
        self.syntaxes: list[str] = []
        ae = AE(ae_title="DEST")
        from pynetdicom import _config

        _config.UNRESTRICTED_STORAGE_SERVICE = syntaxes is None
        if syntaxes is not None:
            for sop_class in (CTImageStorage, "1.2.840.10008.5.1.4.1.1.7"):
                ae.add_supported_context(sop_class, syntaxes)
        self.ae = ae
        self.server = ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: evt.Event) -> int:
        self.received.append(event.dataset)
        self.syntaxes.append(str(event.context.transfer_syntax))
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver(free_port: Callable[[], int]) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def _start(syntaxes: list[str] | None = None) -> Receiver:
        r = Receiver(free_port(), syntaxes)
        started.append(r)
        return r

    yield _start
    for r in started:
        r.stop()
    from pynetdicom import _config

    _config.UNRESTRICTED_STORAGE_SERVICE = True


def node_with_destination(start_node, port: int) -> Node:
    return start_node(
        hosts={"dest": (HostEntry(ae_title="DEST", hostname="127.0.0.1", port=port),)}
    )


def store(node: Node, *datasets: Dataset) -> None:
    assoc = associate(scu(storage=True), node.port)
    for ds in datasets:
        assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()


def move(
    node: Node,
    query: Dataset,
    destination: str = "DEST",
    model=StudyRootQueryRetrieveInformationModelMove,
) -> list[Dataset]:
    assoc = associate(scu(qr=True), node.port)
    responses = [status for status, _ in assoc.send_c_move(query, destination, model)]
    assoc.release()
    return responses


def study_query(uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = uid
    return ds


def test_move_study_to_configured_destination(start_node, receiver) -> None:
    dest = receiver()
    node = node_with_destination(start_node, dest.server.server_address[1])
    first = make_ct()
    others = [make_ct(study_uid=first.StudyInstanceUID) for _ in range(2)]
    store(node, first, *others, make_ct())
    responses = move(node, study_query(first.StudyInstanceUID))
    final = responses[-1]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 3
    assert final.NumberOfFailedSuboperations == 0
    pending = [r for r in responses if r.Status == 0xFF00]
    assert [r.NumberOfRemainingSuboperations for r in pending] == [2, 1, 0][: len(pending)]
    assert sorted(d.SOPInstanceUID for d in dest.received) == sorted(
        d.SOPInstanceUID for d in [first, *others]
    )
    assert dest.received[0].PixelData == first.PixelData


def test_move_to_unknown_destination_is_A801(start_node, receiver) -> None:
    node = start_node()
    ds = make_ct()
    store(node, ds)
    responses = move(node, study_query(ds.StudyInstanceUID), destination="NOWHERE")
    assert responses[-1].Status == 0xA801
    assert "NOWHERE unknown" in responses[-1].ErrorComment


def test_move_patient_level(start_node, receiver) -> None:
    dest = receiver()
    node = node_with_destination(start_node, dest.server.server_address[1])
    a, b = make_ct(patient_id="P9"), make_ct(patient_id="P9")
    store(node, a, b, make_ct(patient_id="OTHER"))
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = "P9"
    responses = move(node, query, model=PatientRootQueryRetrieveInformationModelMove)
    assert responses[-1].Status == 0x0000
    assert len(dest.received) == 2


def test_get_study_with_role_selection(start_node) -> None:
    node = start_node()
    first = make_ct()
    second = make_ct(study_uid=first.StudyInstanceUID)
    store(node, first, second)
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    role = build_role(CTImageStorage, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="NODE",
        ext_neg=[role],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    responses = [
        s
        for s, _ in assoc.send_c_get(
            study_query(first.StudyInstanceUID), StudyRootQueryRetrieveInformationModelGet
        )
    ]
    assoc.release()
    assert responses[-1].Status == 0x0000
    assert responses[-1].NumberOfCompletedSuboperations == 2
    assert sorted(d.SOPInstanceUID for d in received) == sorted(
        [first.SOPInstanceUID, second.SOPInstanceUID]
    )


def test_get_without_storage_context_reports_failures(start_node) -> None:
    node = start_node()
    ds = make_ct()
    store(node, ds)
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="NODE")
    responses = [
        s
        for s, _ in assoc.send_c_get(
            study_query(ds.StudyInstanceUID), StudyRootQueryRetrieveInformationModelGet
        )
    ]
    assoc.release()
    final = responses[-1]
    assert final.Status in (0xA702, 0xB000, 0xC000) or final.Status & 0xF000 == 0xA000
    assert final.NumberOfFailedSuboperations == 1


def test_get_cancel_stops_between_instances(start_node) -> None:
    node = start_node()
    first = make_ct()
    others = [make_ct(study_uid=first.StudyInstanceUID) for _ in range(9)]
    store(node, first, *others)
    received: list[str] = []
    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    holder: dict[str, object] = {}

    def on_store(event: evt.Event) -> int:
        received.append(event.request.AffectedSOPInstanceUID)
        if len(received) == 1:  # C-CANCEL before answering the first sub-operation
            holder["assoc"].send_c_cancel(21, query_model=StudyRootQueryRetrieveInformationModelGet)
        return 0x0000

    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="NODE",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    holder["assoc"] = assoc
    responses = [
        s
        for s, _ in assoc.send_c_get(
            study_query(first.StudyInstanceUID),
            StudyRootQueryRetrieveInformationModelGet,
            msg_id=21,
        )
    ]
    assoc.release()
    assert responses[-1].Status == 0xFE00
    assert len(received) < 10
