"""Table E.1-1 as shipped, option precedence, safe private tags, IOD types."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from node.tools.anonymize import OptionError, Options, PrivateTag, load_profile
from node.tools.anonymize.iod import load_iod_types
from node.tools.anonymize.profile import Action, Option

TSV = (
    Path(__file__).resolve().parents[2] / "node" / "tools" / "anonymize" / "data"
) / "ps3.15-table-e1-1.tsv"

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def test_whole_table_is_loaded() -> None:
    with TSV.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    profile = load_profile()
    assert len(profile.rules) == len(rows) == 621
    # every row is reachable: exact tags, the masked repeating groups, the private row
    assert len(profile.exact) + len(profile.masked) + 1 == len(rows)
    assert profile.private is not None and profile.private.basic == "X"
    assert profile.rule(0x00100010).keyword == "PatientName"
    assert profile.rule(0x50040010).name == "Curve Data"  # (50xx,xxxx)
    assert profile.rule(0x60023000).keyword == "OverlayData"  # (60xx,3000)
    assert profile.rule(0x00280010) is None  # Rows: not in the table


def test_basic_actions_match_the_table() -> None:
    actions = load_profile().actions(frozenset())
    assert actions[0x00100010] is Action.ZERO  # Patient's Name: Z
    assert actions[0x00080018] is Action.UID  # SOP Instance UID: U
    assert actions[0x00081030] is Action.REMOVE  # Study Description: X
    assert actions[0x0040A123] is Action.DUMMY  # Person Name: D
    assert actions[0x00080022] is Action.X_Z  # Acquisition Date: X/Z
    assert actions[0x00081140] is Action.X_Z_U  # Referenced Image Sequence: X/Z/U*


def test_option_precedence() -> None:
    profile = load_profile()
    date = profile.exact[0x00080020]  # Study Date: Z, K full dates, C modified dates
    assert date.resolve(frozenset({Option.RETAIN_FULL_DATES})) is Action.KEEP
    assert date.resolve(frozenset({Option.RETAIN_MODIFIED_DATES})) is Action.SHIFT_DATE
    calibration = profile.exact[0x0018700C]  # Date of Last Detector Calibration: K device
    both = frozenset({Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_MODIFIED_DATES})
    assert calibration.resolve(both) is Action.SHIFT_DATE  # the real date must not leak
    assert calibration.resolve(frozenset({Option.RETAIN_DEVICE_IDENTITY})) is Action.KEEP
    allergies = profile.exact[0x00102110]  # X, C patient characteristics, C descriptors
    assert allergies.resolve(frozenset({Option.CLEAN_DESCRIPTORS})) is Action.CLEAN_TEXT
    assert profile.exact[0x0020000D].resolve(frozenset({Option.RETAIN_UIDS})) is Action.KEEP


def test_options_refused() -> None:
    with pytest.raises(OptionError, match="Clean Graphics"):
        Options(clean_graphics=True).validate()
    with pytest.raises(OptionError, match="one of"):
        Options(retain_full_dates=True, retain_modified_dates=True).validate()
    tag = PrivateTag.parse("0019,xx0C,SIEMENS MR HEADER")
    with pytest.raises(OptionError, match="Retain Safe Private"):
        Options(safe_private=frozenset({tag})).validate()
    Options(retain_safe_private=True, safe_private=frozenset({tag})).validate()


def test_private_tag_parsing() -> None:
    assert PrivateTag.parse("0019,xx0C,SIEMENS MR HEADER") == PrivateTag(
        0x0019, "SIEMENS MR HEADER", 0x0C
    )
    assert PrivateTag.parse("0043,1039,GEMS_PARM_01") == PrivateTag(0x0043, "GEMS_PARM_01", 0x39)
    for bad in ("0018,xx0C,X", "0019,xx0C", "zz19,xx0C,X"):
        with pytest.raises(OptionError):
            PrivateTag.parse(bad)


def test_options_codes_are_cid_7050() -> None:
    codes = {o.code for o in Option}
    assert codes == {f"1131{n:02d}" for n in range(3, 13)}


def test_iod_types() -> None:
    types = load_iod_types()
    assert types.iod_of(CT) == "ct-image"
    assert types.type_of(CT, (0x00080018,)) == "1"  # SOP Instance UID
    assert types.type_of(CT, (0x00100020,)) == "2"  # Patient ID
    assert types.type_of(CT, (0x00080022,)) is None  # Acquisition Date: Type 3
    # the 2024b functional-group modules map to the generic 2020a module
    assert types.type_of(ENHANCED_CT, (0x00080023,)) == "1"  # Content Date
    # nested: Other Patient IDs Sequence > Patient ID is Type 1
    assert types.type_of(CT, (0x00101002, 0x00100020)) == "1"
    # an unknown (private) SOP Class gets the strongest type of any module
    assert types.type_of("1.2.3.4", (0x00080018,)) == "1"
