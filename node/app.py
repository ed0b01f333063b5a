"""Wires the parts into a running node: index, stores, ingest, the AE and its handlers.

Why a class that only wires: like Orthanc's ``ServerContext`` without the bulk, it owns the
objects that live as long as the process and hands typed dependencies to the handlers
(``(evt.EVT_*, handler, [ctx])``); no handler reaches for a global.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import config as pydicom_config
from pynetdicom import AE, _config, evt
from pynetdicom.presentation import DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from config.model import Settings
from node import IMPLEMENTATION_VERSION_NAME, pdu_limits
from node.association import make_request_handler
from node.identity import UserVerifier, load_users
from node.net import enable_tcp_nodelay
from node.services.context import NodeContext
from node.services.echo import handle_echo
from node.services.find import handle_find
from node.services.get import handle_get
from node.services.move import handle_move
from node.services.store import handle_store
from node.workers import WriteLock
from storage.db import create_index_engine
from storage.files import FileStore
from storage.index import Index
from storage.ingest import IMPLEMENTATION_CLASS_UID, Ingestor
from storage.migrate import upgrade

logger = logging.getLogger(__name__)

QR_CONTEXTS = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)


def open_storage(settings: Settings) -> tuple[Index, dict[str, FileStore]]:
    """Open (and upgrade) the index and one file store per AETable entry."""
    engine = create_index_engine(settings.resolved_database_url())
    upgrade(engine)
    stores = {entry.title: FileStore(entry.storage_area) for entry in settings.ae_table}
    return Index(engine, outbox=settings.ingest_events_wanted), stores


#: PS3.15 B.9 "BCP 195 non-downgrading" TLS profile: TLS 1.2 with these AEAD suites, or
#: TLS 1.3 (whose suites OpenSSL configures separately and are all acceptable).
BCP195_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
    ]
)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Server-side TLS (BCP 195 non-downgrading profile) when a certificate is configured."""
    if not settings.tls_certificate:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_CIPHERS)
    context.load_cert_chain(settings.tls_certificate, settings.tls_private_key)
    if settings.tls_ca_certificate:
        context.load_verify_locations(settings.tls_ca_certificate)
    if settings.tls_require_peer_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Node:
    """A running DICOM node: one listener serving every AE title of the AETable."""

    def __init__(
        self,
        settings: Settings,
        notify: Callable[[str, dict[str, Any]], None] | None = None,
        *,
        recover: bool = True,
    ) -> None:
        """Open the index and stores; ``recover=False`` in a worker (``node.workers``)."""
        if not settings.ae_table:
            raise ValueError("the configuration has no AETable entry: nothing to serve")
        self.settings = settings
        self.index, self.stores = open_storage(settings)
        if settings.ingest_workers > 1:
            _share_sqlite_writes(self.index)
        if recover:
            for title, store in self.stores.items():
                store.recover(lambda path, title=title: self.index.has_path(title, path))
        self.context = NodeContext(
            settings=settings,
            index=self.index,
            ingestor=Ingestor(self.index, self.stores),
            stores=self.stores,
        )
        if notify is not None:
            self.context.notify = notify
        self.ae = self._build_ae()
        self.server: ThreadedAssociationServer | None = None
        self._thread: threading.Thread | None = None

    def _build_ae(self) -> AE:
        enable_tcp_nodelay()
        # Real-world data breaks VR rules all the time; the node keeps it as sent, and a
        # warning per odd value would flood the log and cost time on the ingest path.
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        # Promiscuous storage (storescp -pm): accept private and unknown SOP classes.
        _config.UNRESTRICTED_STORAGE_SERVICE = True
        # Receive C-STORE datasets into a temp file as they arrive, so a 1 GB multi-frame
        # instance never sits in memory (storage.ingest.Received streams it on).
        _config.STORE_RECV_CHUNKED_DATASET = True
        _config.LOG_HANDLER_LEVEL = "none"
        # Identifiers are pretty-printed for a debug line nobody logs unless at DEBUG.
        _config.LOG_REQUEST_IDENTIFIERS = self.settings.log_level == "DEBUG"
        _config.LOG_RESPONSE_IDENTIFIERS = self.settings.log_level == "DEBUG"
        # Bounds on what a peer can make us hold (announced PDU lengths, DIMSE messages)
        # and clean-up of associations pynetdicom's negotiation gives up on.
        pdu_limits.install()
        settings = self.settings
        ae = AE(ae_title=settings.ae_table[0].title)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ae.maximum_associations = settings.max_associations
        ae.maximum_pdu_size = settings.max_pdu_size
        ae.acse_timeout = settings.acse_timeout
        ae.dimse_timeout = settings.dimse_timeout
        ae.network_timeout = settings.network_timeout
        ae.add_supported_context(Verification, DEFAULT_TRANSFER_SYNTAXES)
        for sop_class in QR_CONTEXTS:
            ae.add_supported_context(sop_class, DEFAULT_TRANSFER_SYNTAXES)
        # C-MOVE sub-associations propose the contexts each move needs; this is a fallback.
        ae.requested_contexts = []
        return ae

    def handlers(self) -> list[Any]:
        ctx = self.context
        return [
            (evt.EVT_C_ECHO, handle_echo, [ctx]),
            (evt.EVT_C_STORE, handle_store, [ctx]),
            (evt.EVT_C_FIND, handle_find, [ctx]),
            (evt.EVT_C_MOVE, handle_move, [ctx]),
            (evt.EVT_C_GET, handle_get, [ctx]),
            *self._identity_handlers(),
            (evt.EVT_ESTABLISHED, _log_established),
            (evt.EVT_RELEASED, _log_closed),
            (evt.EVT_ABORTED, _log_closed),
        ]

    def _identity_handlers(self) -> list[Any]:
        """EVT_USER_ID bound only when users are configured (else pynetdicom accepts)."""
        if self.settings.user_identity_file is None:
            return []
        verifier = UserVerifier(load_users(self.settings.user_identity_file))
        return [(evt.EVT_USER_ID, verifier)]

    def _part_folder(self, assoc: Any) -> Path | None:
        """Where C-STORE datasets to the called AE are received: its store's ``.tmp``."""
        store = self.stores.get(str(assoc.acceptor.ae_title).strip())
        return store.tmp if store is not None else None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self, listener: socket.socket | None = None) -> None:
        """Bind the listening socket (or serve ``listener``) in a background thread."""
        settings = self.settings
        address = (settings.bind_address, settings.network_tcp_port)
        try:
            self.server = _Server(
                listener,
                self.ae,
                address,
                self.settings.ae_table[0].title,
                self.ae.supported_contexts,
                ssl_context=tls_context(settings),
                evt_handlers=self.handlers(),
                request_handler=make_request_handler(settings, self._part_folder),
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"DICOM port cannot listen on {address[0]}:{address[1]}: {exc.strerror}"
            ) from exc
        self.server.daemon_threads = True
        if listener is not None:
            listener.setblocking(False)  # shared: another process may accept first
        self.ae._servers.append(self.server)
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="dicom-listener", daemon=True
        )
        self._thread.start()
        titles = ", ".join(entry.title for entry in settings.ae_table)
        logger.info("listening on %s:%d for %s", settings.bind_address, self.port, titles)

    def share_listener(self) -> socket.socket:
        """The listening socket, non-blocking so that other processes can serve it too."""
        assert self.server is not None and self.server.socket is not None
        # A blocking accept() (or the timeout pynetdicom sets) would wait for the next
        # connection whenever another process took this one, and hold up shutdown.
        self.server.socket.setblocking(False)
        return self.server.socket

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let running associations finish (bounded), then abort them."""
        if self.server is None:
            return
        grace = self.settings.shutdown_grace if grace is None else grace
        self.server.shutdown()
        deadline = time.monotonic() + grace
        while self.ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in self.ae.active_associations:
            logger.warning("aborting association %s at shutdown", assoc.name)
            assoc.abort()
        self.server.server_close()
        if self.server in self.ae._servers:
            self.ae._servers.remove(self.server)
        self.server = None
        self.index.engine.dispose()


class _Server(ThreadedAssociationServer):
    """pynetdicom's threaded server, optionally on a socket bound by another process."""

    def __init__(self, listener: socket.socket | None, *args: Any, **kwargs: Any) -> None:
        self._listener = listener
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self._listener is None:
            super().server_bind()
            return
        if self.socket is not None:
            self.socket.close()  # the one socketserver made, unbound
        self.socket = self._listener
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        if self._listener is None:  # an inherited socket is listening already
            super().server_activate()


def _share_sqlite_writes(index: Index) -> None:
    """Queue SQLite writers of all processes on one lock file (``node.workers.WriteLock``)."""
    database = index.engine.url.database
    if not index.serialises_writes or not database or database == ":memory:":
        return
    index.queue_writes_on(WriteLock(Path(f"{database}.writelock")))


def _log_established(event: evt.Event) -> None:
    assoc = event.assoc
    logger.info(
        "[%s] association from %s@%s:%s to %s accepted",
        assoc.name,
        assoc.requestor.ae_title.strip(),
        assoc.requestor.address,
        assoc.requestor.port,
        assoc.acceptor.ae_title.strip(),
    )


def _log_closed(event: evt.Event) -> None:
    assoc = event.assoc
    how = "released" if event.event is evt.EVT_RELEASED else "aborted"
    logger.info("[%s] association with %s %s", assoc.name, assoc.requestor.ae_title.strip(), how)


__all__ = ["Node", "open_storage"]
