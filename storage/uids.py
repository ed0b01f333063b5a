"""What a valid UID is, so that nothing else ever reaches the filesystem.

Why here: UIDs become file names in the store.  PS3.5 9.1: components of digits
separated by dots, no leading zero in a component (except "0"), at most 64 characters.
Anything else (``../../x``, spaces, an empty string) is refused before a path is built.
"""

from __future__ import annotations

import re

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: object) -> bool:
    """True when ``value`` is a syntactically valid DICOM UID (PS3.5 9.1)."""
    if not isinstance(value, str):
        return False
    value = value.rstrip("\0 ")
    return 0 < len(value) <= 64 and _UID_RE.match(value) is not None
