"""Per-patient date shifts (Retain Longitudinal Temporal Information, Modified Dates)."""

from __future__ import annotations

import datetime as dt

from node.tools.anonymize.dates import MAX_WEEKS, patient_key, shift_da, shift_days, shift_dt


def test_shift_is_per_patient_and_in_whole_weeks() -> None:
    a = shift_days(b"secret", patient_key("123", "HOSP"))
    assert a == shift_days(b"secret", patient_key("123", "HOSP"))
    assert a % 7 == 0 and -7 * MAX_WEEKS <= a <= -7
    shifts = {shift_days(b"secret", patient_key(str(i))) for i in range(200)}
    assert len(shifts) > 100  # patients get different shifts
    # the issuer qualifies the ID: same ID, other issuer, other patient
    others = {shift_days(b"secret", patient_key("123", f"H{i}")) for i in range(20)}
    assert len(others) > 1


def test_shift_da() -> None:
    assert shift_da("20240229", -7) == "20240222"
    assert shift_da("20240105", -7) == "20231229"
    assert shift_da("20240101-20240131", -7) == "20231225-20240124"
    assert shift_da("20240101-", -7) == "20231225-"
    assert shift_da("202401", -70) == "202311"  # precision kept
    assert shift_da("", -7) == ""
    assert shift_da("2024-01-01", -7) is None  # not a DA: caller empties it
    assert shift_da("20241301", -7) is None


def test_shift_dt_keeps_time_and_offset() -> None:
    assert shift_dt("20240105123000.123456+0100", -7) == "20231229123000.123456+0100"
    assert shift_dt("20240105", -7) == "20231229"
    assert shift_dt("2024", -7) == "2024"  # mid-year anchor: only far shifts change the year
    assert shift_dt("2024", -280) == "2023"
    assert shift_dt("20240105-0500", -14) == "20231222-0500"
    assert shift_dt("20x40105", -7) is None


def test_intervals_are_kept() -> None:
    days = shift_days(b"k", patient_key("P1"))
    first, second = "20200110", "20210315"
    a = dt.datetime.strptime(shift_da(first, days) or "", "%Y%m%d")
    b = dt.datetime.strptime(shift_da(second, days) or "", "%Y%m%d")
    original = dt.datetime.strptime(second, "%Y%m%d") - dt.datetime.strptime(first, "%Y%m%d")
    assert b - a == original
    assert a.weekday() == dt.datetime.strptime(first, "%Y%m%d").weekday()
