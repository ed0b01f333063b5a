"""Dumb mode: the edits gdcmanon --dumb offers, and the Type 1 guard."""

from __future__ import annotations

import pytest

from node.tools.anonymize import (
    DumbEdit,
    EditKind,
    OptionError,
    Type1AttributeError,
    apply_edits,
    parse_edit,
)
from tests.tools.test_anonymize_actions import make_ct


def test_parse_edit_forms() -> None:
    assert parse_edit(EditKind.EMPTY, "0010,0010") == DumbEdit(EditKind.EMPTY, 0x00100010)
    assert parse_edit(EditKind.REMOVE, "0009,01,ACME PRIVATE") == DumbEdit(
        EditKind.REMOVE, 0x00090001, "ACME PRIVATE"
    )
    assert parse_edit(EditKind.REPLACE, "0010,0010=Roe^Jane").value == "Roe^Jane"
    assert parse_edit(EditKind.REPLACE, "0010,0010,Roe^Jane").value == "Roe^Jane"
    assert parse_edit(EditKind.REPLACE, "0010,1030=70.5").tag == 0x00101030
    for kind, text in (
        (EditKind.EMPTY, "0010"),
        (EditKind.EMPTY, "00x0,0010"),
        (EditKind.REPLACE, "0010,0010"),
        (EditKind.REMOVE, "0010,0010,CREATOR"),  # a creator needs an odd group
        (EditKind.REPLACE, "0009,1001,value"),  # ambiguous for a private tag
    ):
        with pytest.raises(OptionError):
            parse_edit(kind, text)


def test_apply_edits() -> None:
    ds = make_ct()
    edits = [
        parse_edit(EditKind.EMPTY, "0010,0010"),
        parse_edit(EditKind.REMOVE, "0008,1030"),
        parse_edit(EditKind.REPLACE, "0010,0020=NEW-ID"),
        parse_edit(EditKind.REPLACE, "0010,1030=70.5"),  # absent: added with its VR
        parse_edit(EditKind.REPLACE, "0028,0010=8"),  # US: typed
        parse_edit(EditKind.REMOVE, "0009,01,ACME PRIVATE"),
        parse_edit(EditKind.REMOVE, "0011,01,NOBODY"),
    ]
    notes = apply_edits(ds, edits)
    assert ds.PatientName == "" and "StudyDescription" not in ds
    assert ds.PatientID == "NEW-ID" and ds.PatientWeight == 70.5 and ds.Rows == 8
    assert 0x00091001 not in ds and 0x00091002 in ds  # only the named private element
    assert notes == ["--remove (0011,0001)[NOBODY]: Private Creator not found, nothing done"]
    # nothing else changed: no profile, no Patient Identity Removed
    assert "PatientIdentityRemoved" not in ds and ds.StudyDate == "20240105"


def test_type1_guard() -> None:
    ds = make_ct()
    with pytest.raises(Type1AttributeError, match="SOPInstanceUID is Type 1 in the ct-image"):
        apply_edits(ds, [parse_edit(EditKind.REMOVE, "0008,0018")])
    with pytest.raises(Type1AttributeError):
        apply_edits(ds, [parse_edit(EditKind.EMPTY, "0008,0060")])  # Modality
    with pytest.raises(Type1AttributeError):
        apply_edits(ds, [parse_edit(EditKind.REPLACE, "0008,0060=")])
    apply_edits(ds, [parse_edit(EditKind.EMPTY, "0008,0060")], force=True)
    assert ds.Modality == ""
    # Type 2 may be emptied without --force
    apply_edits(ds, [parse_edit(EditKind.EMPTY, "0010,0020")])
    assert ds.PatientID == ""


def test_replace_refuses_invalid_values() -> None:
    ds = make_ct()
    with pytest.raises(OptionError, match="not valid for VR US"):
        apply_edits(ds, [parse_edit(EditKind.REPLACE, "0028,0010=big")])
    with pytest.raises(OptionError):
        apply_edits(ds, [parse_edit(EditKind.REPLACE, "0010,0040=" + "X" * 40)])  # CS > 16
    with pytest.raises(OptionError, match="VR SQ"):
        apply_edits(ds, [parse_edit(EditKind.REPLACE, "0010,1002=x")])
