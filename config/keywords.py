"""The global keywords of a configuration file: dcmqrscp's and our extensions.

Why one table for file and environment: ``NODE_NETWORK_TCP_PORT=0`` must mean what
``NetworkTCPPort 0`` means (dcmqrscp's "not set", so 104).  Each ``Keyword`` names its
``Settings`` field and holds the one function that turns text into that field's value;
the file reader and ``config.settings`` both go through it.

How a value is cut out of a file line depends on the keyword's ``style``:

- ``number``, ``value``: dcmqrscp's keywords with one value, split as DCMTK splits them
  (a quoted number is refused: ``sscanf("%d")`` cannot read it, so dcmqrscp silently
  keeps its default);
- ``values``: ``SpecificCharacterSet``, a list;
- ``line``: our extensions take the rest of the line (``DatabaseURL`` holds ``=`` and
  ``,``, which DCMTK would take for separators), optionally quoted, up to `` #``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from config.errors import InvalidValue
from config.model import CHARACTER_SET_OPTIONS
from config.tokens import QUOTES, WHITESPACE, next_value, split_values

Style = Literal["number", "value", "values", "line"]

_INTEGER = re.compile(r"[+-]?\d+")

#: Keywords older DCMTK releases used; dcmqrscp skips them and so do we.
LEGACY_KEYWORDS = frozenset(
    {
        "ApplicationTitle",
        "ApplicationContext",
        "ImplementationClass",
        "ImplementationVersion",
        "NetworkType",
        "Display",
        "DisplayPort",
    }
)

#: DICOM defined terms for Specific Character Set (PS3.3 C.12.1.1.2), plus ``ISO_IR 6``,
#: which DCMTK accepts for ASCII.
CHARACTER_SETS = frozenset(
    {"ISO_IR 6", "ISO_IR 192", "GB18030", "GBK"}
    | {
        f"{prefix} {n}"
        for prefix in ("ISO_IR", "ISO 2022 IR")
        for n in (100, 101, 109, 110, 144, 127, 126, 138, 148, 203, 13, 166)
    }
    | {"ISO 2022 IR 6", "ISO 2022 IR 87", "ISO 2022 IR 159", "ISO 2022 IR 149", "ISO 2022 IR 58"}
)

# --- converters: text -> value, or InvalidValue -------------------------------------------


def parse_int(text: str, what: str, low: int, high: int) -> int:
    """A whole number within ``[low, high]``; ``what`` names it in the message."""
    if not _INTEGER.fullmatch(text.strip()):
        raise InvalidValue(f"{what}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise InvalidValue(f"{what} {value} out of range {low}-{high}")
    return value


def parse_port(text: str, what: str = "port") -> int:
    return parse_int(text, what, 1, 65535)


def parse_network_tcp_port(text: str) -> int:
    """``0`` means "not set" to dcmqrscp, which then listens on 104."""
    return parse_int(text, "NetworkTCPPort", 0, 65535) or 104


def parse_max_pdu_size(text: str) -> int:
    """``0`` means "not set" to dcmqrscp (16384).

    dcmqrscp refuses values outside 4096-131072; we allow up to the 32-bit limit of the
    PDU length field, which pynetdicom handles.
    """
    size = parse_int(text, "MaxPDUSize", 0, 0xFFFFFFFF)
    if size == 0:
        return 16384
    if size < 4096:
        raise InvalidValue(f"MaxPDUSize {size} out of range 4096-{0xFFFFFFFF} (or 0)")
    return size


def parse_seconds(text: str, what: str, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidValue(f"{what}: {text!r} is not a number (seconds)") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidValue(f"{what}: {text!r} must be a number of seconds {bound}")
    return value


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def parse_bool(text: str, what: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidValue(f"{what}: {text!r} is not yes/no, true/false, on/off or 1/0")


def parse_log_level(text: str) -> str:
    level = text.strip().upper()
    level = "WARNING" if level == "WARN" else level
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise InvalidValue(f"LogLevel: {text!r} is not DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def parse_character_set(text: str) -> tuple[str, ...]:
    """The words of ``SpecificCharacterSet``; options are case-sensitive, as in DCMTK."""
    values = split_values(text)
    for value in values:
        if value in CHARACTER_SET_OPTIONS:
            continue
        if any(term not in CHARACTER_SETS for term in value.split("\\")):
            raise InvalidValue(
                f"SpecificCharacterSet: {value!r} is neither an option "
                f"({', '.join(sorted(CHARACTER_SET_OPTIONS))}) nor a DICOM character set "
                f'such as "ISO_IR 192" (quote it: it contains a space)'
            )
    return tuple(values)


def resolve_path(text: str, base: Path) -> Path:
    """``text`` as an absolute path; a relative one is taken from ``base``."""
    if not text:
        raise InvalidValue("empty path")
    return Path(os.path.normpath(base / text))


def check_ae_title(title: str, where: str) -> str:
    """An AE title as DICOM allows it: 1-16 printable ASCII characters, no backslash."""
    title = title.strip(" ")
    if not title:
        raise InvalidValue(f"empty AE title in {where}")
    if len(title) > 16:
        raise InvalidValue(f"AE title {title!r} is longer than 16 characters")
    if any(not (" " <= c <= "~") or c == "\\" for c in title):
        raise InvalidValue(
            f"AE title {title!r} may only hold printable ASCII characters, no backslash"
        )
    return title


def _text(what: str, required: bool) -> Callable[[str, Path], str | None]:
    def convert(text: str, base: Path) -> str | None:
        if not text.strip():
            if required:
                raise InvalidValue(f"{what} needs a value")
            return None  # dcmqrscp's empty UserName/GroupName: do not switch
        return text

    return convert


# --- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """One global keyword: its ``Settings`` field and how its text becomes a value."""

    name: str
    field: str
    style: Style
    convert: Callable[[str, Path], Any]

    @property
    def extension(self) -> bool:
        """Ours, not dcmqrscp's (dcmqrscp refuses a file that uses it)."""
        return self.style == "line"

    def from_file(self, valueptr: str, base: Path) -> Any:
        """The value of a file line, given the text after the keyword and its gaps."""
        if self.style == "line":
            return self.convert(line_value(self.name, valueptr), base)
        if self.style == "values":
            return self.convert(valueptr, base)
        if self.style == "number" and valueptr[:1] in QUOTES:
            raise InvalidValue(f"{self.name}: {valueptr.strip()} is not a number")
        values = split_values(valueptr)
        if not values:
            raise InvalidValue(f"{self.name} needs a value")
        if len(values) > 1:
            raise InvalidValue(
                f"{self.name} takes one value, not {len(values)} "
                f"({', '.join(map(repr, values))}); quote a value that holds spaces"
            )
        return self.convert(values[0], base)

    def from_environment(self, text: str, base: Path) -> Any:
        """The value of an environment variable: all of its text is the value."""
        return self.convert(text, base)


def line_value(name: str, valueptr: str) -> str:
    """An extension's value: the rest of the line without a `` # comment``; quotes optional."""
    rest = valueptr.strip(WHITESPACE)
    if rest[:1] in QUOTES:
        value, after, _ = next_value(rest + "\n", 0)
        if value is None:
            raise InvalidValue(f"{name}: unterminated quote in {rest!r}")
        tail = rest[after:].strip(WHITESPACE)
        if tail and not tail.startswith("#"):
            raise InvalidValue(f"{name}: unexpected {tail!r} after the quoted value")
        return value
    rest = re.split(r"\s#", rest, maxsplit=1)[0].strip(WHITESPACE)
    if not rest or rest.startswith("#"):
        raise InvalidValue(f"{name} needs a value")
    return rest


def parse_job_concurrency(text: str) -> dict[str, int]:
    """``kind=N, kind=N``: per job kind, the most jobs running at once (N >= 1)."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, number = item.partition("=")
        kind = kind.strip()
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", kind):
            raise InvalidValue(f"JobConcurrency: {item!r} is not kind=N (e.g. convert=2)")
        limits[kind] = parse_int(number.strip(), f"JobConcurrency {kind}", 1, 1024)
    if not limits:
        raise InvalidValue("JobConcurrency needs kind=N items, e.g. convert=1, forward=4")
    return limits


def _seconds(what: str, allow_zero: bool = False) -> Callable[[str, Path], float]:
    return lambda text, base: parse_seconds(text, what, allow_zero)


def _path(text: str, base: Path) -> Path:
    return resolve_path(text, base)


_KEYWORDS = (
    # dcmqrscp's globals
    Keyword("NetworkTCPPort", "network_tcp_port", "number", lambda t, b: parse_network_tcp_port(t)),
    Keyword("MaxPDUSize", "max_pdu_size", "number", lambda t, b: parse_max_pdu_size(t)),
    Keyword(
        "MaxAssociations",
        "max_associations",
        "number",
        lambda t, b: parse_int(t, "MaxAssociations", 1, 1 << 31),
    ),
    Keyword("UserName", "user_name", "value", _text("UserName", required=False)),
    Keyword("GroupName", "group_name", "value", _text("GroupName", required=False)),
    Keyword(
        "SpecificCharacterSet",
        "specific_character_set",
        "values",
        lambda t, b: parse_character_set(t),
    ),
    # our extensions
    Keyword("DatabaseURL", "database_url", "line", _text("DatabaseURL", required=True)),
    Keyword("DataDir", "data_dir", "line", _path),
    Keyword("BindAddress", "bind_address", "line", _text("BindAddress", required=True)),
    Keyword("ACSETimeout", "acse_timeout", "line", _seconds("ACSETimeout")),
    Keyword("DIMSETimeout", "dimse_timeout", "line", _seconds("DIMSETimeout")),
    Keyword("NetworkTimeout", "network_timeout", "line", _seconds("NetworkTimeout")),
    Keyword("ShutdownGrace", "shutdown_grace", "line", _seconds("ShutdownGrace", True)),
    Keyword(
        "IngestWorkers", "ingest_workers", "line", lambda t, b: parse_int(t, "IngestWorkers", 1, 64)
    ),
    Keyword("LogLevel", "log_level", "line", lambda t, b: parse_log_level(t)),
    Keyword(
        "AdminAPIAddress", "admin_api_address", "line", _text("AdminAPIAddress", required=True)
    ),
    Keyword("AdminAPIPort", "admin_api_port", "line", lambda t, b: parse_port(t, "AdminAPIPort")),
    Keyword("AdminToken", "admin_token", "line", _text("AdminToken", required=True)),
    Keyword("TLSCertificate", "tls_certificate", "line", _path),
    Keyword("TLSPrivateKey", "tls_private_key", "line", _path),
    Keyword("TLSCACertificate", "tls_ca_certificate", "line", _path),
    Keyword(
        "TLSRequirePeerCertificate",
        "tls_require_peer_certificate",
        "line",
        lambda t, b: parse_bool(t, "TLSRequirePeerCertificate"),
    ),
    Keyword("UserIdentityFile", "user_identity_file", "line", _path),
    Keyword(
        "RequireUserIdentity",
        "require_user_identity",
        "line",
        lambda t, b: parse_bool(t, "RequireUserIdentity"),
    ),
    Keyword("JobWorkers", "job_workers", "line", lambda t, b: parse_int(t, "JobWorkers", 1, 256)),
    Keyword("JobConcurrency", "job_concurrency", "line", lambda t, b: parse_job_concurrency(t)),
    Keyword("JobLease", "job_lease", "line", _seconds("JobLease")),
    Keyword("StudyStableSeconds", "study_stable_seconds", "line", _seconds("StudyStableSeconds")),
)

#: Keyword name -> Keyword, in the order of docs/config.md.
KEYWORDS: dict[str, Keyword] = {k.name: k for k in _KEYWORDS}
#: Settings field -> keyword name.
KEYWORD_FOR_FIELD: dict[str, str] = {k.field: k.name for k in _KEYWORDS}
