"""Reader for DCMTK's ``dcmqrscp.cfg`` format, plus dicom-node's extension keywords.

Why follow DCMTK's reader (``DcmQueryRetrieveConfig::readConfigLines()`` and friends in
dcmqrdb/libsrc/dcmqrcnf.cc) so closely: people bring working dcmqrscp configurations, and
those rely on what DCMTK accepts.  Separators are white space, ``=`` and ``,`` anywhere,
so ``ACME, /data, RW, (10, 24mb), ANY`` is a valid AETable row; values are quoted with
any of ``"'()`` (``config.tokens``); in a peer list a value with a comma is an
``(AETitle, HostName, Port)`` tuple and one without is a HostTable name, resolved while
reading (so the HostTable comes first); ``WR`` is read-write; quota units are case-blind
and a bare ``b`` means bytes; after ``ANY`` the rest of a row is ignored; a second
HostTable or VendorTable adds to the first, a second AETable replaces it; legacy
keywords such as ``ApplicationTitle`` are skipped.  ``tests/config/test_dcmtk_interop``
checks all of this against DCMTK's own reader.

Where dcmqrscp's reading silently differs from what the text says, we stop with a
``ConfigError`` that says why instead of guessing: a quota of ``1.5gb`` (DCMTK: 1 GiB),
``NetworkTCPPort "104"`` (DCMTK ignores it), duplicate AE titles or HostTable names,
lower-case access, an AE title over 16 characters.  Where dcmqrscp chokes on harmless
layout we take the obvious meaning: indented rows, white-space-only lines in tables, a
``#`` comment after values or on an indented line, spaces inside ``( AE, host, port )``,
no newline at the end of the file (dcmqrscp crashes).  ``docs/config.md`` lists them.

Exceptions: ``ConfigError`` (``config.errors``) for everything, as ``file:line: message``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.errors import ConfigError, InvalidValue
from config.keywords import (
    KEYWORDS,
    LEGACY_KEYWORDS,
    check_ae_title,
    parse_port,
    resolve_path,
)
from config.model import Access, AEEntry, HostEntry, Quota
from config.pipelines import EntryError, PipelineTables
from config.tokens import (
    WHITESPACE,
    is_comment,
    next_value,
    skip_mnemonic,
    split_values,
    words,
)

__all__ = ["ConfigError", "ParsedConfig", "parse_config", "parse_quota", "read_config"]

logger = logging.getLogger(__name__)

#: dcmqrscp's tables, then ours (``config.pipelines``: triggers and routes).
TABLES = ("HostTable", "VendorTable", "AETable", "TriggerTable", "RouteTable")
_QUOTA = re.compile(r"\s*([+-]?\d+)\s*,\s*(\S+)\s*")
_QUOTA_SIZE = re.compile(r"(\d+)([kKmMgG]?)[bB]")
_QUOTA_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
#: dcmqrscp's writableStorageArea()/readableStorageArea() also take "WR" as read-write.
_ACCESS: dict[str, Access] = {"R": "R", "RW": "RW", "WR": "RW", "W": "W"}


@dataclass
class ParsedConfig:
    """What a file says: ``Settings`` field values, and the line each global came from."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def parse_config(text: str, path: Path) -> ParsedConfig:
    """Read the text of a configuration file; relative paths resolve against its folder."""
    return _Reader(Path(os.path.abspath(path)), text).read()


def read_config(path: Path) -> ParsedConfig:
    """Read a configuration file (bytes that are not UTF-8 survive as surrogates)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the configuration: {exc.strerror}") from None
    return parse_config(data.decode("utf-8", errors="surrogateescape"), Path(path))


def parse_quota(text: str, where: str) -> Quota:
    """``maxStudies, maxBytesPerStudy``: DCMTK's ``sscanf("%d , %s")``, then ``quota()``."""
    match = _QUOTA.fullmatch(text)
    if match is None:
        raise InvalidValue(
            f"{where}: quota {text!r} is not (maxStudies, maxBytesPerStudy) such as (10, 1024mb)"
        )
    studies, size = int(match[1]), match[2]
    if studies < 1:
        raise InvalidValue(f"{where}: maxStudies must be at least 1, not {studies}")
    if size[-1:] not in ("b", "B"):
        raise InvalidValue(
            f"{where}: quota size {size!r} has no unit (kb, mb, gb, or b for bytes; "
            f"dcmqrscp 3.6.7 would silently use its 1 GiB maximum)"
        )
    unit = _QUOTA_SIZE.fullmatch(size)
    if unit is None:
        hint = ""
        fraction = re.fullmatch(r"(\d+)\.\d*([kKmMgG]?)[bB]", size)
        if fraction:
            hint = f" (whole numbers only; dcmqrscp would read {fraction[1]}{fraction[2]}b)"
        raise InvalidValue(f"{where}: quota size {size!r} is malformed{hint}")
    size_bytes = int(unit[1]) * _QUOTA_UNITS[unit[2].lower()]
    if size_bytes < 1:
        raise InvalidValue(f"{where}: maxBytesPerStudy must be more than 0")
    return Quota(max_studies=studies, max_bytes_per_study=size_bytes)


def _peer_tuple(value: str) -> HostEntry:
    """``AE, host, port`` from inside the parentheses.

    DCMTK reads a space after ``(`` as an empty AE title (and the host as the title);
    we take the obvious meaning, as DCMTK's own sample writes ``( AETitle, ... )``.
    """
    items = [item for item in re.split(r"[\s=,]+", value) if item]
    if len(items) != 3:
        raise InvalidValue(f"peer ({value}) must be (AETitle, HostName, Port)")
    ae_title, hostname, port = items
    return HostEntry(
        ae_title=check_ae_title(ae_title, f"peer ({value})"),
        hostname=hostname,
        port=parse_port(port, f"port of peer ({value})"),
    )


@dataclass
class _Line:
    number: int
    text: str  # always ends in "\n", as fgets() gives it


def _lines(text: str) -> Iterator[_Line]:
    """Lines split on ``\\n`` only (``\\r`` stays, as white space), each ending in one."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    for number, piece in enumerate(pieces, start=1):
        yield _Line(number, piece + "\n")


def _skipped(line: str) -> bool:
    """Comment or blank: DCMTK's ``#``, LF or CR in column 1, plus indented and blank ones."""
    stripped = line.strip(WHITESPACE)
    return not stripped or stripped.startswith("#")


def _row_start(text: str) -> int:
    """Rows start in column 1 for DCMTK; we also take indented ones."""
    return len(text) - len(text.lstrip(WHITESPACE))


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.base = path.parent
        self.text = text
        self.result = ParsedConfig(path)
        self.hosts: dict[str, tuple[HostEntry, ...]] = {}
        self.host_lines: dict[str, int] = {}
        self.vendors: dict[str, tuple[HostEntry, ...]] = {}
        self.vendor_lines: dict[str, int] = {}
        self.ae_table: list[AEEntry] = []
        self.ae_table_line: int | None = None
        self.pipelines = PipelineTables(self.base)

    def error(self, line: int | None, message: str) -> ConfigError:
        return ConfigError(self.path, line, message)

    def read(self) -> ParsedConfig:
        lines = _lines(self.text)
        for line in lines:
            if not _skipped(line.text):
                self.global_line(line, lines)
        self.result.values.update(
            hosts=self.hosts, vendors=self.vendors, ae_table=tuple(self.ae_table)
        )
        try:
            self.result.values.update(self.pipelines.build(self.result.values))
        except EntryError as exc:
            raise self.error(exc.line, exc.message) from None
        return self.result

    # --- globals ------------------------------------------------------------------------

    def global_line(self, line: _Line, lines: Iterator[_Line]) -> None:
        mnemonic = words(line.text)[0]
        valueptr = line.text[skip_mnemonic(line.text) :]
        if mnemonic in LEGACY_KEYWORDS:
            logger.debug("%s:%d: ignoring legacy keyword %s", self.path, line.number, mnemonic)
            return
        if mnemonic in TABLES:
            status = (words(valueptr) or [""])[0]
            if status == "BEGIN":
                self.table(mnemonic, line, lines)
                return
            if status == "END":
                raise self.error(line.number, f"{mnemonic} END without {mnemonic} BEGIN")
            raise self.error(
                line.number, f"{mnemonic} must be followed by BEGIN or END, not {status!r}"
            )
        keyword = KEYWORDS.get(mnemonic)
        if keyword is None:
            raise self.error(line.number, self.unknown_keyword(mnemonic))
        try:
            self.result.values[keyword.field] = keyword.from_file(valueptr, self.base)
        except InvalidValue as exc:
            raise self.error(line.number, str(exc)) from None
        self.result.lines[keyword.field] = line.number

    @staticmethod
    def unknown_keyword(mnemonic: str) -> str:
        head = re.split(r"[=,]", mnemonic, maxsplit=1)[0]
        if head != mnemonic and (head in KEYWORDS or head in TABLES):
            return f"unknown keyword {mnemonic!r}: put white space between {head} and its value"
        for name in (*KEYWORDS, *TABLES):
            if name.lower() == mnemonic.lower():
                return f"unknown keyword {mnemonic!r} (keywords are case-sensitive: {name})"
        return f"unknown keyword {mnemonic!r}"

    # --- tables -------------------------------------------------------------------------

    def table(self, name: str, begin: _Line, lines: Iterator[_Line]) -> None:
        if name == "AETable":
            if self.ae_table_line is not None:
                logger.warning(
                    "%s:%d: a second AETable replaces the one at line %d (as in dcmqrscp)",
                    self.path,
                    begin.number,
                    self.ae_table_line,
                )
            self.ae_table = []
            self.ae_table_line = begin.number
        rows: dict[str, Callable[[_Line], None]] = {
            "HostTable": self.host_row,
            "VendorTable": self.vendor_row,
            "AETable": self.ae_row,
            "TriggerTable": lambda line: self.pipelines.row("TriggerTable", line.number, line.text),
            "RouteTable": lambda line: self.pipelines.row("RouteTable", line.number, line.text),
        }
        for line in lines:
            if _skipped(line.text):
                continue
            first, status, *_ = [*words(line.text), ""]
            if first == name:
                if status == "END":
                    return
                raise self.error(
                    line.number, f"{name} {status} inside {name} (expected {name} END)"
                )
            if first in TABLES and status in ("BEGIN", "END"):
                raise self.error(
                    line.number, f"{first} {status} inside {name} (missing {name} END?)"
                )
            try:
                rows[name](line)
            except InvalidValue as exc:
                raise self.error(line.number, str(exc)) from None
        raise self.error(begin.number, f"{name} BEGIN without {name} END")

    def host_row(self, line: _Line) -> None:
        name, pos, _ = next_value(line.text, _row_start(line.text))
        if name is None:
            raise InvalidValue("unterminated quote")
        if not name:
            raise InvalidValue("HostTable entry without a name")
        if name in self.hosts:
            raise InvalidValue(
                f"HostTable name {name!r} already defined at line {self.host_lines[name]}"
            )
        peers = self.peer_list(line.text, pos, f"HostTable entry {name!r}")
        if not peers:
            raise InvalidValue(f"HostTable entry {name!r} lists no peers")
        self.hosts[name] = peers
        self.host_lines[name] = line.number

    def vendor_row(self, line: _Line) -> None:
        name, pos, _ = next_value(line.text, _row_start(line.text))
        if name is None:
            raise InvalidValue("unterminated quote")
        if not name:
            raise InvalidValue("VendorTable entry without a vendor name")
        if name in self.vendors:
            raise InvalidValue(f"vendor {name!r} already defined at line {self.vendor_lines[name]}")
        peers = self.peer_list(line.text, pos, f"vendor {name!r}")
        if not peers:
            raise InvalidValue(f"vendor {name!r} names no HostTable entry")
        self.vendors[name] = peers
        self.vendor_lines[name] = line.number

    def peer_list(self, text: str, pos: int, owner: str) -> tuple[HostEntry, ...]:
        """DCMTK's ``readPeerList()``: HostTable names and ``(AE, host, port)`` tuples."""
        peers: list[HostEntry] = []
        while True:
            value, pos, quoted = next_value(text, pos)
            if value is None:
                if quoted:
                    raise InvalidValue(f"unterminated quote or parenthesis in {owner}")
                return tuple(peers)
            if is_comment(value, quoted):
                return tuple(peers)
            if "," in value:
                peers.append(_peer_tuple(value))
                continue
            entries = self.hosts.get(value)
            if entries is None:
                message = f"{owner}: {value!r} is not a name defined in a HostTable above this line"
                if any(c in value for c in WHITESPACE):
                    message += " (a peer tuple needs commas: (AETitle, HostName, Port))"
                raise InvalidValue(message)
            peers.extend(entries)

    def ae_row(self, line: _Line) -> None:
        """``AETitle StorageArea Access (maxStudies, maxBytesPerStudy) Peers``."""
        text = line.text
        pos = _row_start(text)
        columns: list[str] = []
        quota_quoted = False
        for _ in range(4):
            value, pos, quoted = next_value(text, pos)
            if value is None and quoted:
                raise InvalidValue("unterminated quote or parenthesis")
            if value is None or is_comment(value, quoted):
                raise InvalidValue(
                    "missing columns: an AETable row is "
                    "AETitle StorageArea Access (maxStudies, maxBytesPerStudy) Peers"
                )
            columns.append(value)
            quota_quoted = quoted
        raw_title, storage, access, quota = columns
        title = check_ae_title(raw_title, "AETable")
        if any(other.title == title for other in self.ae_table):
            raise InvalidValue(f"duplicate AE title {title!r} in the AETable")
        if not storage:
            raise InvalidValue(f"AE {title}: empty storage area")
        mode = _ACCESS.get(access)
        if mode is None:
            raise InvalidValue(f"AE {title}: access {access!r} is not R, RW or W")
        if not quota_quoted:  # an unquoted value cannot hold the comma
            raise InvalidValue(f"AE {title}: quota {quota!r} is not (maxStudies, maxBytesPerStudy)")
        self.ae_table.append(
            AEEntry(
                title=title,
                storage_area=resolve_path(storage, self.base),
                access=mode,
                quota=parse_quota(quota, f"AE {title}"),
                peers=self.ae_peers(title, line, pos),
            )
        )

    def ae_peers(self, title: str, line: _Line, pos: int) -> tuple[HostEntry, ...] | None:
        """DCMTK's ``parsePeers()``: ``ANY`` (the rest of the row ignored) or a peer list."""
        first, after, quoted = next_value(line.text, pos)
        if first is None and quoted:
            raise InvalidValue(f"AE {title}: unterminated quote in the peers")
        if first is None or is_comment(first, quoted):
            raise InvalidValue(f"AE {title}: no peers (ANY, HostTable names or tuples)")
        if first == "ANY":
            ignored = split_values(line.text[after:])
            if ignored:
                logger.warning(
                    "%s:%d: AE %s: ignoring %s after ANY (as dcmqrscp does)",
                    self.path,
                    line.number,
                    title,
                    " ".join(ignored),
                )
            return None
        peers = self.peer_list(line.text, pos, f"AE {title}")
        if not peers:
            raise InvalidValue(f"AE {title}: no peers")
        return peers
