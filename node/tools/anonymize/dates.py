"""Date shifting for the Retain Longitudinal Temporal Information with Modified Dates option.

Why a per-patient shift from a secret: intervals between a patient's examinations stay
exact (the point of the option), the shift is the same in every file, directory, run and
node that shares the secret, and nothing has to be stored.  The shift is a whole number of
weeks into the past (1 to 520 weeks): times of day and weekdays are kept, and no date
moves into the future.

A value that cannot be read as a date is emptied rather than kept: it could not be
shifted, so keeping it would leak the real date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

__all__ = ["MAX_WEEKS", "patient_key", "shift_da", "shift_days", "shift_dt"]

#: The largest shift, in weeks (about ten years).
MAX_WEEKS = 520


def patient_key(patient_id: str, issuer: str = "") -> bytes:
    """What identifies a patient for the shift: Patient ID qualified by its issuer."""
    return (
        patient_id.strip().encode("utf-8", "surrogateescape")
        + b"\0"
        + issuer.strip().encode("utf-8", "surrogateescape")
    )


def shift_days(secret: bytes, key: bytes) -> int:
    """The shift in days (negative, a multiple of 7) for one patient."""
    digest = hmac.new(secret, b"date-shift\0" + key, hashlib.sha256).digest()
    weeks = 1 + int.from_bytes(digest[:8], "big") % MAX_WEEKS
    return -7 * weeks


def _shift_date_text(text: str, days: int) -> str | None:
    """Shift ``YYYY``, ``YYYYMM`` or ``YYYYMMDD``; keep the precision of the input."""
    if not text.isdigit() or len(text) not in (4, 6, 8):
        return None
    year = int(text[:4])
    month = int(text[4:6]) if len(text) >= 6 else 7
    day = int(text[6:8]) if len(text) == 8 else (15 if len(text) == 6 else 2)
    try:
        shifted = dt.date(year, month, day) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return shifted.strftime("%Y%m%d")[: len(text)]


def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value (or a ``A-B`` range); None when it is not a date."""
    value = value.strip()
    if not value:
        return ""
    if "-" in value:
        parts = value.split("-")
        if len(parts) != 2:
            return None
        shifted = [_shift_date_text(p, days) if p else "" for p in parts]
        if any(s is None for s in shifted):
            return None
        return "-".join(s or "" for s in shifted)
    return _shift_date_text(value, days)


def shift_dt(value: str, days: int) -> str | None:
    """Shift one DT value ``YYYY[MM[DD[HH...]]][&ZZXX]``: only the date part moves."""
    value = value.strip()
    if not value:
        return ""
    offset = ""
    for sign in "+-":
        pos = value.find(sign, 4)
        if pos != -1:
            value, offset = value[:pos], value[pos:]
            break
    date_len = min(len(value), 8)
    if date_len not in (4, 6, 8):
        return None
    shifted = _shift_date_text(value[:date_len], days)
    if shifted is None:
        return None
    return shifted + value[date_len:] + offset
