"""The same node on PostgreSQL: store, find, get over real sockets."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from tests.services.helpers import associate, make_ct, scu

pytestmark = pytest.mark.postgres


def test_store_and_find_on_postgresql(start_node, postgres_url: str) -> None:
    node = start_node(database_url=postgres_url)
    first = make_ct("PG1", "POSTGRES^PAT")
    again = make_ct("PG1", "POSTGRES^PAT", study_uid=first.StudyInstanceUID)
    assoc = associate(scu(storage=True, qr=True), node.port)
    assert assoc.send_c_store(first).Status == 0
    assert assoc.send_c_store(again).Status == 0
    assert assoc.send_c_store(first).Status == 0  # replace
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "postgres*"
    query.StudyInstanceUID = ""
    query.NumberOfStudyRelatedInstances = ""
    results = [
        identifier
        for status, identifier in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind
        )
        if status.Status == 0xFF00
    ]
    assoc.release()
    assert [r.StudyInstanceUID for r in results] == [first.StudyInstanceUID]
    assert results[0].NumberOfStudyRelatedInstances == 2
