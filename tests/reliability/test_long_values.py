"""Very long values and injection attempts, on SQLite and on PostgreSQL.

C-FIND keys of 64 KiB and 1 MB, UIDs of 10,000 characters, UID lists of thousands of
items, SQL metacharacters; C-STORE of instances whose indexed values are far longer than
their columns.  The node answers a proper status, keeps serving, stores over-long values
byte-exact in the file (the index columns hold a cut form, ``storage.header.index_value``)
and leaves nothing partial.  PostgreSQL's VARCHAR(n) refuses what SQLite keeps, so every
test runs on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from node.app import Node
from storage.header import index_value
from storage.integrity import check
from storage.models import Patient, Study
from tests.conftest import postgres_schema_url
from tests.reliability import rawdicom
from tests.services.conftest import make_settings
from tests.services.helpers import associate, make_ct, scu

KIB = 1024


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_node(
    request: pytest.FixtureRequest, tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Node]:
    """A node on SQLite (the default) or on a fresh PostgreSQL schema."""
    urls, overrides = None, {}
    if request.param == "postgres":
        urls = postgres_schema_url()
        overrides["database_url"] = next(urls)
    node = Node(make_settings(tmp_path, free_port(), **overrides))
    node.start()
    try:
        yield node
    finally:
        node.stop(grace=1.0)
        if urls is not None:
            next(urls, None)  # drops the schema


def find(node: Node, identifier: Dataset, model: str = StudyRootQueryRetrieveInformationModelFind):
    """(final status dataset, matches) of one C-FIND."""
    assoc = associate(scu(qr=True), node.port)
    try:
        matches, final = [], None
        for status, ds in assoc.send_c_find(identifier, model):
            assert status is not None, "no C-FIND response (association aborted?)"
            if status.Status in (0xFF00, 0xFF01):
                matches.append(ds)
            else:
                final = status
        return final, matches
    finally:
        assoc.release()


def store(node: Node, ds: Dataset) -> Dataset:
    assoc = associate(scu(storage=True), node.port)
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


def assert_healthy(node: Node) -> None:
    """Still serving, index and files agree, nothing partial in the store's temp folder."""
    assoc = associate(scu(), node.port)
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    report = check(node.index, node.stores)
    assert report.ok, report.summary()
    assert list(node.stores["NODE"].tmp.iterdir()) == []


def study_query(**keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.PatientName = ""
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


# -- C-FIND ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param({"PatientName": "D" * (64 * KIB)}, id="PatientName-64KiB"),
        pytest.param({"PatientName": "D*" * (32 * KIB)}, id="PatientName-64KiB-wildcards"),
        pytest.param({"StudyDescription": "X" * (1024 * KIB)}, id="StudyDescription-1MB"),
        pytest.param({"AccessionNumber": "A" * (1024 * KIB)}, id="AccessionNumber-1MB"),
        pytest.param({"StudyInstanceUID": "1." * 5000}, id="StudyInstanceUID-10000"),
        pytest.param({"PatientID": "P" * (64 * KIB)}, id="PatientID-64KiB"),
    ],
)
def test_find_with_very_long_values_answers_and_keeps_serving(
    db_node: Node, keys: dict[str, str]
) -> None:
    assert store(db_node, make_ct()).Status == 0
    final, matches = find(db_node, study_query(**keys))
    assert final is not None
    assert matches == []
    # Success with no match (nothing stored is that long), or a refusal that says why
    assert final.Status == 0x0000 or (
        final.Status in (0xA900, 0xC000) and final.get("ErrorComment")
    ), final
    assert_healthy(db_node)


def test_find_with_thousands_of_uids_in_a_list(db_node: Node) -> None:
    stored = [make_ct(patient_id=f"P{i}") for i in range(3)]
    for ds in stored:
        assert store(db_node, ds).Status == 0
    wanted = [f"1.2.826.0.1.3680043.10.999.{i}" for i in range(5000)]
    wanted[1234] = stored[1].StudyInstanceUID
    wanted[4321] = stored[2].StudyInstanceUID
    final, matches = find(db_node, study_query(StudyInstanceUID=wanted))
    assert final is not None and final.Status == 0x0000, final
    assert {m.StudyInstanceUID for m in matches} == {
        stored[1].StudyInstanceUID,
        stored[2].StudyInstanceUID,
    }
    assert_healthy(db_node)


INJECTIONS = [
    "O'BRIEN^JOHN",
    "'; DROP TABLE patients; --",
    '" OR 1=1 --',
    "'%_'",
    "x' UNION SELECT * FROM instances --",
]


def test_sql_metacharacters_are_plain_values(db_node: Node) -> None:
    for i, name in enumerate(INJECTIONS):
        assert store(db_node, make_ct(patient_id=f"INJ{i}", patient_name=name)).Status == 0
    for name in INJECTIONS:
        final, matches = find(db_node, study_query(PatientName=name))
        assert final is not None and final.Status == 0
        assert [m.PatientName for m in matches] == [name], name
    final, matches = find(db_node, study_query(PatientName="*DROP*"))
    assert [m.PatientName for m in matches] == [INJECTIONS[1]]
    assert db_node.index.counts("NODE")["patients"] == len(INJECTIONS)
    assert_healthy(db_node)


# -- C-STORE -----------------------------------------------------------------------------


def long_instance(**overrides: str) -> Dataset:
    ds = make_ct()
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return ds


LONG_VALUES = {
    "StudyDescription": "D" * (100 * KIB),
    "SeriesDescription": "S" * (10 * KIB),
    "PatientID": "P" * 100,
    "IssuerOfPatientID": "I" * 100,
    "PatientName": "LONG^" + "N" * 1000,
    "AccessionNumber": "A" * 200,
    "ReferringPhysicianName": "R" * 500,
    "StudyID": "S" * 40,
    "Modality": "M" * 40,
    "PatientSex": "X" * 40,
    "StudyTime": "1" * 40,
}


def test_store_with_overlong_indexed_values_keeps_them_in_the_file(db_node: Node) -> None:
    ds = long_instance(**LONG_VALUES)
    ds.InstanceNumber = "1" * 40
    ds.SeriesNumber = "2" * 40
    rsp = store(db_node, ds)
    assert rsp.Status == 0x0000, rsp
    (instance,) = db_node.index.instances("NODE")
    stored = dcmread(db_node.stores["NODE"].absolute(instance.path))
    for keyword, value in LONG_VALUES.items():
        assert str(stored[keyword].value) == value, keyword
    for keyword, digits in (("InstanceNumber", b"1" * 40), ("SeriesNumber", b"2" * 40)):
        assert stored.get_item(keyword).value == digits, keyword  # as sent, not as a number

    # C-FIND returns the whole value (from the index's attributes, not the cut column)
    final, matches = find(
        db_node, study_query(StudyDescription="", PatientID="", AccessionNumber="")
    )
    assert final is not None and final.Status == 0
    (match,) = matches
    assert match.StudyDescription == LONG_VALUES["StudyDescription"]
    assert match.PatientID == LONG_VALUES["PatientID"]
    assert match.AccessionNumber == LONG_VALUES["AccessionNumber"]
    # wildcard on a prefix that fits the column
    final, matches = find(db_node, study_query(StudyDescription="DDDD*"))
    assert len(matches) == 1
    assert_healthy(db_node)


def test_overlong_patient_ids_sharing_a_prefix_stay_two_patients(db_node: Node) -> None:
    first, second = "P" * 80 + "1", "P" * 80 + "2"
    assert store(db_node, make_ct(patient_id=first, patient_name="FIRST")).Status == 0
    assert store(db_node, make_ct(patient_id=second, patient_name="SECOND")).Status == 0
    assert db_node.index.counts("NODE")["patients"] == 2
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = ""
    query.PatientName = ""
    final, matches = find(db_node, query, PatientRootQueryRetrieveInformationModelFind)
    assert sorted((m.PatientID, m.PatientName) for m in matches) == [
        (first, "FIRST"),
        (second, "SECOND"),
    ]
    assert_healthy(db_node)


def test_find_by_the_exact_overlong_value(db_node: Node) -> None:
    patient_id = "P" * 80 + "1"
    description = "D" * 100
    assert (
        store(db_node, long_instance(PatientID=patient_id, StudyDescription=description)).Status
        == 0
    )
    _, by_id = find(db_node, study_query(PatientID=patient_id))
    _, by_description = find(db_node, study_query(StudyDescription=description))
    assert len(by_id) == 1 and len(by_description) == 1


def test_text_with_nul_and_control_characters_is_stored(db_node: Node) -> None:
    ds = make_ct(patient_id="NUL\0ID", patient_name="NUL\0NAME")
    ds.StudyDescription = "tab\there\x00and\x1b[31m escape"
    rsp = store(db_node, ds)
    assert rsp.Status == 0x0000, rsp
    assert_healthy(db_node)


def raw_store(node: Node, ds: Dataset, command_uid: str) -> rawdicom.Reply:
    """A C-STORE on a raw association (pynetdicom's SCU refuses to send bad UIDs)."""
    if hasattr(ds, "file_meta"):
        del ds.file_meta
    assoc = rawdicom.RawAssociation(node.port)
    try:
        assoc.send(rawdicom.p_data(rawdicom.pdv(3, 3, rawdicom.store_rq(command_uid))))
        for fragment in rawdicom.fragments(3, 0, rawdicom.encode(ds)):
            assoc.send(fragment)
        return assoc.reply()
    finally:
        assoc.release()


BAD_UIDS = [
    pytest.param("1." * 33, id="66-chars"),
    pytest.param("1." * 5000, id="10000-chars"),
    pytest.param("1.2.3\x00\x01", id="control-chars"),
]


@pytest.mark.parametrize("uid", BAD_UIDS)
def test_store_of_a_dataset_with_an_impossible_uid_is_refused(db_node: Node, uid: str) -> None:
    """A SOP Instance UID that cannot be one: 0xA900 with an Error Comment, nothing kept."""
    reply = raw_store(db_node, make_ct(sop_uid=uid), command_uid="1.2.826.0.1.3680043.10.999.5")
    assert reply.status == 0xA900
    assert "UID" in str(reply.command.get("ErrorComment", ""))
    assert db_node.index.instances("NODE") == []
    assert_healthy(db_node)


@pytest.mark.parametrize("uid", BAD_UIDS)
def test_store_request_with_an_impossible_uid_gets_no_success(db_node: Node, uid: str) -> None:
    """The same UID in the C-STORE-RQ itself: pynetdicom cannot decode the command when
    the UID is over 64 characters and aborts the association; either way nothing is kept."""
    try:
        status = raw_store(db_node, make_ct(sop_uid=uid), command_uid=uid).status
    except rawdicom.Closed:
        status = None
    assert status in (None, 0xA900)
    assert db_node.index.instances("NODE") == []
    assert_healthy(db_node)


def test_store_with_traversal_uids_stays_inside_the_area(db_node: Node, tmp_path: Path) -> None:
    ds = make_ct(study_uid="../../x", series_uid="..", sop_uid="../../../etc/passwd")
    assert raw_store(db_node, ds, ds.SOPInstanceUID).status == 0x0000
    (instance,) = db_node.index.instances("NODE")
    area = db_node.stores["NODE"].area
    assert area in db_node.stores["NODE"].absolute(instance.path).parents
    assert ".." not in instance.path
    assert_healthy(db_node)


# -- the indexed form --------------------------------------------------------------------


def test_index_value_fits_the_column_and_keeps_keys_apart() -> None:
    assert index_value(Study.study_description, "CHEST") == "CHEST"
    assert index_value(Study.study_description, "D" * 100) == "D" * 64
    one, two = (
        index_value(Patient.patient_id, "P" * 80 + "1"),
        index_value(Patient.patient_id, "P" * 80 + "2"),
    )
    assert len(one) == len(two) == 64 and one != two
    assert one.startswith("P" * 47 + "~")
    assert index_value(Patient.patient_id, "P" * 64) == "P" * 64
    assert index_value(Patient.patient_id, "A\0B") == "AB"
    assert index_value(Patient.patient_name, "\udcff") == "?"
