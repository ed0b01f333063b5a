"""The settings model: what a dcmqrscp.cfg (plus our extensions and the environment) means.

Everything is frozen: ``config.load()`` builds one ``Settings`` at start-up and it is passed
down to storage and node; nothing else reads files or ``os.environ`` for configuration.

Field names follow DCMTK's keywords where dcmqrscp has them (``NetworkTCPPort`` ->
``network_tcp_port``); the extensions are ours and documented in ``docs/config.md`` and
``examples/node.cfg``.  Paths are absolute once ``config.load()`` has built the settings
(relative paths in a file resolve against the file's folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Access = Literal["R", "RW", "W"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
#: The words of ``SpecificCharacterSet`` that are options, not a character set (DCMTK).
CHARACTER_SET_OPTIONS = frozenset({"override", "fallback", "abort", "discard", "transliterate"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HostEntry(_Frozen):
    """One ``(AETitle, HostName, Port)`` tuple of the HostTable (AE title first, as DCMTK)."""

    ae_title: str = Field(min_length=1, max_length=16)
    hostname: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class Quota(_Frozen):
    """dcmqrscp's ``(maxStudies, maxBytesPerStudy)``; bytes already multiplied out."""

    max_studies: int = Field(ge=1)
    max_bytes_per_study: int = Field(ge=1)


class AEEntry(_Frozen):
    """One AETable row: an AE title served by the node, with its own storage area and records.

    ``peers`` is ``None`` for ``ANY``; otherwise the host entries (calling AE title *and*
    host must both match one of them).
    """

    title: str = Field(min_length=1, max_length=16)
    storage_area: Path
    access: Access = "RW"
    quota: Quota | None = None
    peers: tuple[HostEntry, ...] | None = None

    @property
    def can_store(self) -> bool:
        return "W" in self.access

    @property
    def can_read(self) -> bool:
        return "R" in self.access


TriggerEvent = Literal["ingest", "stable"]
#: Match keys that are not DICOM attributes: the association's AE titles.
AE_MATCH_KEYS = ("CallingAE", "CalledAE")


class MatchKey(_Frozen):
    """One ``KEY=VALUE`` of a trigger's ``Match`` or a route's ``Filter`` (findscu's ``-k``).

    ``keyword`` is a DICOM keyword (``Modality``, ``SOPClassUID``...) or one of
    ``AE_MATCH_KEYS``; ``tag`` is its tag (``None`` for the AE keys).  ``value`` uses
    DICOM matching (PS3.4 C.2.2.2): ``*``/``?`` wildcards, ``A-B`` ranges for dates and
    times, ``\\``-separated lists; AE keys take wildcards and lists too.
    """

    keyword: str
    tag: int | None = None
    value: str


class TriggerEntry(_Frozen):
    """A TriggerTable entry: on ``event``, for what matches ``match``, submit ``job``.

    ``job`` is the job's command line as words (kind first), checked against the job kinds
    when the node starts; ``line`` is where the entry starts in the file (for messages).
    """

    name: str = Field(min_length=1, max_length=48)
    event: TriggerEvent
    match: tuple[MatchKey, ...] = ()
    job: tuple[str, ...] = Field(min_length=1)
    line: int | None = None


class RouteEntry(_Frozen):
    """A RouteTable entry: a named pipeline from ``source`` to ``destination``.

    It runs on ``schedule`` (5-field cron), when a study becomes stable (``trigger``), or by
    hand.  It selects the studies of ``source`` that match ``filter`` (all when empty) and,
    with ``select="new"``, only those never sent or changed since they were sent.  Each
    study goes as one forward job, through ``anonymize`` (the anonymize job's options as
    words; ``None``: sent as stored) and ``convert`` (the convert job's options), with
    pseudonyms keyed by ``secret`` (or the content of ``secret_file``) so that the same
    original always gives the same replacement, night after night.
    """

    name: str = Field(min_length=1, max_length=48)
    source: str = Field(min_length=1, max_length=16)
    destination: str = Field(min_length=1, max_length=16)
    schedule: str | None = None
    trigger: Literal["stable"] | None = None
    filter: tuple[MatchKey, ...] = ()
    select: Literal["new", "all"] = "new"
    anonymize: tuple[str, ...] | None = None
    convert: tuple[str, ...] | None = None
    secret: str | None = None
    secret_file: Path | None = None
    max_attempts: int = Field(default=5, ge=1, le=100)
    line: int | None = None


class Settings(_Frozen):
    """The whole configuration of a node.

    The first block mirrors dcmqrscp.cfg's globals and tables; the second holds our
    extensions (each also settable as ``NODE_<FIELD>`` in the environment).
    """

    # --- dcmqrscp.cfg ---------------------------------------------------------------
    config_path: Path | None = None
    network_tcp_port: int = Field(default=104, ge=1, le=65535)
    max_pdu_size: int = Field(default=16384, ge=4096, le=0xFFFFFFFF)
    max_associations: int = Field(default=16, ge=1)
    user_name: str | None = None
    group_name: str | None = None
    #: The values of ``SpecificCharacterSet`` as written, e.g. ``("ISO_IR 192", "override",
    #: "discard", "transliterate")``; ``None`` when the keyword is absent, which means
    #: dcmqrscp's default: answer in the request's character set, fall back to ASCII.
    #: Read it through ``response_character_set`` and ``character_set_options``.
    specific_character_set: tuple[str, ...] | None = None
    #: HostTable: symbolic name -> entries (a group expands to the entries it names).
    hosts: dict[str, tuple[HostEntry, ...]] = Field(default_factory=dict)
    #: VendorTable: vendor description -> entries of the host name it refers to.
    vendors: dict[str, tuple[HostEntry, ...]] = Field(default_factory=dict)
    ae_table: tuple[AEEntry, ...] = ()

    # --- extensions -----------------------------------------------------------------
    #: SQLAlchemy URL of the index; default: SQLite file in ``data_dir``.
    database_url: str | None = None
    #: Where the SQLite index and temp files live when not set otherwise.
    data_dir: Path = Path("var")
    #: Address to bind the DICOM listener to.
    bind_address: str = "0.0.0.0"
    acse_timeout: float = 30.0
    dimse_timeout: float = 60.0
    network_timeout: float = 60.0
    #: Seconds to let running associations finish on SIGTERM before aborting them.
    shutdown_grace: float = 10.0
    #: Processes serving the DICOM port (the daemon and ``ingest_workers - 1`` workers
    #: sharing its socket: ``node.workers``), so associations use several CPUs; one per CPU.
    ingest_workers: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 64), ge=1, le=64)
    log_level: LogLevel = "INFO"
    admin_api_address: str = "127.0.0.1"
    admin_api_port: int | None = None
    admin_token: str | None = None
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    tls_ca_certificate: Path | None = None
    tls_require_peer_certificate: bool = False
    #: User identity negotiation (PS3.7 D.3.3.7): a file of ``username:scrypt$salt$hash``
    #: lines (``node-ctl user-hash`` makes one); with ``require_user_identity`` an
    #: association without a valid username/password is rejected.
    user_identity_file: Path | None = Field(default=None)
    require_user_identity: bool = Field(default=False)
    #: Processes of the job runner's pool (CPU work: anonymize, convert, render, export);
    #: ``None``: one per CPU.
    job_workers: int | None = None
    #: Most jobs of one kind running at once, e.g. ``{"convert": 1, "forward": 4}``; a kind
    #: not named runs up to ``job_workers`` at once.
    job_concurrency: dict[str, int] = Field(default_factory=dict)
    #: Seconds a claimed job stays leased without a heartbeat; after that another runner
    #: (or this one after a restart) takes it again.
    job_lease: float = 60.0
    #: Seconds without a new instance after which a study counts as stable (Orthanc's
    #: StableAge, storescp's ``--eostudy-timeout``): study-stable triggers and routes fire.
    study_stable_seconds: float = 60.0
    #: TriggerTable: jobs submitted on ingest or when a study becomes stable.
    triggers: tuple[TriggerEntry, ...] = ()
    #: RouteTable: named pipelines (schedule or trigger, selection, steps, destination).
    routes: tuple[RouteEntry, ...] = ()

    @property
    def ingest_events_wanted(self) -> bool:
        """Must the index keep an ``ingest_events`` outbox (ingest or study-stable triggers)?"""
        return bool(self.triggers) or any(route.trigger for route in self.routes)

    def route(self, name: str) -> RouteEntry | None:
        """The RouteTable entry called ``name``, or None."""
        return next((route for route in self.routes if route.name == name), None)

    @property
    def response_character_set(self) -> str | None:
        """The character set named in ``SpecificCharacterSet`` (the last one, as DCMTK)."""
        charsets = [v for v in self.specific_character_set or () if v not in CHARACTER_SET_OPTIONS]
        return charsets[-1] if charsets else None

    @property
    def character_set_options(self) -> frozenset[str]:
        """The option words of ``SpecificCharacterSet``; ``{"fallback"}`` when it is absent."""
        if self.specific_character_set is None:
            return frozenset({"fallback"})
        return frozenset(v for v in self.specific_character_set if v in CHARACTER_SET_OPTIONS)

    def ae(self, title: str) -> AEEntry | None:
        """The AETable entry for ``title`` (exact match after stripping spaces), or None."""
        title = title.strip()
        for entry in self.ae_table:
            if entry.title == title:
                return entry
        return None

    def resolved_database_url(self) -> str:
        """The index URL to use: the configured one, or SQLite in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    def move_destination(self, ae_title: str) -> HostEntry | None:
        """Where a C-MOVE to ``ae_title`` goes: AETable first, then HostTable (dcmqrscp order).

        As DCMTK's ``peerForAETitle()``: first the peers listed in the AETable rows (which
        may be tuples written inline there), then every HostTable entry, in file order.
        """
        for ae in self.ae_table:
            for entry in ae.peers or ():
                if entry.ae_title == ae_title:
                    return entry
        for entries in self.hosts.values():
            for entry in entries:
                if entry.ae_title == ae_title:
                    return entry
        return None
