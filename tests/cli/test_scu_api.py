"""``node.scu`` as a library: keys, identifiers, statuses, association batching."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from node import scu
from tests.cli.conftest import StoreScp


@pytest.mark.parametrize(
    "spec",
    ["0010,0010=DOE*", "10,10=DOE*", "(0010,0010)=DOE*", "00100010=DOE*", "PatientName=DOE*",
     'PatientName="DOE*"'],
)  # fmt: skip
def test_apply_key_forms(spec: str) -> None:
    ds = Dataset()
    scu.apply_key(ds, spec)
    assert str(ds.PatientName) == "DOE*"


def test_apply_key_return_keys_types_and_sequences() -> None:
    ds = Dataset()
    scu.apply_key(ds, "StudyDate")
    scu.apply_key(ds, "0020,0013=")
    scu.apply_key(ds, "Rows=512")
    scu.apply_key(ds, "ReferencedStudySequence[0].ReferencedSOPInstanceUID=1.2.3")
    scu.apply_key(ds, "ProcedureCodeSequence")
    assert ds["StudyDate"].value in ("", None) and ds["InstanceNumber"].value is None
    assert ds.Rows == 512
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == "1.2.3"
    assert len(ds.ProcedureCodeSequence) == 0
    for bad in ("=X", "NoSuchKeyword=1", "PatientName[0].X=1", "ProcedureCodeSequence=X"):
        with pytest.raises(ValueError):
            scu.apply_key(Dataset(), bad)


def test_build_identifier_adds_the_unique_keys_above() -> None:
    ds = scu.build_identifier("IMAGE", "patient", keys=["PatientID=X"])
    assert ds.QueryRetrieveLevel == "IMAGE"
    assert ds.PatientID == "X"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert ds[keyword].value in ("", None)
    study_root = scu.build_identifier("SERIES", "study")
    assert "PatientID" not in study_root and "StudyInstanceUID" in study_root
    with pytest.raises(ValueError):
        scu.build_identifier("PATIENT", "study")


def test_status_categories() -> None:
    assert scu.status_category(0x0000) == "Success"
    assert scu.status_category(0xFF00) == "Pending"
    assert scu.status_category(0xB000) == "Warning"
    assert scu.status_category(0xA801) == "Failure"
    assert scu.status_category(0xA7FF) == "Failure"
    assert scu.status_category(0xFE00) == "Cancel"


def _instance(sop_class: str, syntax: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "BATCH"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.set_original_encoding(syntax == ImplicitVRLittleEndian, True)
    return ds


@pytest.mark.interop
def test_store_splits_beyond_128_contexts_into_few_associations(
    storescp_factory: Callable[..., StoreScp],
) -> None:
    scp = storescp_factory()
    # 70 private classes x 2 contexts each: one association cannot hold them all.
    datasets = [_instance(f"1.2.826.0.1.3680043.9.7777.{i}", ExplicitVRLittleEndian)
                for i in range(70)]  # fmt: skip
    seen: list[int] = []
    report = scu.store(
        scu.Peer(scp.host, scp.port, called_ae=scp.aet),
        datasets,
        on_progress=lambda done, total, outcome: seen.append(done),
    )
    assert report.associations == 2
    assert (report.sent, report.failed, report.skipped) == (70, 0, 0)
    assert seen == list(range(1, 71))
    assert len(scp.files()) == 70


@pytest.mark.interop
def test_typed_errors(storescp_factory: Callable[..., StoreScp]) -> None:
    refusing = storescp_factory(extra_args=["--refuse"])
    with pytest.raises(scu.AssociationRejected) as rejected:
        scu.echo(scu.Peer(refusing.host, refusing.port))
    assert rejected.value.result and rejected.value.source
    scp = storescp_factory()
    report = scu.store(scu.Peer(scp.host, scp.port), [Dataset()])
    assert (report.failed, report.associations) == (1, 0)
    assert report.outcomes[0].error is not None and "SOP Class" in report.outcomes[0].error


@pytest.mark.interop
def test_fast_peer_responses_are_not_lost(storescp_factory: Callable[..., StoreScp]) -> None:
    """Regression: pynetdicom's reactor could take a C-STORE response off the queue.

    With TCP_NODELAY on both ends (the fixture sets it for storescp) about one transfer
    in five used to stall until the DIMSE timeout; see ``node.scu._ReactorGate``.
    """
    scp = storescp_factory()
    datasets = [_instance("1.2.840.10008.5.1.4.1.1.7", ExplicitVRLittleEndian) for _ in range(250)]
    report = scu.store(scu.Peer(scp.host, scp.port, dimse_timeout=10), datasets)
    assert (report.sent, report.associations) == (250, 1)
