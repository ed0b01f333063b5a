"""Parsing identifiers and the matching rules, without a database."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from storage.query import InvalidIdentifierError, parse_identifier


def parse(level: str = "STUDY", **keys: object):
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in keys.items():
        setattr(ds, key, value)
    return parse_identifier(ds)


def constraint(**keys: object):
    [c] = parse(**keys).constraints
    return c


def pn(value: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": value}]}


def da(value: str) -> dict:
    return {"vr": "DA", "Value": [value]}


def test_universal_keys_make_no_constraint() -> None:
    assert parse(PatientName="", StudyDate="", StudyInstanceUID="").constraints == []
    assert parse(PatientName="*").constraints == []


def test_wildcards() -> None:
    c = constraint(PatientName="DO?^J*")
    assert c.kind == "wildcard"
    assert c.matches(pn("Doe^John")) and c.matches(pn("DOE^JANE"))
    assert not c.matches(pn("DOES^JOHN"))


def test_pn_single_value_ignores_case_and_ideographic_groups() -> None:
    c = constraint(PatientName="yamada^tarou")
    assert c.matches(
        {"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}]}
    )


def test_percent_underscore_literal() -> None:
    c = constraint(AccessionNumber="A_1%")
    assert c.kind == "single"
    assert c.matches({"vr": "SH", "Value": ["A_1%"]})
    assert not c.matches({"vr": "SH", "Value": ["AB1X"]})


@pytest.mark.parametrize(
    "value, inside, outside",
    [
        ("20240101-20240131", "20240115", "20240201"),
        ("20240101-", "20991231", "20231231"),
        ("-20240101", "19000101", "20240102"),
    ],
)
def test_date_ranges(value: str, inside: str, outside: str) -> None:
    c = constraint(StudyDate=value)
    assert c.kind == "range"
    assert c.matches(da(inside)) and not c.matches(da(outside))


def test_time_range_pads_partial_times() -> None:
    c = constraint(StudyTime="10-1030")
    assert c.matches({"vr": "TM", "Value": ["100000"]})
    assert c.matches({"vr": "TM", "Value": ["103059.5"]})
    assert not c.matches({"vr": "TM", "Value": ["103100"]})


def test_bad_date_range_is_an_invalid_identifier() -> None:
    with pytest.raises(InvalidIdentifierError):
        parse(StudyDate="2024-01-01")


def test_multi_valued_stored_attribute_matches_any_value() -> None:
    c = constraint(level="IMAGE", ImageType="AXIAL")
    assert c.matches({"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]})


def test_keys_below_the_level_are_not_matched() -> None:
    assert parse("STUDY", SOPInstanceUID="1.2.3").constraints == []
