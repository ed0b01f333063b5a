"""Index scale: bulk-built indexes of 10k / 100k / 1M instances, C-FIND latency on each.

Why rows and not files: sending a million files would take hours and measure ingest again;
what this workload measures is how the query path behaves as the index grows.  The
generator writes rows straight into our schema (``storage.models`` tables, after
``storage.migrate.upgrade``) with SQLAlchemy core bulk inserts, and the rows look like what
``storage.header.extract`` makes of a real CT header: the same columns and the same DICOM
JSON ``attrs`` (a template taken from a synthetic CT, with the varying values replaced), so
the node's Python-side matching sees what it would see in production.

Shape: 2 studies per patient, 2 series per study, 5 instances per series (10 per study);
20 studies per day from 2010-01-01.  Each query kind matches a fixed number of studies at
every scale (PatientID: 2, PatientName prefix: 20, one day: 20, AccessionNumber: 1), so the
latency measures finding them, not the size of the answer.

The index grows in place (10k, then 100k...) and a fresh ``node-ctl serve`` answers the
queries at each size, from one open association (``clients.FindSession``).  PostgreSQL gets a
database of its own, created and dropped here, and ``ANALYZE`` after each build (autovacuum
would do it in service); SQLite gets no ``ANALYZE`` (the node never runs it).
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from datetime import date, datetime, timedelta
from typing import Any

from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from sqlalchemy import (
    JSON,
    ColumnElement,
    Engine,
    Insert,
    Table,
    Text,
    bindparam,
    cast,
    create_engine,
    insert,
    text,
)
from sqlalchemy.engine import make_url

from bench import clients, datasets
from bench.options import Options
from bench.peers import US, NodePeer
from bench.report import Figure
from bench.workloads import RETURN_STUDY, percentile, rotation

logger = logging.getLogger(__name__)

STUDIES_PER_PATIENT = 2
SERIES_PER_STUDY = 2
INSTANCES_PER_SERIES = 5
INSTANCES_PER_STUDY = SERIES_PER_STUDY * INSTANCES_PER_SERIES
STUDIES_PER_DAY = 20
FIRST_DAY = date(2010, 1, 1)
#: instances per step of the generator: whole days, whole patients
GRAIN = STUDIES_PER_DAY * INSTANCES_PER_STUDY
BATCH_STUDIES = 2000
ROOT = datasets.UID_ROOT
AE_TITLE = "NODE"


def round_scale(instances: int) -> int:
    """Scales are whole days of studies, so every query kind matches a fixed count."""
    return max(GRAIN, -(-instances // GRAIN) * GRAIN)


def _value(vr: str, value: str) -> dict[str, Any]:
    if vr == "PN":
        return {"vr": "PN", "Value": [{"Alphabetic": value}]}
    if vr == "IS":
        return {"vr": "IS", "Value": [int(value)]}
    return {"vr": vr, "Value": [value]}


def _value_json(vr: str, value: str) -> str:
    """``json.dumps(_value(vr, value))`` for the generator's plain ASCII values, faster."""
    if vr == "PN":
        return f'{{"vr": "PN", "Value": [{{"Alphabetic": "{value}"}}]}}'
    if vr == "IS":
        return f'{{"vr": "IS", "Value": [{int(value)}]}}'
    return f'{{"vr": "{vr}", "Value": ["{value}"]}}'


# keyword -> (tag, VR) of the values the generator varies
TAGS = {
    "PatientName": ("00100010", "PN"),
    "PatientID": ("00100020", "LO"),
    "StudyInstanceUID": ("0020000D", "UI"),
    "StudyDate": ("00080020", "DA"),
    "AccessionNumber": ("00080050", "SH"),
    "SeriesInstanceUID": ("0020000E", "UI"),
    "Modality": ("00080060", "CS"),
    "SeriesNumber": ("00200011", "IS"),
    "SeriesDate": ("00080021", "DA"),
    "SeriesDescription": ("0008103E", "LO"),
    "SOPInstanceUID": ("00080018", "UI"),
    "InstanceNumber": ("00200013", "IS"),
}


class RowFactory:
    """Rows of one level at a time, from the attrs a real header produces."""

    def __init__(self) -> None:
        from storage.header import extract

        info = datasets.new_study(1)
        ds = datasets.ct_dataset(info, 0, 1, datasets.uid(), 512, 512, None)
        record = extract(ds, str(ExplicitVRLittleEndian))
        self.templates = record.attrs
        self.level_of = {tag: level for level, attrs in record.attrs.items() for tag in attrs}
        self.now = datetime.now()
        self._prefix: dict[tuple[str, frozenset[str]], str] = {}

    def _attrs(self, level: str, values: dict[str, str]) -> str:
        """The level's attrs as JSON text: the template's, with ``values`` replacing its own.

        Serialising a 1.4 kB dict per row would be most of the build time, so the constant
        part is serialised once per level and the varying values are spliced in.
        """
        own = {TAGS[k][0]: TAGS[k] for k in values if self.level_of.get(TAGS[k][0], level) == level}
        cache_key = (level, frozenset(own))
        prefix = self._prefix.get(cache_key)
        if prefix is None:
            rest = {t: v for t, v in self.templates[level].items() if t not in own}
            prefix = json.dumps(rest)[:-1]
            self._prefix[cache_key] = prefix
        parts = [
            f'"{tag}": {_value_json(vr, values[keyword])}'
            for keyword, (tag, vr) in TAGS.items()
            if tag in own and keyword in values
        ]
        if not parts:
            return prefix + "}"
        separator = ", " if prefix != "{" else ""
        return prefix + separator + ", ".join(parts) + "}"

    def rows(self, first_study: int, last_study: int) -> dict[str, list[dict[str, Any]]]:
        """Rows for studies ``[first_study, last_study)`` and their patients."""
        out: dict[str, list[dict[str, Any]]] = {
            "patients": [],
            "studies": [],
            "series": [],
            "instances": [],
        }
        for p in range(first_study // STUDIES_PER_PATIENT, last_study // STUDIES_PER_PATIENT):
            name = f"PAT{p:07d}^SYNTH"
            pid = f"P{p:07d}"
            out["patients"].append(
                {
                    "pk": p + 1,
                    "ae_title": AE_TITLE,
                    "patient_id": pid,
                    "issuer_of_patient_id": "",
                    "patient_name": name,
                    "patient_name_key": name.upper(),
                    "patient_birth_date": "19600101",
                    "patient_sex": "O",
                    "attrs": self._attrs("PATIENT", {"PatientName": name, "PatientID": pid}),
                }
            )
        for s in range(first_study, last_study):
            study_uid = f"{ROOT}7.{s}"
            day = (FIRST_DAY + timedelta(days=s // STUDIES_PER_DAY)).strftime("%Y%m%d")
            accession = f"A{s:08d}"
            modality = ("CT", "MR")[s % 2]
            study_values = {
                "StudyInstanceUID": study_uid,
                "StudyDate": day,
                "AccessionNumber": accession,
            }
            out["studies"].append(
                {
                    "pk": s + 1,
                    "patient_pk": s // STUDIES_PER_PATIENT + 1,
                    "ae_title": AE_TITLE,
                    "study_instance_uid": study_uid,
                    "study_date": day,
                    "study_time": "101500",
                    "accession_number": accession,
                    "study_id": "1",
                    "referring_physician_name": "REFERRER^ANNA",
                    "study_description": "CHEST ABDOMEN PELVIS",
                    "attrs": self._attrs("STUDY", study_values),
                    "created_at": self.now,
                    "updated_at": self.now,
                    # the bytes of its instances (migration 0004 keeps this per study)
                    "total_bytes": INSTANCES_PER_STUDY * 525_000,
                }
            )
            for k in range(SERIES_PER_STUDY):
                series_pk = s * SERIES_PER_STUDY + k + 1
                series_uid = f"{ROOT}8.{s}.{k}"
                description = ("AX 1.0 MM", "COR 1.0 MM")[k % 2]
                series_values = {
                    "SeriesInstanceUID": series_uid,
                    "Modality": modality,
                    "SeriesNumber": str(k + 1),
                    "SeriesDate": day,
                    "SeriesDescription": description,
                }
                out["series"].append(
                    {
                        "pk": series_pk,
                        "study_pk": s + 1,
                        "ae_title": AE_TITLE,
                        "series_instance_uid": series_uid,
                        "modality": modality,
                        "series_number": str(k + 1),
                        "series_date": day,
                        "series_description": description,
                        "attrs": self._attrs("SERIES", series_values),
                    }
                )
                for j in range(INSTANCES_PER_SERIES):
                    sop_uid = f"{ROOT}9.{s}.{k}.{j}"
                    out["instances"].append(
                        {
                            "pk": (series_pk - 1) * INSTANCES_PER_SERIES + j + 1,
                            "series_pk": series_pk,
                            "ae_title": AE_TITLE,
                            "sop_instance_uid": sop_uid,
                            "sop_class_uid": str(CTImageStorage),
                            "instance_number": str(j + 1),
                            "transfer_syntax_uid": str(ExplicitVRLittleEndian),
                            "path": f"{study_uid}/{sop_uid}.dcm",
                            "size": 525_000,
                            "received_at": self.now,
                            "calling_ae_title": "BENCH",
                            "attrs": self._attrs(
                                "IMAGE", {"SOPInstanceUID": sop_uid, "InstanceNumber": str(j + 1)}
                            ),
                        }
                    )
        return out


def _insert(table: Table, dialect: str) -> Insert:
    """A bulk INSERT whose ``attrs`` parameter is JSON text already (see ``_attrs``)."""
    attrs: ColumnElement[Any] = bindparam("attrs", type_=Text())
    if dialect == "postgresql":
        attrs = cast(attrs, JSON)
    values = {
        column.name: attrs if column.name == "attrs" else bindparam(column.name, type_=column.type)
        for column in table.columns
    }
    return insert(table).values(values)


def grow(engine: Engine, factory: RowFactory, have: int, want: int) -> float:
    """Add instances ``[have, want)`` (both multiples of GRAIN); returns seconds taken."""
    from storage.models import Instance, Patient, Series, Study

    tables = {
        "patients": Patient.__table__,
        "studies": Study.__table__,
        "series": Series.__table__,
        "instances": Instance.__table__,
    }
    statements = {name: _insert(table, engine.dialect.name) for name, table in tables.items()}
    start = time.perf_counter()
    first, last = have // INSTANCES_PER_STUDY, want // INSTANCES_PER_STUDY
    for batch in range(first, last, BATCH_STUDIES):
        rows = factory.rows(batch, min(batch + BATCH_STUDIES, last))
        with engine.begin() as conn:
            for name in ("patients", "studies", "series", "instances"):
                if rows[name]:
                    conn.execute(statements[name], rows[name])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - start


def query_kinds(studies: int, rng: random.Random) -> dict[str, tuple[dict[str, str], int]]:
    """One random query of each kind, with the number of studies it must match."""
    s = rng.randrange(studies)
    patient = s // STUDIES_PER_PATIENT
    decade = patient // 10
    day = (FIRST_DAY + timedelta(days=s // STUDIES_PER_DAY)).strftime("%Y%m%d")
    name_matches = min(studies, (decade + 1) * 10 * STUDIES_PER_PATIENT) - decade * 20
    base = {"QueryRetrieveLevel": "STUDY", **RETURN_STUDY}
    return {
        "patient-id": ({**base, "PatientID": f"P{patient:07d}"}, STUDIES_PER_PATIENT),
        "name-prefix": ({**base, "PatientName": f"PAT{decade:06d}*"}, name_matches),
        "date-day": ({**base, "StudyDate": f"{day}-{day}"}, STUDIES_PER_DAY),
        "accession": ({**base, "AccessionNumber": f"A{s:08d}"}, 1),
    }


def measure(opts: Options, port: int, aet: str, studies: int) -> dict[str, Any]:
    """C-FIND round trips on one association: samples per kind, and wrong match counts."""
    from pynetdicom import _config

    rng = random.Random(studies)
    # pynetdicom's SCU pretty-prints every request and response identifier for its debug
    # log even when nothing logs it (about 0.7 ms per response here): the client's cost,
    # not the node's, so it is off while this workload measures.
    logged = _config.LOG_REQUEST_IDENTIFIERS, _config.LOG_RESPONSE_IDENTIFIERS
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False
    session = clients.FindSession(aet, port)
    samples: dict[str, list[float]] = {}
    wrong: list[str] = []
    try:
        for _ in range(3):  # warm-up: connections, caches
            for keys, _expected in query_kinds(studies, rng).values():
                session.find(keys)
        for rep in range(opts.scale_reps):
            kinds = query_kinds(studies, rng)
            for kind in rotation(list(kinds), rep):
                keys, expected = kinds[kind]
                seconds, found = session.find(keys)
                samples.setdefault(kind, []).append(seconds * 1000)
                if found != expected:
                    wrong.append(f"{kind}: {found} matches, expected {expected}")
    finally:
        session.close()
        _config.LOG_REQUEST_IDENTIFIERS, _config.LOG_RESPONSE_IDENTIFIERS = logged
    return {"samples": samples, "wrong": wrong}


def backends(opts: Options) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = [("SQLite", None)]
    if opts.postgres_url:
        out.append(("PostgreSQL", opts.postgres_url))
    return out


def index_scale(opts: Options) -> list[Figure]:
    figures: list[Figure] = []
    scales = sorted({round_scale(n) for n in opts.scales})
    factory = RowFactory()
    for backend, base_url in backends(opts):
        figures += _one_backend(opts, factory, backend, base_url, scales)
    return figures


def _one_backend(
    opts: Options, factory: RowFactory, backend: str, base_url: str | None, scales: list[int]
) -> list[Figure]:
    from storage.db import create_index_engine
    from storage.migrate import upgrade

    figures: list[Figure] = []
    folder = opts.workdir / "index" / backend.lower()
    folder.mkdir(parents=True, exist_ok=True)
    admin: Engine | None = None
    database = ""
    try:
        if base_url is None:
            url = f"sqlite:///{folder / 'index.sqlite'}"
        else:
            admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
            database = f"bench_{secrets.token_hex(4)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
            url = make_url(base_url).set(database=database).render_as_string(hide_password=False)
        engine = create_index_engine(url)
        upgrade(engine)
        have = 0
        first_p50: float | None = None
        for scale in scales:
            fig = Figure(
                key=f"index-{backend.lower()}-{scale}",
                title=f"C-FIND study level, {scale:,} instances, {backend}",
                metric="ms",
                better="lower",
                secondary_name="p50 / p95",
                target="p50 ≤ 10, p95 ≤ 50 ms (at 1M); ≤ 2x own first scale",
                limit=10.0,
                secondary_limit=50.0,
            )
            figures.append(fig)
            try:
                logger.info("index %s: growing to %d instances", backend, scale)
                seconds = grow(engine, factory, have, scale)
                fig.details["build_rows_per_s"] = round((scale - have) / seconds)
                have = scale
                node = NodePeer(workdir=folder / f"node-{scale}", database_url=url)
                with node:
                    result = measure(opts, node.port, node.aet, scale // INSTANCES_PER_STUDY)
            except Exception as exc:  # noqa: BLE001
                logger.error("index %s %d failed: %s", backend, scale, exc)
                fig.error = str(exc)
                continue
            everything = [v for values in result["samples"].values() for v in values]
            p50 = percentile(everything, 0.5)
            fig.add(US, p50, percentile(everything, 0.95))
            fig.details["per_kind_ms"] = {
                kind: {"p50": round(percentile(v, 0.5), 2), "p95": round(percentile(v, 0.95), 2)}
                for kind, v in result["samples"].items()
            }
            if result["wrong"]:
                fig.notes.append(f"wrong match counts: {result['wrong'][:3]}")
            if first_p50 is None:
                first_p50 = p50
            else:
                fig.extra_ok = p50 <= 2 * first_p50
                fig.details["vs_first_scale"] = round(p50 / first_p50, 2)
            logger.info("index %s %d: p50 %.1f ms", backend, scale, p50)
        engine.dispose()
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()
    return figures


def postgres_version(url: str) -> str:
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar())
        engine.dispose()
        return version
    except Exception:  # noqa: BLE001 - absent server: the workload reports it
        return ""
