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

import functools
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session

from storage.header import index_value, kept_length, level_of_keyword
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

    def sql(self, dialect: str = "") -> ColumnElement[bool] | None:
        """A coarse SQL predicate for an indexed key (a superset of the exact matches).

        ``dialect`` is the SQLAlchemy dialect name: a wildcard with a literal prefix
        (``DOE*``) becomes a range on the column, which a plain index serves on SQLite (its
        LIKE ignores case, so it never uses one) and a ``text_pattern_ops`` index serves on
        PostgreSQL through the pattern operators (collation-independent, bound-parameter
        friendly, unlike LIKE in a generic plan).
        """
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
        # Over-long values are cut in their column (storage.header.index_value); the exact
        # match is always decided on the whole value in Python, so SQL only must not lose them.
        kept = kept_length(column)
        if self.kind == "wildcard":
            if pattern.strip("*") == "":
                return None
            prefix = _literal_prefix(pattern)
            if kept is not None and len(prefix) >= kept:
                prefix = prefix[: kept - 1]
                pattern = prefix + "*"
            like = column.like(_like_pattern(pattern), escape="\\")
            if not prefix:
                return like if kept is None else or_(like, func.length(column) >= kept)
            narrowed = _prefix_range(column, prefix, dialect)
            if pattern == prefix + "*":
                return narrowed  # the range is the whole predicate
            if kept is not None:  # a cut value may have lost what the rest must match
                like = or_(like, func.length(column) >= kept)
            return and_(narrowed, like)
        if self.vr == "TM":
            return None
        if kept is not None and len(pattern) >= kept:
            pattern = index_value(column, pattern)
        if self.keyword == "PatientName":
            # stored names may carry ideographic groups: the exact check happens in Python
            return or_(column == pattern, column.like(_like_pattern(pattern) + "=%", escape="\\"))
        return column == pattern


def _literal_prefix(pattern: str) -> str:
    """The characters of a wildcard pattern before its first ``*`` or ``?``."""
    cut = len(pattern)
    for wildcard in ("*", "?"):
        found = pattern.find(wildcard)
        if found >= 0:
            cut = min(cut, found)
    return pattern[:cut]


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (code points)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        if 0xD7FF == last:
            return prefix[:-1] + chr(0xE000)  # skip the surrogates
        prefix = prefix[:-1]
    return None


def _prefix_range(column: Any, prefix: str, dialect: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as a range an index can serve.

    SQLite compares text with BINARY (UTF-8 bytes: code point order); on PostgreSQL the
    ``~>=~``/``~<~`` operators compare bytes whatever the database collation is.
    """
    upper = _prefix_upper_bound(prefix)
    if dialect == "postgresql":
        low = column.op("~>=~", is_comparison=True)(prefix)
        if upper is None:
            return low
        return and_(low, column.op("~<~", is_comparison=True)(upper))
    if upper is None:
        return column >= prefix
    return and_(column >= prefix, column < upper)


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


class IndexRow(SimpleNamespace):
    """One index row of a level (``pk``, ``attrs`` and its other columns as attributes)."""

    pk: int
    attrs: dict[str, Any]


@dataclass
class Match:
    """One matching entity: the rows of its level and of the levels above."""

    patient: Any
    study: Any = None
    series: Any = None
    instance: Any = None
    #: computed keys fetched with the match (keyword -> count or sorted values)
    computed: dict[str, list[str] | int] = field(default_factory=dict)

    def row(self, level: str) -> Any:
        return {
            "PATIENT": self.patient,
            "STUDY": self.study,
            "SERIES": self.series,
            "IMAGE": self.instance,
        }[level]


_LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_TABLES: dict[str, Any] = {level: LEVEL_MODEL[level].__table__ for level in _LEVELS}
_MATCH_FIELDS = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "instance"}

#: computed key -> the level whose row it belongs to
_COMPUTED_OWNER = {
    "NumberOfPatientRelatedStudies": "PATIENT",
    "NumberOfPatientRelatedSeries": "PATIENT",
    "NumberOfPatientRelatedInstances": "PATIENT",
    "NumberOfStudyRelatedSeries": "STUDY",
    "NumberOfStudyRelatedInstances": "STUDY",
    "NumberOfSeriesRelatedInstances": "SERIES",
    "ModalitiesInStudy": "STUDY",
    "SOPClassesInStudy": "STUDY",
}


def _levels_to(level: str) -> tuple[str, ...]:
    return _LEVELS[: LEVEL_ORDER[level] + 1]


def _from_clause(level: str) -> Any:
    """The query level's table joined up to the patients (parents by primary key)."""
    patients, studies, series, instances = (_TABLES[name] for name in _LEVELS)
    if level == "PATIENT":
        return patients
    if level == "STUDY":
        return studies.join(patients, studies.c.patient_pk == patients.c.pk)
    joined = series.join(studies, series.c.study_pk == studies.c.pk).join(
        patients, studies.c.patient_pk == patients.c.pk
    )
    if level == "SERIES":
        return joined
    return instances.join(joined, instances.c.series_pk == series.c.pk)


def _aggregate_distinct(column: Any, dialect: str) -> Any:
    """Distinct non-empty values joined by ``,`` (CS and UI values never hold a comma)."""
    if dialect == "postgresql":
        return func.string_agg(column.distinct(), literal_column("','"))
    return func.group_concat(column.distinct())


@functools.lru_cache(maxsize=64)
def _computed_column(keyword: str, dialect: str) -> Any:
    """A correlated subquery giving ``keyword`` for the outer row that owns it.

    Built once per key and dialect (statements are immutable; building the aliases costs
    more than running the subquery).
    """
    studies = _TABLES["STUDY"].alias("c_studies")
    series = _TABLES["SERIES"].alias("c_series")
    instances = _TABLES["IMAGE"].alias("c_instances")
    outer_patient, outer_study, outer_series = (_TABLES[n] for n in _LEVELS[:3])
    count = func.count()
    if keyword == "NumberOfPatientRelatedStudies":
        stmt = select(count).select_from(studies).where(studies.c.patient_pk == outer_patient.c.pk)
    elif keyword == "NumberOfPatientRelatedSeries":
        stmt = (
            select(count)
            .select_from(series.join(studies, series.c.study_pk == studies.c.pk))
            .where(studies.c.patient_pk == outer_patient.c.pk)
        )
    elif keyword == "NumberOfPatientRelatedInstances":
        stmt = (
            select(count)
            .select_from(
                instances.join(series, instances.c.series_pk == series.c.pk).join(
                    studies, series.c.study_pk == studies.c.pk
                )
            )
            .where(studies.c.patient_pk == outer_patient.c.pk)
        )
    elif keyword == "NumberOfStudyRelatedSeries":
        stmt = select(count).select_from(series).where(series.c.study_pk == outer_study.c.pk)
    elif keyword == "NumberOfStudyRelatedInstances":
        stmt = (
            select(count)
            .select_from(instances.join(series, instances.c.series_pk == series.c.pk))
            .where(series.c.study_pk == outer_study.c.pk)
        )
    elif keyword == "NumberOfSeriesRelatedInstances":
        stmt = (
            select(count).select_from(instances).where(instances.c.series_pk == outer_series.c.pk)
        )
    elif keyword == "ModalitiesInStudy":
        stmt = (
            select(_aggregate_distinct(series.c.modality, dialect))
            .select_from(series)
            .where(series.c.study_pk == outer_study.c.pk, series.c.modality != "")
        )
    else:  # SOPClassesInStudy
        stmt = (
            select(_aggregate_distinct(instances.c.sop_class_uid, dialect))
            .select_from(instances.join(series, instances.c.series_pk == series.c.pk))
            .where(series.c.study_pk == outer_study.c.pk, instances.c.sop_class_uid != "")
        )
    owner = _TABLES[_COMPUTED_OWNER[keyword]]
    return stmt.correlate(owner).scalar_subquery().label(f"computed_{keyword}")


def _modalities_sql(constraint: Constraint) -> ColumnElement[bool]:
    sub = select(Series.pk).where(Series.study_pk == Study.pk)
    if constraint.kind in ("list", "single"):
        values = list(constraint.values) or [constraint.value]
        sub = sub.where(Series.modality.in_(values))
    elif constraint.kind == "wildcard":
        sub = sub.where(Series.modality.like(_like_pattern(constraint.value), escape="\\"))
    return exists(sub)


#: Rows per statement of ``run`` on PostgreSQL (keyset pagination on the query level's pk).
PAGE_ROWS = 500


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def run(
    session: Session,
    ae_title: str,
    query: Query,
    limit: int | None = None,
    computed: Sequence[str] = (),
) -> Iterator[Match]:
    """Yield the entities of ``ae_title`` that match ``query``, in a stable order.

    ``computed``: computed keys (``NumberOfStudyRelatedInstances``...) to fetch with each
    match, as correlated subqueries of the same statement (so only for the rows returned).

    The AE predicate goes on the levels that carry a key (every index starts with
    ``ae_title``) and on no other: a level's rows all link to rows of the same AE, and an
    ``ae_title = ?`` term on a level without a key would let SQLite, which has no statistics
    here, scan that level's AE index instead of starting from the selective key.
    """
    dialect = _dialect(session)
    levels = _levels_to(query.level)
    columns: list[Any] = [column for level in levels for column in _TABLES[level].columns]
    widths = [len(_TABLES[level].columns) for level in levels]
    owned = [k for k in computed if LEVEL_ORDER[_COMPUTED_OWNER[k]] <= LEVEL_ORDER[query.level]]
    columns += [_computed_column(keyword, dialect) for keyword in owned]
    stmt = select(*columns).select_from(_from_clause(query.level))
    keyed: set[str] = set()
    python_checks: list[Constraint] = []
    for constraint in query.constraints:
        if constraint.keyword == "ModalitiesInStudy":
            stmt = stmt.where(_modalities_sql(constraint))
            keyed.add("STUDY")
            continue
        predicate = constraint.sql(dialect)
        if predicate is not None:
            stmt = stmt.where(predicate)
            keyed.add(COLUMNS[constraint.keyword][0])
        python_checks.append(constraint)
    for level in keyed or {query.level}:
        stmt = stmt.where(_TABLES[level].c.ae_title == ae_title)
    key = _TABLES[query.level].c.pk
    stmt = stmt.order_by(key)
    page = PAGE_ROWS
    if limit is not None and not python_checks:
        page = min(page, limit)
    names = [[column.name for column in _TABLES[level].columns] for level in levels]
    connection = session.connection()
    # PostgreSQL: keyset pages, one plain statement for an answer of up to PAGE_ROWS
    # matches (a server-side cursor costs DECLARE/FETCH/CLOSE round trips) and memory
    # bounded by a page for a large one.  SQLite: one statement read as it goes (its
    # cursor is lazy and costs no round trip; without statistics it would sort the AE's
    # whole level again for every page of an unconstrained query).
    paged = dialect == "postgresql"
    produced = 0
    last: int | None = None
    while True:
        if paged:
            rows: Any = connection.execute(
                (stmt if last is None else stmt.where(key > last)).limit(page)
            ).all()
        else:
            rows = connection.execute(stmt if page == PAGE_ROWS else stmt.limit(page))
        count = 0
        try:
            for row in rows:
                count += 1
                match = Match(patient=None)
                start = 0
                for level, width, level_names in zip(levels, widths, names, strict=True):
                    values = dict(zip(level_names, row[start : start + width], strict=True))
                    setattr(match, _MATCH_FIELDS[level], IndexRow(**values))
                    start += width
                for keyword, value in zip(owned, row[start:], strict=True):
                    match.computed[keyword] = _computed_value(keyword, value)
                if not all(_check(match, constraint, query) for constraint in python_checks):
                    continue
                yield match
                produced += 1
                if limit is not None and produced >= limit:
                    return
        finally:
            if not paged:
                rows.close()
        if not paged or count < page:
            return
        last = getattr(match, _MATCH_FIELDS[query.level]).pk


def _computed_value(keyword: str, value: Any) -> list[str] | int:
    if keyword in ("ModalitiesInStudy", "SOPClassesInStudy"):
        return sorted({v for v in str(value or "").split(",") if v})
    return int(value or 0)


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
    """The response identifiers of ``query``; computed keys come with each match's row.

    ``batch`` is kept for callers of the earlier API; the computed keys are now correlated
    subqueries of the match statement (one statement per C-FIND, values only for the rows
    returned), so there is nothing left to batch.
    """
    wanted = [e.keyword for e in query.return_keys if e.keyword in _COMPUTED_OWNER]
    for match in run(session, ae_title, query, computed=wanted):
        yield build_response(session, query, match, retrieve_ae_title, charsets)


@dataclass(frozen=True)
class _Slot:
    """How one requested key is filled (worked out once per query, not per match)."""

    tag: int
    hex_tag: str
    keyword: str
    vr: str
    source: str  # retrieve | availability | computed | stored
    level: str = ""
    request_item: Dataset | None = None


def _slots(query: Query) -> list[_Slot]:
    cached = query.__dict__.get("_slots")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    slots: list[_Slot] = []
    for elem in query.return_keys:
        keyword = elem.keyword
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            continue
        tag = int(elem.tag)
        vr = elem.VR if elem.VR not in ("UN", None) else _dictionary_vr(tag)
        hex_tag = f"{tag:08X}"
        if keyword == "RetrieveAETitle":
            slots.append(_Slot(tag, hex_tag, keyword, "AE", "retrieve"))
        elif keyword == "InstanceAvailability":
            slots.append(_Slot(tag, hex_tag, keyword, vr, "availability"))
        elif keyword in COMPUTED:
            slots.append(_Slot(tag, hex_tag, keyword, vr, "computed"))
        else:
            key_level = level_of_keyword(keyword) if keyword else "IMAGE"
            if keyword in COLUMNS:
                key_level = COLUMNS[keyword][0]
            item = elem.value[0] if vr == "SQ" and elem.value else None
            slots.append(_Slot(tag, hex_tag, keyword, vr, "stored", key_level, item))
    query.__dict__["_slots"] = slots
    return slots


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
    Computed keys come from ``match.computed`` (filled by ``run``), else from ``computed``
    (``computed_values`` of a batch), else are fetched for this match alone.
    """
    ds = Dataset()
    texts: list[str] = []
    for slot in _slots(query):
        if slot.source == "retrieve":
            _add(ds, slot.tag, "AE", retrieve_ae_title, texts)
        elif slot.source == "availability":
            _add(ds, slot.tag, slot.vr, "ONLINE", texts)
        elif slot.source == "computed":
            value = _computed_for(session, query, match, slot.keyword, computed)
            if isinstance(value, int):
                _add(ds, slot.tag, slot.vr, str(value), texts)
            elif value:
                _add(ds, slot.tag, slot.vr, list(value), texts)
            else:
                ds.add(DataElement(slot.tag, slot.vr, empty_value_for_VR(slot.vr)))
        else:
            stored = _stored_element(match, slot.hex_tag, slot.level, query.level)
            if stored is None:
                ds.add(DataElement(slot.tag, slot.vr, empty_value_for_VR(slot.vr)))
            elif slot.vr == "SQ" and slot.request_item is not None:
                _add_json(ds, slot.hex_tag, _filter_sequence(stored, slot.request_item), texts)
            else:
                _add_json(ds, slot.hex_tag, stored, texts)
    ds.QueryRetrieveLevel = query.level
    if any(not text.isascii() for text in texts):
        ds.SpecificCharacterSet = choose_charset(texts, charsets)
    return ds


def _computed_for(
    session: Session,
    query: Query,
    match: Match,
    keyword: str,
    computed: dict[tuple[str, int], list[str] | int] | None,
) -> list[str] | int | None:
    if keyword in match.computed:
        return match.computed[keyword]
    if keyword not in _COMPUTED_OWNER:
        return None  # RetrieveAETitle and InstanceAvailability are handled by the caller
    if computed is None:
        wanted = {e.keyword for e in query.return_keys if e.keyword in COMPUTED}
        computed = computed_values(session, wanted, [match])
    owner = _computed_owner(keyword, match)
    return computed.get((keyword, owner)) if owner is not None else None


#: VRs whose DICOM JSON values are plain strings or numbers (or PN objects) and map to
#: pydicom values directly; anything else goes through ``DataElement.from_json``.
_PLAIN_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI"}
    | {"UR", "UT", "SL", "SS", "UL", "US", "SV", "UV", "FL", "FD"}
)
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC"}) | {
    "UI",
    "UR",
    "UT",
}


def _add(ds: Dataset, tag: int, vr: str, value: Any, texts: list[str]) -> None:
    ds.add(DataElement(tag, vr, value))
    if isinstance(value, list):
        texts += [v for v in value if isinstance(v, str)]
    elif isinstance(value, str):
        texts.append(value)


def _add_json(ds: Dataset, hex_tag: str, item: dict[str, Any], texts: list[str]) -> None:
    """Add one stored DICOM JSON element, without ``Dataset.from_json`` for plain VRs."""
    vr = item.get("vr") or _dictionary_vr(int(hex_tag, 16))
    tag = int(hex_tag, 16)
    if vr not in _PLAIN_VRS or "InlineBinary" in item or "BulkDataURI" in item:
        elem = Dataset.from_json({hex_tag: item})[tag]
        ds.add(elem)
        texts += _texts_of(elem)
        return
    values = item.get("Value")
    if not values:
        ds.add(DataElement(tag, vr, empty_value_for_VR(vr)))
        return
    if vr == "PN":
        converted: list[Any] = json_values({"vr": "PN", "Value": values})
    elif vr in _STRING_VRS:
        converted = ["" if v is None else str(v) for v in values]
    elif vr in ("IS", "DS"):
        converted = ["" if v is None else str(v) for v in values]
    else:
        converted = list(values)
    _add(ds, tag, vr, converted[0] if len(converted) == 1 else converted, texts)


def _texts_of(elem: DataElement) -> list[str]:
    out: list[str] = []
    if elem.VR == "SQ":
        for item in elem.value or []:
            out += _texts(item)
        return out
    value = elem.value
    if isinstance(value, str) or elem.VR == "PN":
        if value is not None:
            out.append(str(value))
    elif isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        out += [str(v) for v in value if isinstance(v, str)]
    return out


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


def _stored_element(
    match: Match, hex_tag: str, key_level: str, level: str
) -> dict[str, Any] | None:
    if LEVEL_ORDER[key_level] > LEVEL_ORDER[level]:
        return None
    row = match.row(key_level)
    if row is None:
        return None
    found = (row.attrs or {}).get(hex_tag)
    if found is None and key_level != level:
        # an attribute that the standard puts elsewhere but this file kept at our level
        own = match.row(level)
        found = (own.attrs or {}).get(hex_tag) if own is not None else None
    return found  # type: ignore[no-any-return]


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


# -- encoded responses -------------------------------------------------------------------
#
# A C-FIND answers one identifier per match.  Building a pydicom ``Dataset`` for each (every
# value validated by ``DataElement``) and encoding it with ``write_dataset`` cost about as
# much as the rest of the node's work per match.  The common identifier (text values, all
# ASCII, no sequence) is encoded here straight from the index's DICOM JSON, byte for byte
# what ``write_dataset`` makes of ``build_response`` (tests/storage/test_query_encode.py
# compares them); anything else takes that path.

#: VRs encoded here: text values written as they are (numbers as their strings).
_FAST_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC"}
    | {"UI", "UR", "UT"}
)
#: Explicit VR with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT"})
_IMPLICIT_HEADER = struct.Struct("<HHL")
_EXPLICIT_HEADER = struct.Struct("<HH2sH")
_EXPLICIT_LONG_HEADER = struct.Struct("<HH2s2xL")
_QR_LEVEL_TAG = 0x00080052


def encoded_responses(
    session: Session,
    ae_title: str,
    query: Query,
    retrieve_ae_title: str,
    charsets: Sequence[str] = (),
    implicit_vr: bool = True,
) -> Iterator[bytes]:
    """The response identifiers of ``query``, encoded in Little Endian (Implicit VR unless
    ``implicit_vr`` is False): the bytes ``write_dataset`` makes of ``responses``."""
    wanted = [e.keyword for e in query.return_keys if e.keyword in _COMPUTED_OWNER]
    for match in run(session, ae_title, query, computed=wanted):
        yield encode_response(session, query, match, retrieve_ae_title, charsets, implicit_vr)


def encode_response(
    session: Session,
    query: Query,
    match: Match,
    retrieve_ae_title: str,
    charsets: Sequence[str] = (),
    implicit_vr: bool = True,
) -> bytes:
    """``build_response`` encoded in Little Endian, without a ``Dataset`` when it can."""
    fast = _fast_response(session, query, match, retrieve_ae_title, implicit_vr)
    if fast is not None:
        return fast
    return encode_dataset(
        build_response(session, query, match, retrieve_ae_title, charsets), implicit_vr
    )


def encode_dataset(ds: Dataset, implicit_vr: bool = True) -> bytes:
    """``ds`` encoded by pydicom in Little Endian (no file meta, no preamble)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = implicit_vr
    write_dataset(fp, ds)
    return fp.getvalue()


def _fast_response(
    session: Session, query: Query, match: Match, retrieve_ae_title: str, implicit_vr: bool
) -> bytes | None:
    """The identifier's bytes when every value is ASCII text of a plain VR, else None."""
    elements: list[tuple[int, str, list[str]]] = []
    for slot in _sorted_slots(query):
        if slot.tag == _QR_LEVEL_TAG:
            continue  # always the query's level (below), as in build_response
        values: list[str]
        vr = slot.vr
        if slot.source == "retrieve":
            vr, values = "AE", [retrieve_ae_title]
        elif slot.source == "availability":
            values = ["ONLINE"]
        elif slot.source == "computed":
            value = _computed_for(session, query, match, slot.keyword, None)
            if isinstance(value, int):
                values = [str(value)]
            else:
                values = [str(v) for v in value] if value else []
        else:
            if vr == "SQ":
                return None
            stored = _stored_element(match, slot.hex_tag, slot.level, query.level)
            if stored is not None:
                vr = stored.get("vr") or _dictionary_vr(slot.tag)
                if "InlineBinary" in stored or "BulkDataURI" in stored:
                    return None
                raw = stored.get("Value") or []
                if vr == "PN":
                    values = json_values({"vr": "PN", "Value": raw})
                else:
                    values = ["" if v is None else str(v) for v in raw]
            else:
                values = []
        if vr not in _FAST_VRS:
            return None
        elements.append((slot.tag, vr, values))
    elements.append((_QR_LEVEL_TAG, "CS", [query.level]))
    elements.sort(key=lambda element: element[0])
    out: list[bytes] = []
    for tag, vr, values in elements:
        text = "\\".join(values)
        if not text.isascii():
            return None  # a character set to choose: build_response decides
        value = text.encode("ascii")
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
        group, element = tag >> 16, tag & 0xFFFF
        if implicit_vr:
            out.append(_IMPLICIT_HEADER.pack(group, element, len(value)))
        elif vr in _LONG_VRS:
            out.append(_EXPLICIT_LONG_HEADER.pack(group, element, vr.encode(), len(value)))
        elif len(value) > 0xFFFF:
            return None
        else:
            out.append(_EXPLICIT_HEADER.pack(group, element, vr.encode(), len(value)))
        out.append(value)
    return b"".join(out)


def _sorted_slots(query: Query) -> list[_Slot]:
    cached = query.__dict__.get("_sorted_slots")
    if cached is None:
        cached = sorted(_slots(query), key=lambda slot: slot.tag)
        query.__dict__["_sorted_slots"] = cached
    return cached  # type: ignore[no-any-return]
