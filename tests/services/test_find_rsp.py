"""C-FIND-RSP sent by hand: pynetdicom's bytes, fragments for small PDUs, every syntax, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from node import commands
from node.app import Node
from node.services import find_rsp
from tests.services.helpers import associate, make_ct, scu

STUDIES = 12


def _pynetdicom_command(uid: str, msg_id: int, status: int, identifier: bool) -> bytes:
    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo = msg_id
    rsp.AffectedSOPClassUID = uid
    rsp.Status = status
    if identifier:
        rsp.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    msg = C_FIND_RSP()
    msg.primitive_to_message(rsp)
    [first, *_] = msg.encode_msg(1, 0)
    [(_, data)] = first.presentation_data_value_list
    assert data[0] == 0x03
    return bytes(data[1:])


@pytest.mark.parametrize(
    "uid",
    [PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind],
)
@pytest.mark.parametrize("msg_id", [1, 2, 255, 256, 0xFFFF])
@pytest.mark.parametrize(
    "status, identifier", [(0xFF00, True), (0xFF01, True), (0x0000, False), (0xFE00, False)]
)
def test_command_set_is_pynetdicoms(uid: str, msg_id: int, status: int, identifier: bool) -> None:
    expected = _pynetdicom_command(uid, msg_id, status, identifier)
    assert commands.c_find_rsp(uid, msg_id, status, identifier) == expected


def test_odd_length_uid_is_padded_with_a_null() -> None:
    command = commands.c_find_rsp("1.2.3", 1, 0xFF00)
    assert command == _pynetdicom_command("1.2.3", 1, 0xFF00, True)
    assert b"1.2.3\0" in command


def test_fragments() -> None:
    assert find_rsp.fragments(b"abcdef", 3, 1, 0) == [(3, b"abcdef")]
    assert find_rsp.fragments(b"abcdef", 3, 1, 12) == [(3, b"abcdef")]
    assert find_rsp.fragments(b"abcdefg", 2, 0, 9) == [(0, b"abc"), (0, b"def"), (2, b"g")]
    with pytest.raises(ValueError):
        find_rsp.fragments(b"a", 3, 1, 6)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, set[str]]]:
    from tests.conftest import _free_port
    from tests.services.conftest import make_settings

    node = Node(make_settings(tmp_path_factory.mktemp("find_rsp"), _free_port()))
    node.start()
    studies = set()
    assoc = associate(scu(storage=True), node.port)
    for n in range(STUDIES):
        uid = generate_uid()
        studies.add(uid)
        ds = make_ct(f"PID{n}", f"ROE^ANN{n}", uid, study_date="20240102")
        assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    yield node, studies
    node.stop(grace=1.0)


def _query() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in (
        "StudyInstanceUID",
        "PatientName",
        "PatientID",
        "StudyDate",
        "ModalitiesInStudy",
    ):
        setattr(ds, keyword, "")
    ds.PatientName = "ROE^ANN*"
    return ds


def _find(node: Node, ae: AE) -> tuple[list[Dataset], int | None]:
    assoc = associate(ae, node.port)
    results, final = [], None
    for status, identifier in assoc.send_c_find(
        _query(), StudyRootQueryRetrieveInformationModelFind
    ):
        if status.Status in (0xFF00, 0xFF01):
            results.append(identifier)
        else:
            final = status.Status
    assoc.release()
    return results, final


@pytest.mark.parametrize(
    "syntax",
    [
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    ],
)
def test_every_transfer_syntax(loaded: tuple[Node, set[str]], syntax: str) -> None:
    node, studies = loaded
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind, [syntax])
    results, final = _find(node, ae)
    assert final == 0x0000
    assert {ds.StudyInstanceUID for ds in results} == studies
    assert all(
        ds.ModalitiesInStudy == "CT" and str(ds.PatientName).startswith("ROE") for ds in results
    )


@pytest.mark.parametrize("max_pdu", [64, 128, 300])
def test_small_peer_pdu_gets_fragments(loaded: tuple[Node, set[str]], max_pdu: int) -> None:
    node, studies = loaded
    ae = scu(qr=True)
    ae.maximum_pdu_size = max_pdu
    results, final = _find(node, ae)
    assert final == 0x0000
    assert {ds.StudyInstanceUID for ds in results} == studies
    assert all(ds.PatientID.startswith("PID") and ds.StudyDate == "20240102" for ds in results)


def test_cancel_right_behind_the_request(loaded: tuple[Node, set[str]]) -> None:
    """C-CANCEL right behind the C-FIND: Cancel with fewer matches, or Success with all.

    Which one is not ours to decide: a C-CANCEL that the DUL reads before pynetdicom's
    ``_serve_request`` starts the C-FIND is dropped there (it clears ``cancel_req``), and one
    read after the last match comes too late (PS3.4 C.4.1.2.3 allows both).  Either way the
    responses are well formed and the association goes on working.
    """
    node, studies = loaded
    model = StudyRootQueryRetrieveInformationModelFind
    assoc = associate(scu(qr=True), node.port)
    responses = assoc.send_c_find(_query(), model, msg_id=7)
    assoc.send_c_cancel(7, query_model=model)
    statuses = [status.Status for status, _ in responses]
    pending, final = statuses[:-1], statuses[-1]
    assert set(pending) <= {0xFF00}
    if final == 0xFE00:
        assert len(pending) < STUDIES
    else:
        assert final == 0x0000 and len(pending) == STUDIES
    again = [status.Status for status, _ in assoc.send_c_find(_query(), model, msg_id=8)]
    assert again == [0xFF00] * STUDIES + [0x0000]
    assoc.release()


@pytest.mark.parametrize("max_pdu", [0, 16384, 64])
def test_each_p_data_carries_one_value(max_pdu: int) -> None:
    """Command and identifier go in P-DATA-TFs of their own, as DCMTK and pynetdicom send
    them: gdcmscu does not read both from one PDU (it waited 60 s per C-FIND)."""
    from types import SimpleNamespace

    from pydicom.uid import UID

    sent: list = []
    assoc = SimpleNamespace(
        dimse=SimpleNamespace(maximum_pdu_size=max_pdu),
        dul=SimpleNamespace(send_pdu=sent.append),
    )
    event = SimpleNamespace(
        assoc=assoc,
        context=SimpleNamespace(context_id=3, transfer_syntax=UID(ExplicitVRLittleEndian)),
        request=SimpleNamespace(
            AffectedSOPClassUID=StudyRootQueryRetrieveInformationModelFind, MessageID=9
        ),
    )
    identifier = b"\x10\x00\x10\x00PN\x04\x00DOE^"
    find_rsp.PendingSender(event).send(identifier)  # type: ignore[arg-type]
    values = [pdata.presentation_data_value_list for pdata in sent]
    assert all(len(v) == 1 for v in values)
    command = b"".join(bytes(v[0][1][1:]) for v in values if v[0][1][0] & 1)
    dataset = b"".join(bytes(v[0][1][1:]) for v in values if not v[0][1][0] & 1)
    assert command == commands.c_find_rsp(StudyRootQueryRetrieveInformationModelFind, 9, 0xFF00)
    assert dataset == identifier
    assert values[-1][0][1][0] == 0x02  # the identifier's last fragment closes the message
