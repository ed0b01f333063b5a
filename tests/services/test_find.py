"""C-FIND SCP over real sockets: levels, models, every matching rule, character sets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from node.app import Node
from tests.services.helpers import associate, make_ct, scu


@pytest.fixture(scope="module")
def module_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    from tests.conftest import _free_port
    from tests.services.conftest import make_settings

    node = Node(make_settings(tmp_path_factory.mktemp("find"), _free_port()))
    node.start()
    yield node
    node.stop(grace=1.0)


@pytest.fixture(scope="module")
def loaded(module_node: Node) -> tuple[Node, dict[str, Dataset]]:
    from pydicom.uid import generate_uid

    node = module_node

    study_a, study_b, study_c = generate_uid(), generate_uid(), generate_uid()
    series_a1, series_a2 = generate_uid(), generate_uid()
    items = {
        "a1": make_ct(
            "PID1", "DOE^JOHN", study_a, series_a1, study_date="20240102", study_time="101500"
        ),
        "a2": make_ct(
            "PID1", "DOE^JOHN", study_a, series_a1, study_date="20240102", study_time="101500"
        ),
        "a3": make_ct(
            "PID1",
            "DOE^JOHN",
            study_a,
            series_a2,
            modality="MR",
            study_date="20240102",
            study_time="101500",
        ),
        "b1": make_ct("PID2", "SMITH^JANE", study_b, study_date="20231231", study_time="235959"),
        "c1": make_ct(
            "PID3",
            "Müller^Jérôme",
            study_c,
            charset="ISO_IR 100",
            study_date="20240315",
            study_time="080000",
        ),
    }
    items["a2"].InstanceNumber = 2
    items["b1"].AccessionNumber = "A%B_C"
    assoc = associate(scu(storage=True), node.port)
    for ds in items.values():
        assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    return node, items


def find(
    node: Node,
    query: Dataset,
    model=PatientRootQueryRetrieveInformationModelFind,
    called: str = "NODE",
) -> tuple[list[Dataset], int]:
    assoc = associate(scu(qr=True), node.port, called=called)
    results, final = [], None
    for status, identifier in assoc.send_c_find(query, model):
        if status.Status in (0xFF00, 0xFF01):
            results.append(identifier)
        else:
            final = status.Status
    assoc.release()
    return results, final


def q(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return ds


def test_patient_level_wildcard(loaded) -> None:
    node, _ = loaded
    results, final = find(node, q("PATIENT", PatientName="DOE*", PatientID=""))
    assert final == 0
    assert [r.PatientID for r in results] == ["PID1"]


def test_pn_matching_ignores_case(loaded) -> None:
    node, _ = loaded
    results, _ = find(node, q("PATIENT", PatientName="doe^john", PatientID=""))
    assert [r.PatientID for r in results] == ["PID1"]
    results, _ = find(node, q("PATIENT", PatientName="sm?th*", PatientID=""))
    assert [r.PatientID for r in results] == ["PID2"]


def test_universal_match_returns_every_study_with_all_keys(loaded) -> None:
    node, _ = loaded
    results, final = find(
        node,
        q(
            "STUDY",
            StudyInstanceUID="",
            PatientName="",
            StudyDate="",
            ModalitiesInStudy="",
            NumberOfStudyRelatedInstances="",
            NumberOfStudyRelatedSeries="",
            StudyComments="",
        ),
        StudyRootQueryRetrieveInformationModelFind,
    )
    assert final == 0
    assert len(results) == 3
    by_pid = {str(r.PatientName): r for r in results}
    doe = by_pid["DOE^JOHN"]
    assert list(doe.ModalitiesInStudy) == ["CT", "MR"]
    assert doe.NumberOfStudyRelatedInstances == 3
    assert doe.NumberOfStudyRelatedSeries == 2
    assert "StudyComments" in doe and doe.StudyComments in ("", None)


def test_date_ranges(loaded) -> None:
    node, items = loaded
    model = StudyRootQueryRetrieveInformationModelFind
    got = lambda value: sorted(  # noqa: E731
        r.StudyDate for r in find(node, q("STUDY", StudyDate=value, StudyInstanceUID=""), model)[0]
    )
    assert got("20240101-20240201") == ["20240102"]
    assert got("20240101-") == ["20240102", "20240315"]
    assert got("-20240101") == ["20231231"]
    assert got("20231231") == ["20231231"]


def test_combined_date_time_range(loaded) -> None:
    node, _ = loaded
    results, _ = find(
        node,
        q("STUDY", StudyDate="20231231-20240102", StudyTime="120000-100000", StudyInstanceUID=""),
        StudyRootQueryRetrieveInformationModelFind,
    )
    # 20231231 23:59:59 is after 20231231 12:00; 20240102 10:15 is after 20240102 10:00
    assert [r.StudyDate for r in results] == ["20231231"]


def test_time_range(loaded) -> None:
    node, _ = loaded
    results, _ = find(
        node,
        q("STUDY", StudyTime="0700-0900", StudyInstanceUID=""),
        StudyRootQueryRetrieveInformationModelFind,
    )
    assert [r.StudyTime for r in results] == ["080000"]


def test_uid_list(loaded) -> None:
    node, items = loaded
    wanted = [items["a1"].StudyInstanceUID, items["b1"].StudyInstanceUID]
    results, _ = find(
        node, q("STUDY", StudyInstanceUID=wanted), StudyRootQueryRetrieveInformationModelFind
    )
    assert sorted(r.StudyInstanceUID for r in results) == sorted(wanted)


def test_series_and_image_levels_hierarchical(loaded) -> None:
    node, items = loaded
    study = items["a1"].StudyInstanceUID
    series, _ = find(
        node,
        q(
            "SERIES",
            PatientID="PID1",
            StudyInstanceUID=study,
            SeriesInstanceUID="",
            Modality="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    assert sorted((s.Modality, s.NumberOfSeriesRelatedInstances) for s in series) == [
        ("CT", 2),
        ("MR", 1),
    ]
    images, _ = find(
        node,
        q(
            "IMAGE",
            PatientID="PID1",
            StudyInstanceUID=study,
            SeriesInstanceUID=items["a1"].SeriesInstanceUID,
            SOPInstanceUID="",
            InstanceNumber="",
        ),
    )
    assert sorted(str(i.InstanceNumber) for i in images) == ["1", "2"]


def test_relational_image_query_without_upper_keys(loaded) -> None:
    """gdcmscu --find --image --key 8,18=... sends no study or series UID."""
    node, items = loaded
    uid = items["b1"].SOPInstanceUID
    images, final = find(
        node,
        q("IMAGE", SOPInstanceUID=uid, PatientName=""),
        StudyRootQueryRetrieveInformationModelFind,
    )
    assert final == 0
    assert [i.SOPInstanceUID for i in images] == [uid]
    assert str(images[0].PatientName) == "SMITH^JANE"


def test_percent_and_underscore_are_literal(loaded) -> None:
    node, _ = loaded
    model = StudyRootQueryRetrieveInformationModelFind
    hits, _ = find(node, q("STUDY", AccessionNumber="A%B_C", StudyInstanceUID=""), model)
    assert len(hits) == 1
    misses, _ = find(node, q("STUDY", AccessionNumber="A%", StudyInstanceUID=""), model)
    assert misses == []
    wild, _ = find(node, q("STUDY", AccessionNumber="A%*", StudyInstanceUID=""), model)
    assert len(wild) == 1


def test_sql_metacharacters_are_harmless(loaded) -> None:
    node, _ = loaded
    results, final = find(node, q("PATIENT", PatientID="x' OR '1'='1", PatientName=""))
    assert final == 0 and results == []


def test_non_indexed_key_is_matched(loaded) -> None:
    node, _ = loaded
    results, _ = find(node, q("PATIENT", PatientBirthDate="19700101", PatientSex="M", PatientID=""))
    assert len(results) == 3
    results, _ = find(
        node,
        q("IMAGE", ImageType="AXIAL", SOPInstanceUID="", StudyInstanceUID=""),
        StudyRootQueryRetrieveInformationModelFind,
    )
    assert len(results) == 5


def test_sequence_matching(start_node) -> None:
    node = start_node()
    ds = make_ct()
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodingSchemeDesignator = "SRT"
    ds.AnatomicRegionSequence = [item]
    other = make_ct()
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(ds).Status == 0
    assert assoc.send_c_store(other).Status == 0
    assoc.release()
    query = q("IMAGE", SOPInstanceUID="", StudyInstanceUID="")
    wanted = Dataset()
    wanted.CodeValue = "T-D3000"
    query.AnatomicRegionSequence = [wanted]
    results, _ = find(node, query, StudyRootQueryRetrieveInformationModelFind)
    assert [r.SOPInstanceUID for r in results] == [ds.SOPInstanceUID]
    assert results[0].AnatomicRegionSequence[0].CodeValue == "T-D3000"


def test_utf8_query_finds_latin1_patient_and_reply_is_encoded(loaded) -> None:
    node, _ = loaded
    query = q("PATIENT", PatientName="*Jérôme*", PatientID="")
    query.SpecificCharacterSet = "ISO_IR 192"
    results, final = find(node, query)
    assert final == 0
    assert [r.PatientID for r in results] == ["PID3"]
    assert str(results[0].PatientName) == "Müller^Jérôme"
    assert results[0].SpecificCharacterSet in ("ISO_IR 192", "ISO_IR 100")


def test_bad_level_is_refused(loaded) -> None:
    node, _ = loaded
    results, final = find(node, q("NONSENSE", PatientID=""))
    assert results == [] and final == 0xA900
    _, final = find(node, q("PATIENT", PatientID=""), StudyRootQueryRetrieveInformationModelFind)
    assert final == 0xA900


def test_records_are_per_ae(loaded) -> None:
    node, _ = loaded
    results, final = find(node, q("PATIENT", PatientID=""), called="READONLY")
    assert final == 0 and results == []
