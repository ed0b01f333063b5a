"""C-ECHO and C-STORE over real sockets: statuses, durability, replace, refusals."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from node.app import Node
from tests.services.helpers import associate, make_ct, scu


def stored_files(node: Node, ae: str = "NODE") -> list[Path]:
    return sorted(node.stores[ae].area.glob("*/*/*.dcm"))


def test_echo(node: Node) -> None:
    assoc = associate(scu(), node.port)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_unknown_called_ae_is_rejected(node: Node) -> None:
    ae = scu()
    assoc = ae.associate("127.0.0.1", node.port, ae_title="NOBODY")
    assert assoc.is_rejected
    assert not assoc.is_established


def test_calling_ae_not_among_peers_is_rejected(start_node, tmp_path: Path) -> None:
    from config.model import AEEntry, HostEntry

    peers = (HostEntry(ae_title="FRIEND", hostname="127.0.0.1", port=104),)
    node = start_node(
        ae_table=(AEEntry(title="NODE", storage_area=tmp_path / "s", access="RW", peers=peers),)
    )
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(Verification)
    assoc = stranger.associate("127.0.0.1", node.port, ae_title="NODE")
    assert assoc.is_rejected
    friend = AE(ae_title="FRIEND")
    friend.add_requested_context(Verification)
    assoc = friend.associate("127.0.0.1", node.port, ae_title="NODE")
    assert assoc.is_established
    assoc.release()


def test_store_is_durable_and_indexed_with_source_ae(node: Node) -> None:
    ds = make_ct()
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    files = stored_files(node)
    assert len(files) == 1
    stored = dcmread(files[0])
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert stored.file_meta.SourceApplicationEntityTitle == "TESTSCU"
    assert stored.PixelData == ds.PixelData
    assert node.index.counts("NODE") == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
    assert not list(node.stores["NODE"].tmp.iterdir())


def test_store_keeps_received_bytes(node: Node) -> None:
    ds = make_ct()
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
    assoc = associate(ae, node.port)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    stored = dcmread(stored_files(node)[0])
    assert stored.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


def test_same_sop_instance_uid_replaces(node: Node) -> None:
    ds = make_ct(patient_name="FIRST^NAME")
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(ds).Status == 0x0000
    ds.PatientName = "SECOND^NAME"
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    files = stored_files(node)
    assert len(files) == 1
    assert str(dcmread(files[0]).PatientName) == "SECOND^NAME"
    assert node.index.counts("NODE")["instances"] == 1


def test_replace_into_another_study_prunes_the_old_one(node: Node) -> None:
    ds = make_ct()
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(ds).Status == 0x0000
    moved = make_ct(sop_uid=ds.SOPInstanceUID)
    assert assoc.send_c_store(moved).Status == 0x0000
    assoc.release()
    assert node.index.counts("NODE") == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
    assert len(stored_files(node)) == 1


def test_missing_uid_fails_and_leaves_nothing(node: Node) -> None:
    ds = make_ct()
    del ds.StudyInstanceUID
    assoc = associate(scu(storage=True), node.port)
    rsp = assoc.send_c_store(ds)
    assoc.release()
    assert rsp.Status == 0xA900
    assert "StudyInstanceUID" in rsp.ErrorComment
    assert stored_files(node) == []
    assert node.index.counts("NODE")["instances"] == 0


def test_path_traversal_uid_never_becomes_a_path(node: Node, tmp_path: Path) -> None:
    ds = make_ct(study_uid="../../../../tmp/evil")
    assoc = associate(scu(storage=True), node.port)
    rsp = assoc.send_c_store(ds)
    assoc.release()
    # kept (as DCMTK and Orthanc keep odd UIDs), under a digest, never under the value
    assert rsp.Status == 0x0000
    assert not list(tmp_path.rglob("*evil*"))
    [stored] = stored_files(node)
    assert stored.is_relative_to(node.stores["NODE"].area)
    assert node.index.instances("NODE")[0].study_instance_uid == "../../../../tmp/evil"


def test_mismatched_sop_instance_uid_fails(node: Node) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    from pynetdicom.dimse_primitives import C_STORE

    ds = make_ct()
    assoc = associate(scu(storage=True), node.port)
    # send a dataset whose SOPInstanceUID differs from the request's
    req = C_STORE()
    req.MessageID = 7
    req.AffectedSOPClassUID = ds.SOPClassUID
    req.AffectedSOPInstanceUID = "1.2.3.4.5"
    req.Priority = 2
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    from io import BytesIO

    req.DataSet = BytesIO(buffer.getvalue())
    cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == ds.SOPClassUID)
    if cx.transfer_syntax[0] != ImplicitVRLittleEndian:
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        write_dataset(buffer, ds)
        req.DataSet = BytesIO(buffer.getvalue())
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        pass
    assoc.dimse.send_msg(req, cx.context_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    assoc.release()
    assert rsp.Status == 0xA900
    assert stored_files(node) == []


def test_garbage_dataset_fails_with_cannot_understand(node: Node) -> None:
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_STORE

    assoc = associate(scu(storage=True), node.port)
    req = C_STORE()
    req.MessageID = 9
    req.AffectedSOPClassUID = CTImageStorage
    req.AffectedSOPInstanceUID = "1.2.3.4.6"
    req.Priority = 2
    req.DataSet = BytesIO(b"\x08\x00\x16\x00\xff\xff\xff\x7f" + b"garbage" * 3)
    cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == CTImageStorage)
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        pass
    assoc.dimse.send_msg(req, cx.context_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    assoc.release()
    assert rsp.Status in (0xC000, 0xA900)
    assert stored_files(node) == []
    # the node keeps serving
    assoc = associate(scu(), node.port)
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def test_read_only_area_refuses_storage(node: Node) -> None:
    assoc = associate(scu(storage=True), node.port, called="READONLY")
    rsp = assoc.send_c_store(make_ct())
    assoc.release()
    assert rsp.Status == 0x0124
    assert stored_files(node, "READONLY") == []


def test_private_sop_class_is_accepted(node: Node) -> None:
    ds = make_ct()
    ds.SOPClassUID = "1.3.6.1.4.1.9590.100.1.2.999"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = associate(ae, node.port)
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    assert len(stored_files(node)) == 1


def test_quota_max_studies_evicts_oldest(start_node, tmp_path: Path) -> None:
    from config.model import AEEntry, Quota

    node = start_node(
        ae_table=(
            AEEntry(
                title="NODE",
                storage_area=tmp_path / "q",
                access="RW",
                quota=Quota(max_studies=2, max_bytes_per_study=10**6),
            ),
        )
    )
    assoc = associate(scu(storage=True), node.port)
    studies = [make_ct(patient_id=f"P{i}") for i in range(3)]
    for ds in studies:
        assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    kept = {i.study_instance_uid for i in node.index.instances("NODE")}
    assert kept == {studies[1].StudyInstanceUID, studies[2].StudyInstanceUID}
    assert len(stored_files(node)) == 2


def test_quota_bytes_per_study(start_node, tmp_path: Path) -> None:
    from config.model import AEEntry, Quota

    one = len(make_ct(rows=64).PixelData)  # 8 KiB of pixels, plus < 1 KiB of header each
    node = start_node(
        ae_table=(
            AEEntry(
                title="NODE",
                storage_area=tmp_path / "q",
                access="RW",
                quota=Quota(max_studies=10, max_bytes_per_study=int(one * 2.5) + 2000),
            ),
        )
    )
    assoc = associate(scu(storage=True), node.port)
    first = make_ct(rows=64)
    study = first.StudyInstanceUID
    sent = [first] + [make_ct(rows=64, study_uid=study) for _ in range(3)]
    for ds in sent:
        assert assoc.send_c_store(ds).Status == 0x0000
    too_big = make_ct(rows=128, study_uid=study)
    rsp = assoc.send_c_store(too_big)
    assoc.release()
    assert rsp.Status == 0xA700
    kept = {i.sop_instance_uid for i in node.index.instances("NODE")}
    assert sent[-1].SOPInstanceUID in kept
    assert sent[0].SOPInstanceUID not in kept
    assert len(kept) == 2


def test_status_dataset_for_every_ingest_error() -> None:
    from node.services.status import STATUS_FOR
    from storage import ingest, query

    for module, base in ((ingest, ingest.IngestError), (query, query.QueryError)):
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
                assert obj in STATUS_FOR, f"{obj.__name__} has no DIMSE status"
