"""DCMTK's tokenizer for dcmqrscp.cfg, ported character for character.

Why a port: its rules are not those of any tidy grammar, and files written for dcmqrscp
rely on them.  ``=`` and ``,`` separate values just like white space; any of ``"``,
``'``, ``(`` and ``)`` opens a quoted value *and* closes it, whichever comes next
(``"Acme CT')`` is one value); a quoted value needs no gap after it (``(A,h,1)(B,h,2)``
is two).  ``next_value`` is ``DcmQueryRetrieveConfig::parsevalues()`` and
``skip_mnemonic`` is ``skipmnemonic()`` (dcmqrdb/libsrc/dcmqrcnf.cc).
"""

from __future__ import annotations

import re

from config.errors import InvalidValue

WHITESPACE = " \t\n\v\f\r"  # C isspace() in the "C" locale, as DCMTK uses it
GAPS = WHITESPACE + "=,"
QUOTES = "\"'()"
_WORD_SPLIT = re.compile(f"[{re.escape(WHITESPACE)}]+")


def next_value(line: str, pos: int) -> tuple[str | None, int, bool]:
    """The value at ``pos``, the position after it and its gaps, and whether it was quoted.

    A quoted value runs to the next quote character; an unquoted one to the next gap.
    ``None`` means no value: the end of the line, or a quote that is never closed.
    (DCMTK also returns NULL for an unquoted value that reaches the end of the string
    without a gap; our lines always end in a newline, as ``fgets()`` gives them.)
    """
    n = len(line)
    quoted = pos < n and line[pos] in QUOTES
    start = pos + 1 if quoted else pos
    end = start
    if quoted:
        while end < n and line[end] not in QUOTES:
            end += 1
        if end >= n:
            return None, pos, True
        after = end + 1
    else:
        while end < n and line[end] not in GAPS:
            end += 1
        if end >= n:
            return None, pos, False
        after = end
    while after < n and line[after] in GAPS:
        after += 1
    return line[start:end], after, quoted


def skip_mnemonic(line: str) -> int:
    """Where the values of a global line start: after the keyword and the gaps after it."""
    pos, n = 0, len(line)
    while pos < n and line[pos] in GAPS:
        pos += 1
    while pos < n and line[pos] not in WHITESPACE:
        pos += 1
    while pos < n and line[pos] in GAPS:
        pos += 1
    return pos


def is_comment(value: str, quoted: bool) -> bool:
    """An unquoted value starting with ``#`` starts a comment (ours; DCMTK has none)."""
    return not quoted and value.startswith("#")


def words(text: str) -> list[str]:
    """White-space separated words, as ``sscanf("%s")`` sees them."""
    return [w for w in _WORD_SPLIT.split(text) if w]


def split_values(text: str) -> list[str]:
    """All values of ``text`` as DCMTK splits them, up to a ``#`` comment."""
    line = text if text.endswith("\n") else text + "\n"
    values: list[str] = []
    pos = 0
    while pos < len(line) and line[pos] in GAPS:
        pos += 1
    while True:
        value, pos, quoted = next_value(line, pos)
        if value is None:
            if quoted:
                raise InvalidValue(f"unterminated quote in {text.strip()!r}")
            return values
        if is_comment(value, quoted):
            return values
        values.append(value)
