"""Hand-encoded command sets and file meta walking, byte for byte against pynetdicom/pydicom."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.filereader import _read_file_meta_info, read_preamble
from pynetdicom.dimse_messages import C_GET_RSP, C_MOVE_RSP, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_GET, C_MOVE, C_STORE
from pynetdicom.dsutils import encode

from node import commands
from node.services import sender
from node.services.storedfile import StoredDataset, StoredFileError, dataset_offset
from tests.services.helpers import make_ct

CT = "1.2.840.10008.5.1.4.1.1.2"


def _pynetdicom_command(message_class: type, primitive: object) -> bytes:
    message = message_class()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


@pytest.mark.parametrize(
    ("sop_instance", "originator_aet", "originator_id", "message_id", "priority"),
    [
        ("1.2.3.4", None, None, 1, 2),  # C-GET: no originator; even-length UID
        ("1.2.3.45", "MOVER", 3, 7, 2),  # odd UID, odd AE title (padded with a space)
        ("1.2.840.99.1.2.3.4.5.6.7.8.9.10", "NODE", 65535, 65535, 0),
        ("1.2.3", "AE_TITLE_16CHARS", 0, 2, 1),
    ],
)
def test_c_store_rq_matches_pynetdicom(
    sop_instance: str,
    originator_aet: str | None,
    originator_id: int | None,
    message_id: int,
    priority: int,
) -> None:
    req = C_STORE()
    req.MessageID = message_id
    req.Priority = priority
    req.AffectedSOPClassUID = CT
    req.AffectedSOPInstanceUID = sop_instance
    req.MoveOriginatorApplicationEntityTitle = originator_aet
    req.MoveOriginatorMessageID = originator_id
    req.DataSet = BytesIO(b"\0\0\0\0")
    ours = commands.c_store_rq(
        CT, sop_instance, message_id, priority, originator_aet, originator_id
    )
    assert ours == _pynetdicom_command(C_STORE_RQ, req)


@pytest.mark.parametrize(
    ("primitive_class", "message_class", "field", "model"),
    [
        (C_MOVE, C_MOVE_RSP, commands.C_MOVE_RSP, "1.2.840.10008.5.1.4.1.2.2.2"),
        (C_GET, C_GET_RSP, commands.C_GET_RSP, "1.2.840.10008.5.1.4.1.2.1.3"),
    ],
)
def test_pending_rsp_matches_pynetdicom(
    primitive_class: type, message_class: type, field: int, model: str
) -> None:
    rsp = primitive_class()
    rsp.MessageIDBeingRespondedTo = 21
    rsp.AffectedSOPClassUID = model
    rsp.Status = 0xFF00
    rsp.NumberOfRemainingSuboperations = 199
    rsp.NumberOfCompletedSuboperations = 1
    rsp.NumberOfFailedSuboperations = 0
    rsp.NumberOfWarningSuboperations = 0
    expected = _pynetdicom_command(message_class, rsp)
    assert commands.pending_rsp(field, model, 21, 199, 1, 0, 0) == expected
    # and what the DIMSE wrapper builds from the primitive
    assert sender._pending_command(rsp) == expected


def test_pending_command_leaves_other_responses_to_pynetdicom() -> None:
    rsp = C_MOVE()
    rsp.MessageIDBeingRespondedTo = 1
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    rsp.Status = 0x0000
    rsp.NumberOfFailedSuboperations = 0
    rsp.NumberOfWarningSuboperations = 0
    rsp.NumberOfCompletedSuboperations = 2
    assert sender._pending_command(rsp) is None  # final: pynetdicom encodes it


@pytest.mark.parametrize("comment", [None, "Out of space", "odd"])
def test_parse_store_rsp_of_pynetdicom_encoding(comment: str | None) -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 9
    rsp.AffectedSOPClassUID = CT
    rsp.AffectedSOPInstanceUID = "1.2.3.4"
    rsp.Status = 0xA700 if comment else 0x0000
    rsp.ErrorComment = comment
    parsed = commands.parse_store_rsp(_pynetdicom_command(C_STORE_RSP, rsp))
    assert parsed == commands.StoreResponse(9, rsp.Status, comment)


def test_parse_store_rsp_refuses_other_commands() -> None:
    with pytest.raises(commands.CommandError):
        commands.parse_store_rsp(commands.c_store_rq(CT, "1.2.3", 1))
    with pytest.raises(commands.CommandError):
        commands.parse_store_rsp(b"\x00\x00\x00\x00\x04\x00")  # truncated


def test_fragments_fit_the_peer_pdu() -> None:
    command = commands.c_store_rq(CT, "1.2.3.4", 1)
    data = bytes(range(256)) * 40  # 10240 bytes
    parts = list(sender.fragments(command, data, 4096))
    assert parts[0] == (0x03, memoryview(command))
    dataset = parts[1:]
    assert all(len(fragment) + 6 <= 4096 for _, fragment in dataset)
    assert [control for control, _ in dataset] == [0x00, 0x00, 0x02]
    assert b"".join(bytes(f) for _, f in dataset) == data
    # unlimited (0): one fragment each
    assert [c for c, _ in sender.fragments(command, data, 0)] == [0x03, 0x02]


def test_dataset_offset_matches_pydicom(tmp_path: Path) -> None:
    ds = make_ct(rows=16)
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    with open(path, "rb") as fh:
        read_preamble(fh, False)
        _read_file_meta_info(fh)
        expected = fh.tell()
        rest = fh.read()
    offset, syntax = dataset_offset(path.read_bytes())
    assert (offset, syntax) == (expected, ds.file_meta.TransferSyntaxUID)
    stored = StoredDataset.read(str(path))
    assert bytes(stored.data) == rest


def test_dataset_offset_refuses_a_file_without_part10_header() -> None:
    with pytest.raises(StoredFileError):
        dataset_offset(b"\0" * 200)
