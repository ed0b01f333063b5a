"""C-FIND identifier -> index query, with the matching rules of PS3.4 C.2.2.2.

An identifier is parsed once into ``Constraint`` objects.  Each constraint offers two
things (as Orthanc's ``DicomTagConstraint`` does): a coarse SQL predicate when the key is an
indexed column (to narrow the rows fetched), and ``matches(values)`` for the exact DICOM
semantics in Python, applied to every candidate.  So SQL never decides alone, and quirks of a
backend (SQLite's case-insensitive LIKE, for one) cannot change a result.

Matching (PS3.4 C.2.2.2):
- universal: an empty value matches everything;
- single value: exact; for PN the comparison ignores case (as dcmqrscp and Orthanc do);
- wildcard: ``*`` and ``?`` (not for DA/TM/DT/UI); ``%`` and ``_`` are literal characters;
- range: ``A-B``, ``A-``, ``-B`` for DA, TM and DT; StudyDate and StudyTime given together
  as ranges match as one combined date-time range;
- UID list: ``\\``-separated UIDs;
- sequence: an item of keys matches when one stored item matches all its non-empty keys;
- a multi-valued stored attribute matches when any of its values does.

Values are compared as decoded Unicode: the identifier is decoded with its own Specific
Character Set and the index keeps decoded values, so a UTF-8 query finds a Latin-1 name.

Exceptions::

    QueryError
     └── InvalidIdentifierError    the identifier cannot be understood (C-FIND 0xA900)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from storage.header import level_of_keyword
from storage.models import Instance, Patient, Series, Study

LEVEL_ORDER = {"PATIENT": 0, "STUDY": 1, "SERIES": 2, "IMAGE": 3}
LEVEL_MODEL = {"PATIENT": Patient, "STUDY": Study, "SERIES": Series, "IMAGE": Instance}

PATIENT_ROOT = "PATIENT"
STUDY_ROOT = "STUDY"

#: keyword -> (level, column) for the indexed keys.
COLUMNS: dict[str, tuple[str, Any]] = {
    "PatientID": ("PATIENT", Patient.patient_id),
    "IssuerOfPatientID": ("PATIENT", Patient.issuer_of_patient_id),
    "PatientName": ("PATIENT", Patient.patient_name_key),
    "PatientBirthDate": ("PATIENT", Patient.patient_birth_date),
    "PatientSex": ("PATIENT", Patient.patient_sex),
    "StudyInstanceUID": ("STUDY", Study.study_instance_uid),
    "StudyDate": ("STUDY", Study.study_date),
    "StudyTime": ("STUDY", Study.study_time),
    "AccessionNumber": ("STUDY", Study.accession_number),
    "StudyID": ("STUDY", Study.study_id),
    "StudyDescription": ("STUDY", Study.study_description),
    "SeriesInstanceUID": ("SERIES", Series.series_instance_uid),
    "Modality": ("SERIES", Series.modality),
    "SeriesNumber": ("SERIES", Series.series_number),
    "SeriesDate": ("SERIES", Series.series_date),
    "SeriesDescription": ("SERIES", Series.series_description),
    "SOPInstanceUID": ("IMAGE", Instance.sop_instance_uid),
    "SOPClassUID": ("IMAGE", Instance.sop_class_uid),
    "InstanceNumber": ("IMAGE", Instance.instance_number),
}

#: Keys computed from the index, not stored in any file (PS3.4 C.3 "optional keys").
COMPUTED = {
    "NumberOfPatientRelatedStudies",
    "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
    "ModalitiesInStudy",
    "SOPClassesInStudy",
    "InstanceAvailability",
    "RetrieveAETitle",
}
_NOT_MATCHED = {"QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC"}
_NO_WILDCARD_VRS = {"DA", "TM", "DT", "UI"}
_RANGE_VRS = {"DA", "TM", "DT"}


class QueryError(Exception):
    """A query could not be run."""


class InvalidIdentifierError(QueryError):
    """The identifier is malformed (bad level, bad range, unknown model)."""


# -- value helpers -----------------------------------------------------------------------


def json_values(item: dict[str, Any] | None) -> list[str]:
    """The values of one DICOM JSON element as strings (PN: every component group)."""
    if not item:
        return []
    values = item.get("Value") or []
    out: list[str] = []
    for value in values:
        if isinstance(value, dict):
            if item.get("vr") == "PN":
                groups = [value.get(k, "") for k in ("Alphabetic", "Ideographic", "Phonetic")]
                while groups and not groups[-1]:
                    groups.pop()
                out.append("=".join(groups))
            continue
        out.append(str(value))
    return out


def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts) + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like_pattern(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _pad_time(value: str, upper: bool) -> str:
    """Bring TM ``hh``, ``hhmm``, ``hhmmss[.f]`` to a comparable ``hhmmss.ffffff``."""
    value = value.replace(":", "")
    main, _, frac = value.partition(".")
    filler = "595959" if upper else "000000"
    main = (main + filler[len(main) :])[:6]
    frac = (frac + ("999999" if upper else "000000"))[:6]
    return f"{main}.{frac}"


def _pad_datetime(value: str, upper: bool) -> str:
    value = value.split("+")[0].split("-")[0] if len(value) > 8 else value
    date, time_part = value[:8], value[8:]
    date = (date + ("1231" if upper else "0101")[len(date) - 4 :])[:8] if len(date) < 8 else date
    return date + _pad_time(time_part, upper)


def _normalise(vr: str, value: str, upper: bool) -> str:
    if vr == "TM":
        return _pad_time(value, upper)
    if vr == "DT":
        return _pad_datetime(value, upper)
    return value


# -- constraints -------------------------------------------------------------------------


@dataclass
class Constraint:
    """One matching key of an identifier."""

    keyword: str
    tag: int
    vr: str
    level: str
    kind: str  # single | wildcard | range | list | sequence
    value: str = ""
    values: tuple[str, ...] = ()
    low: str = ""
    high: str = ""
    items: list[Constraint] = field(default_factory=list)

    @property
    def ignore_case(self) -> bool:
        return self.vr == "PN"

    def matches(self, stored: dict[str, Any] | None) -> bool:
        """DICOM matching of the stored element (DICOM JSON) against this key."""
        if self.kind == "sequence":
            items = (stored or {}).get("Value") or []
            return any(
                all(sub.matches(item.get(f"{sub.tag:08X}")) for sub in self.items) for item in items
            )
        candidates = json_values(stored)
        if not candidates:
            return False
        return any(self._match_one(candidate) for candidate in candidates)

    def _match_one(self, candidate: str) -> bool:
        candidate = candidate.strip()
        if self.kind == "list":
            return candidate in self.values
        if self.kind == "range":
            low = _normalise(self.vr, self.low, upper=False) if self.low else ""
            high = _normalise(self.vr, self.high, upper=True) if self.high else ""
            value = _normalise(self.vr, candidate, upper=False)
            if self.vr == "DA":
                value = candidate[:8]
            return (not low or value >= low) and (not high or value <= high)
        if self.kind == "wildcard":
            regex = _wildcard_regex(self.value, self.ignore_case)
            return bool(regex.match(candidate)) or (
                self.vr == "PN" and bool(regex.match(candidate.split("=")[0]))
            )
        if self.vr == "PN":
            wanted = self.value.upper()
            return candidate.upper() == wanted or candidate.split("=")[0].upper() == wanted
        if self.vr in ("TM",):
            return _normalise("TM", candidate, False) == _normalise("TM", self.value, False)
        return candidate == self.value

    def sql(self) -> ColumnElement[bool] | None:
        """A coarse SQL predicate for an indexed key (a superset of the exact matches)."""
        if self.keyword not in COLUMNS or self.kind == "sequence":
            return None
        _level, column = COLUMNS[self.keyword]
        if self.kind == "list":
            return column.in_(list(self.values))
        if self.kind == "range":
            if self.vr != "DA":
                return None
            clauses = []
            if self.low:
                clauses.append(column >= self.low)
            if self.high:
                clauses.append(column <= self.high)
            return and_(*clauses) if clauses else None
        if self.keyword == "PatientName":
            pattern = self.value.upper()
        else:
            pattern = self.value
        if self.kind == "wildcard":
            if pattern.strip("*") == "":
                return None
            return column.like(_like_pattern(pattern), escape="\\")
        if self.vr == "TM":
            return None
        if self.keyword == "PatientName":
            # stored names may carry ideographic groups: the exact check happens in Python
            return or_(column == pattern, column.like(_like_pattern(pattern) + "=%", escape="\\"))
        return column == pattern


def _make_constraint(elem: DataElement, level: str) -> Constraint | None:
    keyword = elem.keyword or keyword_for_tag(elem.tag) or ""
    vr = elem.VR
    if elem.tag.is_private or elem.tag.group == 0x0002 or keyword in _NOT_MATCHED:
        return None
    if vr == "SQ":
        if not elem.value:
            return None
        subs = []
        for sub in elem.value[0]:
            constraint = _make_constraint(sub, level)
            if constraint is not None:
                subs.append(constraint)
        if not subs:
            return None
        return Constraint(keyword, int(elem.tag), vr, level, "sequence", items=subs)
    raw = elem.value
    if raw is None or raw == "" or (isinstance(raw, list | tuple) and not raw):
        return None
    if isinstance(raw, list | tuple) or type(raw).__name__ == "MultiValue":
        values = tuple(str(v).strip() for v in raw)
    else:
        values = (str(raw).strip(),)
    if vr == "UI" or (len(values) > 1 and vr not in _RANGE_VRS):
        return Constraint(keyword, int(elem.tag), vr, level, "list", values=values)
    value = values[0]
    if value in ("", "*"):
        return None
    if vr in _RANGE_VRS and "-" in value:
        low, high = _split_dt_range(value) if vr == "DT" else value.split("-", 1)
        if vr == "DA" and not all(re.fullmatch(r"(\d{8})?", part) for part in (low, high)):
            raise InvalidIdentifierError(f"bad date range for {keyword}: {value!r}")
        return Constraint(keyword, int(elem.tag), vr, level, "range", value, low=low, high=high)
    if vr not in _NO_WILDCARD_VRS and ("*" in value or "?" in value):
        return Constraint(keyword, int(elem.tag), vr, level, "wildcard", value)
    return Constraint(keyword, int(elem.tag), vr, level, "single", value)


def _split_dt_range(value: str) -> tuple[str, str]:
    # DT values may carry a "-hhmm" UTC offset; the range hyphen is the one that separates
    # two values, i.e. the one followed by a digit run of date length or the end.
    match = re.fullmatch(r"([^-]*(?:[+-]\d{4})?)-(.*)", value)
    if not match:
        return value, value
    return match.group(1), match.group(2)


@dataclass
class Query:
    """A parsed identifier: the level, its constraints, and the keys to return."""

    level: str
    root: str
    constraints: list[Constraint]
    return_keys: list[DataElement]
    combined_datetime: tuple[Constraint, Constraint] | None = None


def parse_identifier(identifier: Dataset, root: str = PATIENT_ROOT) -> Query:
    """Turn a C-FIND identifier into a ``Query`` (raises ``InvalidIdentifierError``)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVEL_ORDER:
        raise InvalidIdentifierError(f"QueryRetrieveLevel {level!r} is not valid")
    if root == STUDY_ROOT and level == "PATIENT":
        raise InvalidIdentifierError("the Study Root model has no PATIENT level")
    constraints: list[Constraint] = []
    return_keys: list[DataElement] = []
    for elem in identifier:
        if elem.tag.group == 0x0002 or elem.tag.element == 0:
            continue
        return_keys.append(elem)
        keyword = elem.keyword
        if keyword in COMPUTED and keyword != "ModalitiesInStudy":
            continue
        key_level = level_of_keyword(keyword) if keyword else "IMAGE"
        if keyword in COLUMNS:
            key_level = COLUMNS[keyword][0]
        if keyword == "ModalitiesInStudy":
            key_level = "STUDY"
        if LEVEL_ORDER[key_level] > LEVEL_ORDER[level]:
            continue  # a key below the query level is returned empty, not matched
        try:
            constraint = _make_constraint(elem, key_level)
        except (ValueError, TypeError) as exc:
            raise InvalidIdentifierError(f"cannot read key {keyword or elem.tag}: {exc}") from exc
        if constraint is not None:
            constraints.append(constraint)
    query = Query(level, root, constraints, return_keys)
    date = next((c for c in constraints if c.keyword == "StudyDate" and c.kind == "range"), None)
    time = next((c for c in constraints if c.keyword == "StudyTime" and c.kind == "range"), None)
    if date is not None and time is not None:
        query.combined_datetime = (date, time)
    return query


# -- execution ---------------------------------------------------------------------------


@dataclass
class Match:
    """One matching entity: the rows of its level and of the levels above."""

    patient: Patient
    study: Study | None = None
    series: Series | None = None
    instance: Instance | None = None

    def row(self, level: str) -> Any:
        return {
            "PATIENT": self.patient,
            "STUDY": self.study,
            "SERIES": self.series,
            "IMAGE": self.instance,
        }[level]


def _base_select(level: str) -> Select[Any]:
    if level == "PATIENT":
        return select(Patient)
    if level == "STUDY":
        return select(Study, Patient).join(Patient, Study.patient_pk == Patient.pk)
    if level == "SERIES":
        return (
            select(Series, Study, Patient)
            .join(Study, Series.study_pk == Study.pk)
            .join(Patient, Study.patient_pk == Patient.pk)
        )
    return (
        select(Instance, Series, Study, Patient)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
    )


def _modalities_sql(constraint: Constraint) -> ColumnElement[bool]:
    sub = select(Series.pk).where(Series.study_pk == Study.pk)
    if constraint.kind in ("list", "single"):
        values = list(constraint.values) or [constraint.value]
        sub = sub.where(Series.modality.in_(values))
    elif constraint.kind == "wildcard":
        sub = sub.where(Series.modality.like(_like_pattern(constraint.value), escape="\\"))
    return exists(sub)


def run(session: Session, ae_title: str, query: Query, limit: int | None = None) -> Iterator[Match]:
    """Yield the entities of ``ae_title`` that match ``query``, in a stable order."""
    model = LEVEL_MODEL[query.level]
    stmt = _base_select(query.level)
    # Every joined level gets the AE predicate: the indexes all start with ae_title, so a
    # PatientID or PatientName key can use the patient indexes instead of a scan.
    for level, level_model in LEVEL_MODEL.items():
        if LEVEL_ORDER[level] <= LEVEL_ORDER[query.level]:
            stmt = stmt.where(level_model.ae_title == ae_title)
    python_checks: list[Constraint] = []
    for constraint in query.constraints:
        if constraint.keyword == "ModalitiesInStudy":
            stmt = stmt.where(_modalities_sql(constraint))
            continue
        predicate = constraint.sql()
        if predicate is not None:
            stmt = stmt.where(predicate)
        python_checks.append(constraint)
    stmt = stmt.order_by(model.pk)
    if limit is not None and not python_checks:
        stmt = stmt.limit(limit)
    produced = 0
    for row in session.execute(stmt).yield_per(500):
        match = _as_match(query.level, row)
        if not all(_check(match, constraint, query) for constraint in python_checks):
            continue
        yield match
        produced += 1
        if limit is not None and produced >= limit:
            return


def _as_match(level: str, row: Any) -> Match:
    if level == "PATIENT":
        return Match(patient=row[0])
    if level == "STUDY":
        return Match(patient=row[1], study=row[0])
    if level == "SERIES":
        return Match(patient=row[2], study=row[1], series=row[0])
    return Match(patient=row[3], study=row[2], series=row[1], instance=row[0])


def _check(match: Match, constraint: Constraint, query: Query) -> bool:
    if query.combined_datetime and constraint in query.combined_datetime:
        if constraint is query.combined_datetime[1]:
            return True  # checked together with the date
        return _combined_datetime_match(match, *query.combined_datetime)
    if constraint.keyword == "ModalitiesInStudy":
        return True  # decided in SQL
    row = match.row(constraint.level)
    if row is None:
        return True
    return constraint.matches((row.attrs or {}).get(f"{constraint.tag:08X}"))


def _combined_datetime_match(match: Match, date: Constraint, time: Constraint) -> bool:
    """PS3.4 C.2.2.2.5.1: StudyDate and StudyTime ranges as one date-time range."""
    attrs = match.study.attrs if match.study else {}
    stored_date = (json_values(attrs.get(f"{date.tag:08X}")) or [""])[0]
    stored_time = (json_values(attrs.get(f"{time.tag:08X}")) or [""])[0]
    if not stored_date:
        return False
    value = stored_date[:8] + _pad_time(stored_time or "000000", False)
    low = date.low + _pad_time(time.low, False) if date.low else ""
    high = date.high + _pad_time(time.high, True) if date.high else ""
    return (not low or value >= low) and (not high or value <= high)


# -- responses ---------------------------------------------------------------------------


def computed_values(
    session: Session, keywords: set[str], matches: Sequence[Match]
) -> dict[tuple[str, int], list[str] | int]:
    """Values of the computed keys (counts, ModalitiesInStudy...) for a batch of matches.

    One grouped query per requested key for the whole batch, not one per match: answering
    20 studies with their instance counts must not cost 20 round trips.  Keys are
    ``(keyword, pk of the row the value belongs to)``.
    """
    out: dict[tuple[str, int], list[str] | int] = {}
    patients = {m.patient.pk for m in matches}
    studies = {m.study.pk for m in matches if m.study is not None}
    series = {m.series.pk for m in matches if m.series is not None}
    count = func.count

    def counts(keyword: str, group: Any, stmt: Select[Any], pks: set[int]) -> None:
        for pk in pks:
            out[(keyword, pk)] = 0
        if pks:
            for pk, n in session.execute(stmt.where(group.in_(pks)).group_by(group)):
                out[(keyword, pk)] = int(n)

    def distinct_values(keyword: str, stmt: Select[Any], pks: set[int]) -> None:
        found: dict[int, set[str]] = {pk: set() for pk in pks}
        if pks:
            for pk, value in session.execute(stmt.distinct()):
                if value:
                    found[pk].add(value)
        for pk, values in found.items():
            out[(keyword, pk)] = sorted(values)

    if "NumberOfPatientRelatedStudies" in keywords:
        counts(
            "NumberOfPatientRelatedStudies",
            Study.patient_pk,
            select(Study.patient_pk, count()),
            patients,
        )
    if "NumberOfPatientRelatedSeries" in keywords:
        counts(
            "NumberOfPatientRelatedSeries",
            Study.patient_pk,
            select(Study.patient_pk, count()).select_from(Series).join(Study),
            patients,
        )
    if "NumberOfPatientRelatedInstances" in keywords:
        counts(
            "NumberOfPatientRelatedInstances",
            Study.patient_pk,
            select(Study.patient_pk, count()).select_from(Instance).join(Series).join(Study),
            patients,
        )
    if "NumberOfStudyRelatedSeries" in keywords:
        counts(
            "NumberOfStudyRelatedSeries", Series.study_pk, select(Series.study_pk, count()), studies
        )
    if "NumberOfStudyRelatedInstances" in keywords:
        counts(
            "NumberOfStudyRelatedInstances",
            Series.study_pk,
            select(Series.study_pk, count()).select_from(Instance).join(Series),
            studies,
        )
    if "NumberOfSeriesRelatedInstances" in keywords:
        counts(
            "NumberOfSeriesRelatedInstances",
            Instance.series_pk,
            select(Instance.series_pk, count()),
            series,
        )
    if "ModalitiesInStudy" in keywords:
        distinct_values(
            "ModalitiesInStudy",
            select(Series.study_pk, Series.modality).where(Series.study_pk.in_(studies)),
            studies,
        )
    if "SOPClassesInStudy" in keywords:
        distinct_values(
            "SOPClassesInStudy",
            select(Series.study_pk, Instance.sop_class_uid)
            .join(Series, Instance.series_pk == Series.pk)
            .where(Series.study_pk.in_(studies)),
            studies,
        )
    return out


def _computed_owner(keyword: str, match: Match) -> int | None:
    """The pk of the row a computed key belongs to (patient, study or series)."""
    if keyword.startswith("NumberOfPatientRelated"):
        return match.patient.pk
    if keyword.startswith("NumberOfSeriesRelated"):
        return match.series.pk if match.series is not None else None
    return match.study.pk if match.study is not None else None


def responses(
    session: Session,
    ae_title: str,
    query: Query,
    retrieve_ae_title: str,
    charsets: Sequence[str] = (),
    batch: int = 100,
) -> Iterator[Dataset]:
    """The response identifiers of ``query``, computed keys fetched per batch of matches."""
    wanted = {e.keyword for e in query.return_keys if e.keyword in COMPUTED}
    pending: list[Match] = []

    def flush() -> Iterator[Dataset]:
        values = computed_values(session, wanted, pending) if wanted else {}
        for match in pending:
            yield build_response(session, query, match, retrieve_ae_title, charsets, values)
        pending.clear()

    for match in run(session, ae_title, query):
        pending.append(match)
        if len(pending) >= batch:
            yield from flush()
    yield from flush()


def build_response(
    session: Session,
    query: Query,
    match: Match,
    retrieve_ae_title: str,
    charsets: Sequence[str] = (),
    computed: dict[tuple[str, int], list[str] | int] | None = None,
) -> Dataset:
    """The response identifier: exactly the keys asked for, filled from the index.

    ``charsets`` are the Specific Character Sets to try, in order (the request's, the
    configured one...); the first that can represent every value is used, else UTF-8.
    """
    json_model: dict[str, Any] = {}
    for elem in query.return_keys:
        tag = f"{int(elem.tag):08X}"
        keyword = elem.keyword
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        vr = elem.VR if elem.VR not in ("UN", None) else _dictionary_vr(int(elem.tag))
        if keyword == "RetrieveAETitle":
            json_model[tag] = {"vr": "AE", "Value": [retrieve_ae_title]}
            continue
        if keyword == "InstanceAvailability":
            json_model[tag] = {"vr": vr, "Value": ["ONLINE"]}
            continue
        if keyword in COMPUTED:
            if computed is None:
                wanted = {e.keyword for e in query.return_keys if e.keyword in COMPUTED}
                computed = computed_values(session, wanted, [match])
            owner = _computed_owner(keyword, match)
            value = computed.get((keyword, owner)) if owner is not None else None
            if isinstance(value, int):
                json_model[tag] = {"vr": vr, "Value": [value]}
            elif value:
                json_model[tag] = {"vr": vr, "Value": value}
            else:
                json_model[tag] = {"vr": vr}
            continue
        stored = _stored_element(match, keyword, tag, query.level)
        if stored is None:
            json_model[tag] = {"vr": vr}
        elif vr == "SQ" and elem.value:
            json_model[tag] = _filter_sequence(stored, elem.value[0])
        else:
            json_model[tag] = stored
    ds = Dataset.from_json(json_model)
    ds.QueryRetrieveLevel = query.level
    texts = _texts(ds)
    if any(not text.isascii() for text in texts):
        ds.SpecificCharacterSet = choose_charset(texts, charsets)
    return ds


def choose_charset(texts: Sequence[str], candidates: Sequence[str]) -> str:
    """The first candidate Specific Character Set that encodes every text, else UTF-8."""
    for candidate in candidates:
        codec = python_encoding.get(candidate.strip())
        if not codec or candidate.strip().startswith("ISO 2022"):
            continue
        try:
            for text in texts:
                text.encode(codec)
        except UnicodeEncodeError:
            continue
        return candidate.strip()
    return "ISO_IR 192"


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _stored_element(match: Match, keyword: str, tag: str, level: str) -> dict[str, Any] | None:
    key_level = level_of_keyword(keyword) if keyword else "IMAGE"
    if keyword in COLUMNS:
        key_level = COLUMNS[keyword][0]
    if LEVEL_ORDER[key_level] > LEVEL_ORDER[level]:
        return None
    row = match.row(key_level)
    if row is None:
        return None
    found = (row.attrs or {}).get(tag)
    if found is None and key_level != level:
        # an attribute that the standard puts elsewhere but this file kept at our level
        own = match.row(level)
        found = (own.attrs or {}).get(tag) if own is not None else None
    return found


def _filter_sequence(stored: dict[str, Any], request_item: Dataset) -> dict[str, Any]:
    wanted = {f"{int(e.tag):08X}" for e in request_item}
    if not wanted:
        return stored
    items = [{k: v for k, v in item.items() if k in wanted} for item in (stored.get("Value") or [])]
    return {"vr": "SQ", "Value": items}


def _texts(ds: Dataset) -> list[str]:
    out = []
    for elem in ds.iterall():
        value = elem.value
        if isinstance(value, str) or elem.VR == "PN":
            if value is not None:
                out.append(str(value))
        elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            out += [str(v) for v in value if isinstance(v, str)]
    return out
