"""The TriggerTable and the RouteTable: what the node does by itself with what it receives.

Why ``name.Attribute = value`` rows: a trigger or a route has a handful of settings, some
of them repeatable (``Match``, ``Filter``), some of them command lines (``Job = render
--size 128``); one setting per line reads like the rest of a dcmqrscp.cfg and leaves room
for more settings without a column layout to break::

    TriggerTable BEGIN
    thumbs.Event    = ingest
    thumbs.Match    = 0008,0060=CT             # findscu's -k: tag or keyword = value
    thumbs.Match    = CallingAE=MODALITY*
    thumbs.Job      = render --size 128
    TriggerTable END

    RouteTable BEGIN
    research.Source      = RESEARCH           # AETable title whose studies go
    research.Destination = ARCHIVE            # peer AE (AETable peers or HostTable)
    research.Schedule    = "0 2 * * *"        # cron: minute hour day month weekday
    research.Trigger     = stable             # and/or when a study becomes stable
    research.Filter      = Modality=CT\\MR
    research.Select      = new                # new (default): never sent or changed since
    research.Anonymize   = basic --retain-modified-dates
    research.SecretFile  = research.key       # consistent pseudonyms across nights
    research.Convert     = --jpegls
    research.MaxAttempts = 5
    RouteTable END

A value is the rest of the line (quotes optional, `` #`` starts a comment), as for the
extension keywords, except that a value starting with ``(`` is not quoted by it (it is a
tag: ``(0010,0010)=DOE*``); command lines (``Job``, ``Anonymize``, ``Convert``) are split like a
shell would.  A ``Match``/``Filter`` key is ``gggg,eeee``, ``(gggg,eeee)`` or a keyword,
plus ``CallingAE``/``CalledAE`` (the association's AE titles) and ``SOPClass`` (a SOP
Class UID or its keyword, ``CTImageStorage``).  Job command lines are checked against the
job kinds when the node starts (``config`` knows nothing of them).

Errors are ``ConfigError`` as ``file:line: message`` (``config.errors``), raised by the
reader: a row's problem at its line, an entry's (a missing ``Job``) at its first line.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from config.errors import InvalidValue
from config.keywords import check_ae_title, line_value, parse_int, resolve_path
from config.model import AE_MATCH_KEYS, MatchKey, RouteEntry, Settings, TriggerEntry

_ROW = re.compile(r"[ \t\v\f\r]*([^\s=]+)[\s=]*(.*)", re.DOTALL)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
_TAG = re.compile(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?")
_CRON_FIELDS = 5
_KEY_ALIASES = {"SOPClass": "SOPClassUID", "AETitle": "CalledAE"}


@cache
def _uid_by_keyword() -> dict[str, str]:
    from pydicom.uid import UID_dictionary

    return {info[4]: uid for uid, info in UID_dictionary.items() if info[4]}


def parse_match(text: str, what: str) -> MatchKey:
    """``KEY=VALUE`` as findscu's ``-k``: a tag or keyword (or an AE key) and its value."""
    # pydicom only here: importing it costs ~0.3 s (numpy), which every node-ctl command
    # would pay for loading a config without tables.
    from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise InvalidValue(f"{what}: {text!r} is not KEY=VALUE (e.g. 0008,0060=CT)")
    if not value:
        raise InvalidValue(f"{what}: {key} needs a value (an empty value would match anything)")
    key = _KEY_ALIASES.get(key, key)
    if key in AE_MATCH_KEYS:
        return MatchKey(keyword=key, value=value)
    tag_match = _TAG.fullmatch(key)
    if tag_match:
        tag = int(tag_match[1] + tag_match[2], 16)
        keyword = keyword_for_tag(tag) or f"{tag:08X}"
    else:
        found = tag_for_keyword(key)
        if found is None:
            raise InvalidValue(
                f"{what}: {key!r} is neither a tag (gggg,eeee), a DICOM keyword nor one of "
                f"{', '.join((*AE_MATCH_KEYS, 'SOPClass'))}"
            )
        tag, keyword = int(found), key
    if tag >> 16 == 0x0002 or tag & 0xFFFF == 0:
        raise InvalidValue(f"{what}: {key} is not an attribute of a stored dataset")
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = "UN"
    if vr == "SQ":
        raise InvalidValue(f"{what}: {keyword} is a sequence; match one of its items' keys")
    if keyword == "SOPClassUID":
        value = "\\".join(_uid_by_keyword().get(v, v) for v in value.split("\\"))
    return MatchKey(keyword=keyword, tag=tag, value=value)


def parse_cron(text: str, what: str) -> str:
    """A 5-field crontab expression, checked by APScheduler's own reader."""
    fields = text.split()
    if len(fields) != _CRON_FIELDS:
        raise InvalidValue(
            f"{what}: {text!r} is not a cron expression of 5 fields "
            f"(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')"
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
    except ValueError as exc:
        raise InvalidValue(f"{what}: {text!r}: {exc}") from None
    return " ".join(fields)


def _command(text: str, what: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(text, comments=False))
    except ValueError as exc:
        raise InvalidValue(f"{what}: {exc}") from None
    if not argv:
        raise InvalidValue(f"{what} needs a value")
    return argv


def _value(what: str, rest: str) -> str:
    """The extension keywords' value rule, except that ``(`` does not quote: it starts a
    tag, as in ``(0010,0010)=DOE*``."""
    if rest.lstrip()[:1] in ("(", ")"):
        rest = re.split(r"\s#", rest.strip(), maxsplit=1)[0].strip()
        if not rest:
            raise InvalidValue(f"{what} needs a value")
        return rest
    return line_value(what, rest)


@dataclass
class _Entry:
    line: int
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Attribute:
    field: str
    convert: Callable[[str, str, Path], Any]
    repeat: bool = False


def _one_of(*choices: str) -> Callable[[str, str, Path], str]:
    def convert(text: str, what: str, base: Path) -> str:
        if text not in choices:
            raise InvalidValue(f"{what}: {text!r} is not {' or '.join(choices)}")
        return text

    return convert


def _anonymize(text: str, what: str, base: Path) -> tuple[str, ...]:
    argv = _command(text, what)
    if argv[0] in ("basic", "yes"):
        argv = argv[1:]
    for word in argv:
        if not word.startswith("-"):
            raise InvalidValue(f"{what}: {word!r} is not an option (basic, then --flags)")
    return argv


def _secret(text: str, what: str, base: Path) -> str:
    return text


_TRIGGER_ATTRIBUTES = {
    "Event": _Attribute("event", _one_of("ingest", "stable")),
    "Match": _Attribute("match", lambda t, w, b: parse_match(t, w), repeat=True),
    "Job": _Attribute("job", lambda t, w, b: _command(t, w)),
}
_ROUTE_ATTRIBUTES = {
    "Source": _Attribute("source", lambda t, w, b: check_ae_title(t, w)),
    "Destination": _Attribute("destination", lambda t, w, b: check_ae_title(t, w)),
    "Schedule": _Attribute("schedule", lambda t, w, b: parse_cron(t, w)),
    "Trigger": _Attribute("trigger", _one_of("stable")),
    "Filter": _Attribute("filter", lambda t, w, b: parse_match(t, w), repeat=True),
    "Select": _Attribute("select", _one_of("new", "all")),
    "Anonymize": _Attribute("anonymize", _anonymize),
    "Convert": _Attribute("convert", lambda t, w, b: _command(t, w)),
    "Secret": _Attribute("secret", _secret),
    "SecretFile": _Attribute("secret_file", lambda t, w, b: resolve_path(t, b)),
    "MaxAttempts": _Attribute("max_attempts", lambda t, w, b: parse_int(t, w, 1, 100)),
}
_TABLES = {"TriggerTable": _TRIGGER_ATTRIBUTES, "RouteTable": _ROUTE_ATTRIBUTES}
_REQUIRED = {"TriggerTable": ("Event", "Job"), "RouteTable": ("Source", "Destination")}
_WHAT = {"TriggerTable": "trigger", "RouteTable": "route"}


class PipelineTables:
    """Collects TriggerTable and RouteTable rows, then builds the entries.

    ``row()`` raises ``InvalidValue`` (the reader adds file and line); ``build()`` raises
    ``(line, message)`` pairs as ``EntryError``, since an entry spans several lines.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.entries: dict[str, dict[str, _Entry]] = {name: {} for name in _TABLES}

    def row(self, table: str, number: int, text: str) -> None:
        match = _ROW.match(text)
        what = _WHAT[table]
        if match is None or not match[1]:
            raise InvalidValue(f"{table} row is not name.Attribute = value")
        head = match[1]
        name, dot, attribute = head.rpartition(".")
        if not dot or not name:
            example = "thumbs.Event" if what == "trigger" else "research.Source"
            raise InvalidValue(f"{head!r} is not name.Attribute (e.g. {example})")
        if not _NAME.fullmatch(name):
            raise InvalidValue(
                f"{what} name {name!r}: letters, digits, '_' and '-', at most 48 characters"
            )
        attributes = _TABLES[table]
        spec = attributes.get(attribute)
        if spec is None:
            hint = next((a for a in attributes if a.lower() == attribute.lower()), None)
            known = (
                f"(attributes are case-sensitive: {hint})"
                if hint
                else (f"(known: {', '.join(attributes)})")
            )
            raise InvalidValue(f"{what} {name}: unknown attribute {attribute!r} {known}")
        where = f"{what} {name}: {attribute}"
        value = spec.convert(_value(f"{name}.{attribute}", match[2]), where, self.base)
        entry = self.entries[table].setdefault(name, _Entry(number))
        if spec.repeat:
            entry.values.setdefault(spec.field, []).append(value)
        else:
            entry.values[spec.field] = value

    def build(self, settings_values: dict[str, Any]) -> dict[str, Any]:
        """``triggers`` and ``routes`` for ``Settings``; checks what needs the other tables."""
        out: dict[str, Any] = {}
        for table, entries in self.entries.items():
            built = []
            for name, entry in entries.items():
                missing = [
                    a for a in _REQUIRED[table] if _TABLES[table][a].field not in entry.values
                ]
                if missing:
                    raise EntryError(
                        entry.line, f"{_WHAT[table]} {name}: missing {', '.join(missing)}"
                    )
                values = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in entry.values.items()
                }
                if table == "TriggerTable":
                    built.append(TriggerEntry(name=name, line=entry.line, **values))
                else:
                    built.append(self._route(name, entry, values, settings_values))
            if built:
                out["triggers" if table == "TriggerTable" else "routes"] = tuple(built)
        return out

    @staticmethod
    def _route(
        name: str, entry: _Entry, values: dict[str, Any], settings_values: dict[str, Any]
    ) -> RouteEntry:
        def fail(message: str) -> EntryError:
            return EntryError(entry.line, f"route {name}: {message}")

        if "secret" in values and "secret_file" in values:
            raise fail("give Secret or SecretFile, not both")
        if "anonymize" in values and not ("secret" in values or "secret_file" in values):
            raise fail(
                "Anonymize needs Secret or SecretFile: the same secret keeps pseudonyms and "
                "new UIDs consistent from one run to the next"
            )
        if any(key.keyword in ("CallingAE", "CalledAE") for key in values.get("filter", ())):
            raise fail("Filter takes DICOM keys; the source AE is the route's Source")
        probe = Settings(
            hosts=settings_values.get("hosts", {}), ae_table=settings_values.get("ae_table", ())
        )
        if probe.ae(values["source"]) is None:
            raise fail(f"Source {values['source']!r} is not an AE title of the AETable")
        if probe.move_destination(values["destination"]) is None:
            raise fail(
                f"Destination {values['destination']!r} is neither an AETable peer nor in "
                f"the HostTable (a route needs its host and port)"
            )
        return RouteEntry(name=name, line=entry.line, **values)


class EntryError(Exception):
    """An entry as a whole is wrong: ``line`` is its first line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.line = line
        self.message = message
