"""The C-MOVE/C-GET sender over real sockets: bytes as stored, small PDUs, fallback, failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from config.model import HostEntry
from node.app import Node
from tests.interop.conftest import StoreSCP, dataset_bytes
from tests.services.helpers import associate, make_ct, scu


class Destination:
    """A pynetdicom storage SCP that answers each C-STORE as ``behaviour`` says.

    The node sets pynetdicom's process-wide ``UNRESTRICTED_STORAGE_SERVICE``, so this peer
    accepts whatever is proposed; a peer restricted to some syntaxes is DCMTK's storescp.
    """

    def __init__(
        self,
        port: int,
        max_pdu: int = 16382,
        behaviour: Callable[[int, str, evt.Event], int] | None = None,
    ) -> None:
        self.received: list[Dataset] = []
        self.syntaxes: list[str] = []
        self.behaviour = behaviour or (lambda index, uid, event: 0x0000)
        ae = AE(ae_title="DEST")
        ae.maximum_pdu_size = max_pdu
        ae.add_supported_context(CTImageStorage)
        self.server = ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: evt.Event) -> int:
        index = len(self.received)
        self.received.append(event.dataset)
        self.syntaxes.append(str(event.context.transfer_syntax))
        return self.behaviour(index, str(event.request.AffectedSOPInstanceUID), event)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def destination(free_port: Callable[[], int]) -> Iterator[Callable[..., Destination]]:
    started: list[Destination] = []

    def _start(**kwargs: object) -> Destination:
        dest = Destination(free_port(), **kwargs)  # type: ignore[arg-type]
        started.append(dest)
        return dest

    yield _start
    for dest in started:
        dest.stop()


def _node(start_node: Callable[..., Node], port: int) -> Node:
    return start_node(
        hosts={"dest": (HostEntry(ae_title="DEST", hostname="127.0.0.1", port=port),)}
    )


def _store(node: Node, datasets: list[Dataset], syntax: str | None = None) -> None:
    if syntax is None:
        ae = scu(storage=True)
    else:
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(CTImageStorage, [syntax])
    assoc = associate(ae, node.port)
    for ds in datasets:
        assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()


def _study(count: int, rows: int = 4) -> list[Dataset]:
    first = make_ct(rows=rows)
    rest = [
        make_ct(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID, rows=rows)
        for _ in range(count - 1)
    ]
    return [first, *rest]


def _query(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def _move(node: Node, study_uid: str) -> list[tuple[Dataset, Dataset | None]]:
    assoc = associate(scu(qr=True), node.port)
    responses = list(
        assoc.send_c_move(_query(study_uid), "DEST", StudyRootQueryRetrieveInformationModelMove)
    )
    assoc.release()
    return responses


def _stored_files(tmp_path: Path) -> dict[str, Path]:
    files = [p for p in (tmp_path / "store" / "NODE").rglob("*.dcm") if ".tmp" not in p.parts]
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}


def test_move_sends_stored_bytes_in_fragments_of_a_small_peer_pdu(
    start_node, require_binary, free_port, tmp_path: Path
) -> None:
    """storescp (bit-preserving, 4 kB PDUs) receives each dataset byte for byte as stored."""
    dest = StoreSCP(
        require_binary("storescp"), free_port(), tmp_path / "scp", ["+B", "--max-pdu", "4096"]
    )
    try:
        node = _node(start_node, dest.port)
        study = _study(3, rows=128)  # 32 kB of pixels: several PDUs each
        _store(node, study, ExplicitVRLittleEndian)  # storescp prefers Explicit VR
        final, _ = _move(node, study[0].StudyInstanceUID)[-1]
        assert final.Status == 0x0000
        assert final.NumberOfCompletedSuboperations == 3
        received = dest.files()
    finally:
        dest.stop()
    stored = _stored_files(tmp_path)
    assert len(received) == 3
    for path in received:
        uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert dataset_bytes(path) == dataset_bytes(stored[uid])


def test_move_to_a_small_pdu_pynetdicom_peer(start_node, destination) -> None:
    dest = destination(max_pdu=4096)
    node = _node(start_node, dest.server.server_address[1])
    study = _study(2, rows=64)
    _store(node, study)
    final, _ = _move(node, study[0].StudyInstanceUID)[-1]
    assert final.Status == 0x0000
    by_uid = {d.SOPInstanceUID: d for d in dest.received}
    for ds in study:
        assert by_uid[ds.SOPInstanceUID].PixelData == ds.PixelData


def test_move_transcodes_when_the_stored_syntax_is_not_accepted(
    start_node, require_binary, free_port, tmp_path: Path
) -> None:
    """Stored Explicit VR, the destination takes Implicit VR only: decoded and re-encoded."""
    dest = StoreSCP(require_binary("storescp"), free_port(), tmp_path / "scp", ["+xi", "+B"])
    try:
        node = _node(start_node, dest.port)
        study = _study(2, rows=16)
        _store(node, study, ExplicitVRLittleEndian)
        final, _ = _move(node, study[0].StudyInstanceUID)[-1]
        assert final.Status == 0x0000
        assert final.NumberOfCompletedSuboperations == 2
        received = [dcmread(p) for p in dest.files()]
    finally:
        dest.stop()
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in received} == {ImplicitVRLittleEndian}
    by_uid = {ds.SOPInstanceUID: ds for ds in received}
    for ds in study:
        assert by_uid[ds.SOPInstanceUID].PixelData == ds.PixelData
        assert by_uid[ds.SOPInstanceUID].PatientName == ds.PatientName


def test_failure_status_from_the_destination_counts_as_failed(start_node, destination) -> None:
    refused: list[str] = []

    def refuse_second(index: int, uid: str, event: evt.Event) -> int:
        if index == 1:
            refused.append(uid)
            return 0xA700  # Out of Resources
        return 0x0000

    dest = destination(behaviour=refuse_second)
    node = _node(start_node, dest.server.server_address[1])
    study = _study(3)
    _store(node, study)
    responses = _move(node, study[0].StudyInstanceUID)
    final, identifier = responses[-1]
    assert final.Status == 0xB000
    assert final.NumberOfCompletedSuboperations == 2
    assert final.NumberOfFailedSuboperations == 1
    assert identifier is not None
    assert list(_as_list(identifier.FailedSOPInstanceUIDList)) == refused
    pending = [s for s, _ in responses if s.Status == 0xFF00]
    assert [s.NumberOfFailedSuboperations for s in pending][-1] == 1


def test_destination_aborting_mid_move_fails_the_rest(start_node, destination) -> None:
    def abort_on_second(index: int, uid: str, event: evt.Event) -> int:
        if index == 1:
            event.assoc.abort()
        return 0x0000

    dest = destination(behaviour=abort_on_second)
    node = _node(start_node, dest.server.server_address[1])
    study = _study(4)
    _store(node, study)
    final, identifier = _move(node, study[0].StudyInstanceUID)[-1]
    assert final.Status == 0xB000
    assert final.NumberOfCompletedSuboperations == 1
    assert final.NumberOfFailedSuboperations == 3
    assert identifier is not None
    assert len(_as_list(identifier.FailedSOPInstanceUIDList)) == 3
    # the node is unharmed: the next move to the (now well-behaved) destination succeeds
    dest.behaviour = lambda index, uid, event: 0x0000
    final, _ = _move(node, study[0].StudyInstanceUID)[-1]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 4


def test_get_with_a_small_peer_pdu(start_node) -> None:
    node = start_node()
    study = _study(3, rows=64)
    _store(node, study)
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.maximum_pdu_size = 4096
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, [ImplicitVRLittleEndian])
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="NODE",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    responses = [
        s
        for s, _ in assoc.send_c_get(
            _query(study[0].StudyInstanceUID), StudyRootQueryRetrieveInformationModelGet
        )
    ]
    assoc.release()
    assert responses[-1].Status == 0x0000
    assert responses[-1].NumberOfCompletedSuboperations == 3
    assert [r.NumberOfRemainingSuboperations for r in responses[:-1]] == [2, 1, 0]
    by_uid = {d.SOPInstanceUID: d for d in received}
    for ds in study:  # stored Explicit, accepted Implicit only: transcoded on the way
        assert by_uid[ds.SOPInstanceUID].PixelData == ds.PixelData


def test_get_failure_status_counts_as_failed(start_node) -> None:
    node = start_node()
    study = _study(2)
    _store(node, study)

    def refuse(event: evt.Event) -> int:
        return 0xA700

    ae = AE(ae_title="GETSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="NODE",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, refuse)],
    )
    responses = list(
        assoc.send_c_get(
            _query(study[0].StudyInstanceUID), StudyRootQueryRetrieveInformationModelGet
        )
    )
    assoc.release()
    final, identifier = responses[-1]
    assert final.Status == 0xA702  # every sub-operation failed
    assert final.NumberOfFailedSuboperations == 2
    assert identifier is not None
    assert sorted(_as_list(identifier.FailedSOPInstanceUIDList)) == sorted(
        ds.SOPInstanceUID for ds in study
    )


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[attr-defined]
