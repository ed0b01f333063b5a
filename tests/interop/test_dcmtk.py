"""DCMTK clients against the node: echoscu, storescu, findscu, movescu (into storescp), getscu."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from bench.clients import STORESCU_FLAG  # one table for the tests and the bench
from config.model import AEEntry, HostEntry
from tests.interop.conftest import dataset_bytes, run
from tests.services.helpers import make_ct

pytestmark = pytest.mark.interop


SYNTAXES = list(STORESCU_FLAG)


@pytest.fixture
def sample_dir(tmp_path: Path, corpus_dir: Path, corpus_manifest: list[dict[str, str]]) -> Path:
    """Symlinks to two readable corpus files of each transfer syntax (distinct SOP UIDs)."""
    folder = tmp_path / "sample"
    folder.mkdir()
    seen: set[str] = set()
    for syntax in SYNTAXES:
        rows = [
            r
            for r in corpus_manifest
            if r["TransferSyntaxUID"] == syntax
            and r["read_status"] == "ok"
            and not r["notes"]
            and r["SOPClassUID"]
            and r["SOPInstanceUID"]
            and r["SOPInstanceUID"] not in seen
        ][:2]
        for i, row in enumerate(rows):
            seen.add(row["SOPInstanceUID"])
            (folder / f"{syntax}_{i}.dcm").symlink_to(corpus_dir / row["path"])
    return folder


def test_echoscu(interop_node, require_binary) -> None:
    node = interop_node()
    run([require_binary("echoscu"), "-aec", "NODE", "127.0.0.1", str(node.port)])


def test_echoscu_unknown_called_ae_rejected(interop_node, require_binary) -> None:
    node = interop_node()
    proc = run([require_binary("echoscu"), "-aec", "WHO", "127.0.0.1", str(node.port)], check=False)
    assert proc.returncode != 0
    assert "Called AE Title Not Recognized" in proc.stderr + proc.stdout


def test_echoscu_peer_not_in_aetable_rejected(interop_node, require_binary, tmp_path) -> None:
    peers = (HostEntry(ae_title="FRIEND", hostname="localhost", port=104),)
    node = interop_node(ae_table=(AEEntry(title="NODE", storage_area=tmp_path / "a", peers=peers),))
    echoscu = require_binary("echoscu")
    proc = run(
        [echoscu, "-aet", "STRANGER", "-aec", "NODE", "127.0.0.1", str(node.port)], check=False
    )
    assert proc.returncode != 0
    assert "Calling AE Title Not Recognized" in proc.stderr + proc.stdout
    run([echoscu, "-aet", "FRIEND", "-aec", "NODE", "127.0.0.1", str(node.port)])


def test_storescu_many_syntaxes_kept_byte_identical(
    interop_node, require_binary, sample_dir: Path, storescp
) -> None:
    """What storescu sends is what we keep, byte for byte, as DCMTK's storescp +B keeps it.

    storescu re-encodes some odd files while sending, so the reference is not the corpus
    file but what a bit-preserving storescp receives from the same storescu command.
    """
    node = interop_node()
    reference = storescp("+B", "+xa")
    storescu = require_binary("storescu")
    for syntax, flag in STORESCU_FLAG.items():
        files = [str(p) for p in sorted(sample_dir.glob(f"{syntax}_*"))]
        for port, called in ((node.port, "NODE"), (reference.port, "DEST")):
            if files:
                run([storescu, "-aec", called, "-R", flag, "127.0.0.1", str(port), *files])
    expected = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in reference.files()}
    stored = {i.sop_instance_uid: i for i in node.index.instances("NODE")}
    assert len(expected) == len(list(sample_dir.iterdir()))
    assert set(stored) == set(expected)
    for uid, received in expected.items():
        kept = node.stores["NODE"].absolute(stored[uid].path)
        assert dataset_bytes(kept) == dataset_bytes(received), received.name
        assert (
            dcmread(kept, stop_before_pixels=True).file_meta.TransferSyntaxUID
            == dcmread(received, stop_before_pixels=True).file_meta.TransferSyntaxUID
        )


@pytest.fixture
def loaded_node(interop_node, require_binary, tmp_path: Path):
    """A node holding two studies of two patients, stored with storescu."""
    folder = tmp_path / "studies"
    folder.mkdir()
    a = make_ct("PAT1", "DOE^JOHN", study_date="20240102")
    a2 = make_ct(
        "PAT1",
        "DOE^JOHN",
        study_uid=a.StudyInstanceUID,
        series_uid=a.SeriesInstanceUID,
        study_date="20240102",
    )
    b = make_ct("PAT2", "ROE^JANE", study_date="20230506", modality="MR")
    for i, ds in enumerate((a, a2, b)):
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)
    return folder, (a, a2, b)


def _find(binary: str, port: int, *args: str) -> str:
    proc = run([binary, "-aec", "NODE", *args, "127.0.0.1", str(port)])
    return proc.stdout + proc.stderr


def test_findscu_patient_and_study_root_every_level(
    interop_node, require_binary, loaded_node
) -> None:
    folder, (a, a2, b) = loaded_node
    node = interop_node()
    run(
        [
            require_binary("storescu"),
            "-aec",
            "NODE",
            "+sd",
            "127.0.0.1",
            str(node.port),
            str(folder),
        ]
    )
    findscu = require_binary("findscu")
    out = _find(
        findscu,
        node.port,
        "-P",
        "-k",
        "QueryRetrieveLevel=PATIENT",
        "-k",
        "PatientName=DOE*",
        "-k",
        "PatientID",
    )
    assert "PAT1" in out and "PAT2" not in out
    out = _find(
        findscu,
        node.port,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "StudyDate=20240101-",
        "-k",
        "StudyInstanceUID",
        "-k",
        "PatientName",
    )
    assert a.StudyInstanceUID in out and b.StudyInstanceUID not in out
    uids = f"{a.StudyInstanceUID}\\{b.StudyInstanceUID}"
    out = _find(
        findscu,
        node.port,
        "-S",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={uids}",
        "-k",
        "ModalitiesInStudy",
    )
    assert a.StudyInstanceUID in out and b.StudyInstanceUID in out
    out = _find(
        findscu,
        node.port,
        "-S",
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={a.StudyInstanceUID}",
        "-k",
        "SeriesInstanceUID",
        "-k",
        "Modality=C?",
    )
    assert a.SeriesInstanceUID in out
    out = _find(
        findscu,
        node.port,
        "-P",
        "-k",
        "QueryRetrieveLevel=IMAGE",
        "-k",
        "PatientID=PAT1",
        "-k",
        f"StudyInstanceUID={a.StudyInstanceUID}",
        "-k",
        f"SeriesInstanceUID={a.SeriesInstanceUID}",
        "-k",
        "SOPInstanceUID",
    )
    assert a.SOPInstanceUID in out and a2.SOPInstanceUID in out


def test_movescu_into_storescp_byte_identical(
    interop_node, require_binary, loaded_node, storescp
) -> None:
    folder, (a, a2, b) = loaded_node
    dest = storescp()
    node = interop_node(
        hosts={"dest": (HostEntry(ae_title="DEST", hostname="127.0.0.1", port=dest.port),)}
    )
    run(
        [
            require_binary("storescu"),
            "-aec",
            "NODE",
            "+sd",
            "127.0.0.1",
            str(node.port),
            str(folder),
        ]
    )
    run(
        [
            require_binary("movescu"),
            "-aec",
            "NODE",
            "-aem",
            "DEST",
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={a.StudyInstanceUID}",
            "127.0.0.1",
            str(node.port),
        ]
    )
    received = dest.files()
    assert len(received) == 2
    originals = {dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    for path in received:
        uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(path) == dataset_bytes(originals[uid])


def test_movescu_unknown_destination_fails_clearly(
    interop_node, require_binary, loaded_node
) -> None:
    folder, (a, _a2, _b) = loaded_node
    node = interop_node()
    run(
        [
            require_binary("storescu"),
            "-aec",
            "NODE",
            "+sd",
            "127.0.0.1",
            str(node.port),
            str(folder),
        ]
    )
    proc = run(
        [
            require_binary("movescu"),
            "-aec",
            "NODE",
            "-aem",
            "NOWHERE",
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={a.StudyInstanceUID}",
            "127.0.0.1",
            str(node.port),
        ],
        check=False,
    )
    assert proc.returncode != 0
    assert "MoveDestinationUnknown" in proc.stdout + proc.stderr


def test_move_transcodes_for_a_destination_accepting_only_uncompressed(
    interop_node, require_binary, storescp, corpus_dir, corpus_manifest
) -> None:
    row = next(
        r
        for r in corpus_manifest
        if r["TransferSyntaxUID"] == "1.2.840.10008.1.2.4.50"
        and r["pixel_decode_pydicom"].startswith("ok")
        and r["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2"
    )
    dest = storescp()  # storescp's default: uncompressed syntaxes only
    node = interop_node(
        hosts={"dest": (HostEntry(ae_title="DEST", hostname="127.0.0.1", port=dest.port),)}
    )
    run(
        [
            require_binary("storescu"),
            "-aec",
            "NODE",
            "-R",
            "-xy",
            "127.0.0.1",
            str(node.port),
            str(corpus_dir / row["path"]),
        ]
    )
    run(
        [
            require_binary("movescu"),
            "-aec",
            "NODE",
            "-aem",
            "DEST",
            "-S",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={row['StudyInstanceUID']}",
            "127.0.0.1",
            str(node.port),
        ]
    )
    [received] = dest.files()
    ds = dcmread(received)
    assert not ds.file_meta.TransferSyntaxUID.is_compressed
    original = dcmread(corpus_dir / row["path"])
    assert ds.pixel_array.shape == original.pixel_array.shape


def test_getscu_study(interop_node, require_binary, loaded_node, tmp_path) -> None:
    folder, (a, a2, _b) = loaded_node
    node = interop_node()
    run(
        [
            require_binary("storescu"),
            "-aec",
            "NODE",
            "+sd",
            "127.0.0.1",
            str(node.port),
            str(folder),
        ]
    )
    out = tmp_path / "got"
    out.mkdir()
    run(
        [
            require_binary("getscu"),
            "-aec",
            "NODE",
            "-S",
            "-od",
            str(out),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={a.StudyInstanceUID}",
            "127.0.0.1",
            str(node.port),
        ]
    )
    got = sorted(out.iterdir())
    assert len(got) == 2
    originals = {dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    for path in got:
        uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(path) == dataset_bytes(originals[uid])
