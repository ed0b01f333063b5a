"""Client side of DICOM networking: associate, echo, store, find, move, get.

One module serves ``node-ctl`` (interactive SCU commands) and the node itself (C-MOVE
sub-associations, forwarding jobs), so it never prints: every call returns a typed result
(dataclasses below) or raises one of the exceptions below, and progress goes through an
optional callback.

Why the store planning is not a one-liner: a peer accepts one transfer syntax per
presentation context, and a file can only be sent byte-for-byte when its own syntax was
accepted.  So each SOP class gets a context with the file's own (compressed) syntax and
another with the uncompressed ones; when only the latter is accepted the file is
decompressed with pydicom (a warning on the outcome and in the log).  An association holds
at most 128 contexts, so a large heterogeneous set of files is sent over as few
associations as that limit allows.

Exceptions::

    ScuError
     +-- ConnectionFailed          TCP connect (or TLS handshake) to the peer failed
     +-- AssociationRejected       the peer sent A-ASSOCIATE-RJ (result, source, reason)
     +-- AssociationAborted        the peer aborted, or stopped answering (timeouts)
     +-- NoAcceptedContext         the peer accepted none of the contexts a service needs
     +-- OperationFailed           a DIMSE failure status (status, error comment)
          +-- MoveDestinationUnknown   0xA801: the peer does not know the move destination
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    StoragePresentationContexts,
    _config,
    build_context,
    build_role,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    _STORAGE_CLASSES,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.status import code_to_category

from node.net import enable_tcp_nodelay

__all__ = [
    "AssociationAborted",
    "AssociationRejected",
    "ConnectionFailed",
    "EchoResult",
    "MoveDestinationUnknown",
    "NoAcceptedContext",
    "OperationFailed",
    "Peer",
    "QueryModel",
    "Receiver",
    "RetrieveResult",
    "ScuError",
    "StoreOutcome",
    "StoreReport",
    "apply_key",
    "build_identifier",
    "echo",
    "find",
    "get",
    "iter_find",
    "move",
    "status_category",
    "store",
]

logger = logging.getLogger(__name__)

QueryModel = Literal["patient", "study"]
Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]

#: The most presentation contexts one A-ASSOCIATE-RQ may carry (PS3.8: odd IDs 1..255).
MAX_CONTEXTS = 128

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)

_FIND_MODELS = {
    "patient": PatientRootQueryRetrieveInformationModelFind,
    "study": StudyRootQueryRetrieveInformationModelFind,
}
_MOVE_MODELS = {
    "patient": PatientRootQueryRetrieveInformationModelMove,
    "study": StudyRootQueryRetrieveInformationModelMove,
}
_GET_MODELS = {
    "patient": PatientRootQueryRetrieveInformationModelGet,
    "study": StudyRootQueryRetrieveInformationModelGet,
}

#: Unique key of each Q/R level (PS3.4 C.6).
UNIQUE_KEYS: dict[str, str] = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
_HIERARCHY: dict[str, tuple[str, ...]] = {
    "patient": ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    "study": ("STUDY", "SERIES", "IMAGE"),
}

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


# --------------------------------------------------------------------------- exceptions


class ScuError(Exception):
    """Base of every error raised by this module."""


class ConnectionFailed(ScuError):
    """The TCP connection (or its TLS handshake) to the peer could not be made."""


class AssociationRejected(ScuError):
    """The peer rejected the association (A-ASSOCIATE-RJ)."""

    def __init__(self, message: str, result: str = "", source: str = "", reason: str = ""):
        super().__init__(message)
        self.result = result
        self.source = source
        self.reason = reason


class AssociationAborted(ScuError):
    """The association was aborted, or the peer stopped answering within the timeouts.

    Raised by :func:`store` with ``report`` set: what was sent before it happened.
    """

    report: StoreReport | None = None


class NoAcceptedContext(ScuError):
    """The peer accepted none of the presentation contexts this service needs."""


class OperationFailed(ScuError):
    """The peer answered a DIMSE request with a failure status."""

    def __init__(
        self,
        message: str,
        status: int,
        comment: str | None = None,
        result: RetrieveResult | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.comment = comment
        self.result = result


class MoveDestinationUnknown(OperationFailed):
    """0xA801: the peer does not know the move destination AE title."""


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Peer:
    """Where and how to associate.

    ``ssl_context`` turns TLS on; ``server_hostname`` is the name checked against the
    peer's certificate (defaults to ``host``).  Timeouts are in seconds; ``None`` waits
    for ever.
    """

    host: str
    port: int = 104
    called_ae: str = "ANY-SCP"
    calling_ae: str = "NODECTL"
    connect_timeout: float | None = 30.0
    acse_timeout: float = 30.0
    dimse_timeout: float | None = 60.0
    network_timeout: float | None = 60.0
    max_pdu: int = 16384
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None

    @property
    def address(self) -> str:
        return f"{self.called_ae}@{self.host}:{self.port}"


@dataclass(frozen=True)
class EchoResult:
    status: int
    peer: str


@dataclass(frozen=True)
class StoreOutcome:
    """What happened to one file or dataset given to :func:`store`.

    ``status`` is the peer's DIMSE status, ``None`` when nothing was sent (then ``error``
    says why).  ``converted_from`` is the file's own transfer syntax when it had to be
    decompressed because the peer accepted only uncompressed syntaxes.
    """

    source: str
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    status: int | None = None
    transfer_syntax: str | None = None
    converted_from: str | None = None
    error: str | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and status_category(self.status) in (
            "Success",
            "Warning",
        )

    @property
    def warning(self) -> bool:
        return self.status is not None and status_category(self.status) == "Warning"


@dataclass
class StoreReport:
    outcomes: list[StoreOutcome] = field(default_factory=list)
    associations: int = 0

    @property
    def sent(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def warnings(self) -> int:
        return sum(1 for o in self.outcomes if o.warning or (o.ok and o.converted_from))

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.ok and not o.skipped)

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.skipped)


@dataclass
class RetrieveResult:
    """Final counts of a C-MOVE or C-GET, and the files our side received."""

    status: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    failed_instances: list[str] = field(default_factory=list)
    received: list[Path] = field(default_factory=list)
    comment: str | None = None


@dataclass(frozen=True)
class Receiver:
    """Built-in storage SCP for :func:`move`: listen on ``port``, write into ``directory``.

    ``accept_unknown_sop_classes`` accepts private and unknown SOP classes (as DCMTK
    ``storescp -pm``); it sets pynetdicom's process-wide
    ``_config.UNRESTRICTED_STORAGE_SERVICE`` while the move runs (and restores it), so an
    SCP sharing the process would accept them too meanwhile.
    """

    port: int
    directory: Path
    bind_address: str = ""
    accept_unknown_sop_classes: bool = False
    ssl_context: ssl.SSLContext | None = None


#: ``on_progress(done, total)`` after each pending C-MOVE/C-GET response.
ProgressCallback = Callable[[int, int], None]


def status_category(status: int) -> str:
    """``Success``, ``Warning``, ``Failure``, ``Cancel`` or ``Pending`` (PS3.7 Annex C)."""
    if status == 0x0000:
        return "Success"
    category = str(code_to_category(status))
    if category == "Unknown":
        # PS3.7 C.1: 0xA000-0xAFFF and 0xC000-0xCFFF are failures, 0xB000-0xBFFF warnings.
        if 0xB000 <= status <= 0xBFFF:
            return "Warning"
        return "Failure"
    return category


# --------------------------------------------------------------------------- identifiers


def build_identifier(
    level: Level,
    model: QueryModel = "study",
    base: Dataset | None = None,
    keys: Iterable[str] = (),
) -> Dataset:
    """A query identifier at ``level``, with the unique keys of the levels above.

    ``keys`` are ``-k`` style specifications (see :func:`apply_key`).  The unique key of
    ``level`` and of every level above it in ``model`` is added (empty, i.e. asked back)
    when absent, as gdcmscu does, so every response can be placed in the hierarchy.
    """
    hierarchy = _HIERARCHY[model]
    if level not in hierarchy:
        raise ValueError(f"level {level} is not part of the {model} root model")
    ds = Dataset() if base is None else base
    for spec in keys:
        apply_key(ds, spec)
    ds.QueryRetrieveLevel = level
    for upper in hierarchy[: hierarchy.index(level) + 1]:
        keyword = UNIQUE_KEYS[upper]
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


_PATH_PART = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<index>\d+)\])?$")


def _parse_tag(text: str) -> BaseTag:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    if "," in text:
        group, elem = text.split(",", 1)
        try:
            return Tag(int(group, 16), int(elem, 16))
        except ValueError:
            raise ValueError(f"not a tag: {text!r}") from None
    if re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        return Tag(int(text, 16))
    tag = tag_for_keyword(text)
    if tag is None:
        raise ValueError(f"unknown attribute keyword: {text!r}")
    return Tag(tag)


def _vr_of(tag: BaseTag) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN" if tag.is_private else "LO"
    # Ambiguous entries ("US or SS", "OB or OW"): the first is right for queries.
    return vr.split(" or ")[0]


def _typed(vr: str, value: str) -> Any:
    """Convert the text of a ``-k`` value to what pydicom expects for ``vr``."""
    if value == "":
        return None
    parts = value.split("\\")
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        nums: list[Any] = [int(p, 0) for p in parts]
    elif vr in ("FL", "FD"):
        nums = [float(p) for p in parts]
    elif vr == "AT":
        nums = [_parse_tag(p) for p in parts]
    elif vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return value.encode("latin-1")
    else:
        return value
    return nums[0] if len(nums) == 1 else nums


def apply_key(ds: Dataset, spec: str) -> None:
    """Set one key given as findscu/gdcmscu ``-k`` text on ``ds``.

    Accepted forms: ``0010,0010=DOE*``, ``10,10=A*``, ``(0010,0010)=X``, ``00100010=X``,
    ``PatientName=DOE*``, a key with no ``=`` or an empty value (ask for it back), and
    sequence paths as findscu: ``ReferencedStudySequence[0].ReferencedSOPInstanceUID=1.2``
    (a bare sequence name asks for the whole sequence back).
    """
    path, sep, value = spec.partition("=")
    if not path.strip():
        raise ValueError(f"empty key in {spec!r}")
    value = value if sep else ""
    # Quotes left by a shell-less caller (``-k 10,10="A*"`` arrives unquoted from a shell).
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    parts = path.strip().split(".")
    current = ds
    for i, part in enumerate(parts):
        match = _PATH_PART.match(part.strip())
        if not match:
            raise ValueError(f"bad key path element {part!r} in {spec!r}")
        tag = _parse_tag(match.group("name"))
        vr = _vr_of(tag)
        last = i == len(parts) - 1
        if last and match.group("index") is None:
            if vr == "SQ":
                if value:
                    raise ValueError(f"{match.group('name')} is a sequence: it takes no value")
                current.add_new(tag, "SQ", DicomSequence([]))
            else:
                try:
                    current.add_new(tag, vr, _typed(vr, value))
                except ValueError as exc:
                    raise ValueError(f"bad value for {match.group('name')}: {exc}") from None
            return
        if vr != "SQ":
            raise ValueError(f"{match.group('name')} is not a sequence in {spec!r}")
        index = int(match.group("index") or 0)
        if tag not in current:
            current.add_new(tag, "SQ", DicomSequence([]))
        seq = current[tag].value
        while len(seq) <= index:
            seq.append(Dataset())
        current = seq[index]
        if last:
            return


# --------------------------------------------------------------------------- association


class _ReactorGate:
    """Drop-in for ``Association._reactor_checkpoint`` that closes the pynetdicom race.

    pynetdicom's reactor thread loops ``_is_paused = True; checkpoint.wait();
    _is_paused = False; dimse.get_msg(block=False)``, and ``send_c_store`` (find, move...)
    does ``checkpoint.clear()`` then waits for ``_is_paused``.  If the reactor has just
    left ``wait()`` but not yet reset ``_is_paused``, the sender goes ahead, and with a
    fast peer (TCP_NODELAY on both ends) the reactor takes the C-STORE response off the
    queue first: the sender then waits for the DIMSE timeout (seen on about one in five
    70-instance transfers to DCMTK storescp).  Here ``clear()`` returns only once the
    reactor is parked inside ``wait()`` with the gate closed, so it cannot be in between.
    """

    def __init__(self, reactor: threading.Thread, is_running: Callable[[], bool]) -> None:
        self._cond = threading.Condition()
        self._open = True
        self._parked = False
        self._reactor = reactor
        self._is_running = is_running

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._open = False
            if threading.current_thread() is self._reactor:
                return  # a handler running on the reactor itself: it is not in the loop
            # Bounded: before the reactor starts or after it ends nobody will park.
            while not self._parked and self._is_running():
                if not self._cond.wait(timeout=0.05):
                    continue

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            self._parked = True
            self._cond.notify_all()
            opened = self._cond.wait_for(lambda: self._open, timeout=timeout)
            self._parked = False
            return opened


def install_reactor_gate(assoc: Association) -> None:
    gate = _ReactorGate(assoc, lambda: assoc.is_alive() and not assoc._kill)
    previous = assoc._reactor_checkpoint
    assoc._reactor_checkpoint = gate  # type: ignore[assignment]
    previous.set()  # let a reactor blocked on the old event move on to the gate


class _TcpErrorCapture(logging.Handler):
    """Keeps pynetdicom's ``TCP Initialisation Error`` text for a clearer exception.

    pynetdicom logs the socket error and only reports "not established"; the text (refused,
    unreachable, TLS alert...) is what a user needs to act on.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("TCP Initialisation Error:"):
            self.messages.append(message.split(":", 1)[1].strip())


def _make_ae(peer: Peer) -> AE:
    ae = AE(ae_title=peer.calling_ae)
    ae.acse_timeout = peer.acse_timeout
    ae.dimse_timeout = peer.dimse_timeout
    ae.network_timeout = peer.network_timeout
    ae.connection_timeout = peer.connect_timeout
    ae.maximum_pdu_size = peer.max_pdu
    return ae


@contextmanager
def _associated(
    peer: Peer,
    contexts: Sequence[PresentationContext],
    *,
    ext_neg: list[Any] | None = None,
    evt_handlers: list[Any] | None = None,
) -> Iterator[Association]:
    """Establish an association, map every way it can fail, release it on exit."""
    if len(contexts) > MAX_CONTEXTS:
        raise ValueError(f"{len(contexts)} presentation contexts (at most {MAX_CONTEXTS})")
    enable_tcp_nodelay()
    ae = _make_ae(peer)
    opened = threading.Event()
    responses: list[Any] = []

    def _on_open(event: Any) -> None:
        opened.set()

    def _on_acse(event: Any) -> None:
        responses.append(event.primitive)

    handlers: list[Any] = [(evt.EVT_CONN_OPEN, _on_open), (evt.EVT_ACSE_RECV, _on_acse)]
    handlers += evt_handlers or []
    tls_args = None
    if peer.ssl_context is not None:
        tls_args = (peer.ssl_context, peer.server_hostname or peer.host)

    capture = _TcpErrorCapture()
    transport_logger = logging.getLogger("pynetdicom.transport")
    transport_logger.addHandler(capture)
    try:
        assoc = ae.associate(
            peer.host,
            peer.port,
            contexts=list(contexts),
            ae_title=peer.called_ae,
            max_pdu=peer.max_pdu,
            ext_neg=ext_neg,
            tls_args=tls_args,
            evt_handlers=handlers,
        )
    finally:
        transport_logger.removeHandler(capture)

    if not assoc.is_established:
        rejection = next((r for r in responses if getattr(r, "result", None) in (1, 2)), None)
        if assoc.is_rejected or rejection is not None:
            rsp = rejection
            result = str(getattr(rsp, "result_str", ""))
            source = str(getattr(rsp, "source_str", ""))
            reason = str(getattr(rsp, "reason_str", ""))
            detail = f": {reason} ({result}, from {source})" if rsp is not None else ""
            hint = ""
            if "called ae" in reason.lower():
                hint = f"; check the called AE title, now {peer.called_ae!r}"
            elif "calling ae" in reason.lower():
                hint = f"; the peer does not know our calling AE title {peer.calling_ae!r}"
            raise AssociationRejected(
                f"association rejected by {peer.address}{detail}{hint}", result, source, reason
            )
        if not opened.is_set():
            why = capture.messages[-1] if capture.messages else "no connection"
            tls = " (TLS)" if peer.ssl_context is not None else ""
            raise ConnectionFailed(f"cannot connect to {peer.host}:{peer.port}{tls}: {why}")
        if assoc.is_aborted:
            kinds = ", ".join(type(r).__name__ for r in responses) or "no reply"
            raise AssociationAborted(f"{peer.address} aborted the association request ({kinds})")
        raise AssociationAborted(
            f"no answer from {peer.address} to the association request "
            f"within {peer.acse_timeout:g} s"
        )
    install_reactor_gate(assoc)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


@contextmanager
def _pynetdicom_config(**values: Any) -> Iterator[None]:
    """Set pynetdicom's process-wide ``_config`` switches for one call, then restore them.

    They are globals: restoring keeps an SCP in the same process (the node, a test) from
    inheriting what one SCU call needed.
    """
    saved = {name: getattr(_config, name) for name in values}
    for name, value in values.items():
        setattr(_config, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(_config, name, value)


def _check_response(status_ds: Dataset | None, peer: Peer, what: str) -> int:
    if status_ds is None or "Status" not in status_ds:
        raise AssociationAborted(
            f"no valid {what} response from {peer.address} (aborted or timed out)"
        )
    return int(status_ds.Status)


# --------------------------------------------------------------------------- echo


def echo(peer: Peer) -> EchoResult:
    """C-ECHO: raise unless the peer answered (any status is returned)."""
    with _associated(peer, [build_context(Verification)]) as assoc:
        status = _check_response(assoc.send_c_echo(), peer, "C-ECHO")
    return EchoResult(status=status, peer=peer.address)


# --------------------------------------------------------------------------- store


@dataclass
class _Item:
    source: str
    path: Path | None
    dataset: Dataset | None
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    has_meta: bool


def _uncompressed(ts: str) -> bool:
    return ts in UNCOMPRESSED


def _encoding_ts(ds: Dataset) -> str:
    implicit, little = ds.original_encoding
    if implicit is None:
        return ImplicitVRLittleEndian
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _inspect(source: Path | Dataset) -> _Item | StoreOutcome:
    """Read what the plan needs (SOP class/instance, transfer syntax) without pixel data."""
    if isinstance(source, Dataset):
        meta = getattr(source, "file_meta", None)
        ts = str(getattr(meta, "TransferSyntaxUID", "") or _encoding_ts(source))
        sop_class = str(source.get("SOPClassUID", ""))
        sop_instance = str(source.get("SOPInstanceUID", ""))
        label = f"<dataset {sop_instance or '?'}>"
        if not sop_class or not sop_instance:
            return StoreOutcome(label, error="no SOP Class/Instance UID: not a storable instance")
        return _Item(label, None, source, sop_class, sop_instance, ts, has_meta=False)

    label = str(source)
    try:
        try:
            ds = dcmread(source, stop_before_pixels=True)
            has_meta = "TransferSyntaxUID" in ds.file_meta
        except InvalidDicomError:
            ds = dcmread(source, stop_before_pixels=True, force=True)
            has_meta = False
    except (OSError, ValueError, EOFError, InvalidDicomError, TypeError, AttributeError) as exc:
        return StoreOutcome(label, error=f"not readable as DICOM: {exc}", skipped=True)
    meta_ts = ds.file_meta.get("TransferSyntaxUID") if has_meta else None
    ts = str(meta_ts) if meta_ts else _encoding_ts(ds)
    try:
        meta = ds.file_meta
        sop_class = str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", ""))
        sop_instance = str(
            ds.get("SOPInstanceUID", "") or meta.get("MediaStorageSOPInstanceUID", "")
        )
    except Exception as exc:  # a damaged element only shows up when decoded
        return StoreOutcome(label, error=f"not readable as DICOM: {exc}", skipped=True)
    if not _UID_RE.match(sop_class.strip("\0 ")) or not sop_instance:
        return StoreOutcome(
            label, error="not a DICOM instance (no SOP Class/Instance UID)", skipped=True
        )
    if sop_class == _DICOMDIR_CLASS:
        return StoreOutcome(
            label, sop_class, sop_instance, error="DICOMDIR: not sent", skipped=True
        )
    return _Item(label, source, None, sop_class, sop_instance, ts, has_meta)


def _contexts_for(sop_class: str, ts: str) -> list[tuple[str, tuple[str, ...]]]:
    """The file's own syntax alone, then the uncompressed ones, as two contexts.

    Alone, so that a peer able to take the file as it is cannot pick another syntax for
    the context (and force a re-encoding) just because it prefers it.
    """
    fallback = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    return [(sop_class, (ts,)), (sop_class, fallback)]


def _plan(items: list[_Item]) -> list[tuple[list[tuple[str, tuple[str, ...]]], list[_Item]]]:
    """Split items into association batches of at most MAX_CONTEXTS contexts each."""
    batches: list[tuple[list[tuple[str, tuple[str, ...]]], list[_Item]]] = []
    contexts: list[tuple[str, tuple[str, ...]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    batch: list[_Item] = []
    for item in items:
        needed = [c for c in _contexts_for(item.sop_class, item.transfer_syntax) if c not in seen]
        if len(contexts) + len(needed) > MAX_CONTEXTS and batch:
            batches.append((contexts, batch))
            contexts, seen, batch = [], set(), []
            needed = _contexts_for(item.sop_class, item.transfer_syntax)
        for c in needed:
            seen.add(c)
            contexts.append(c)
        batch.append(item)
    if batch:
        batches.append((contexts, batch))
    return batches


def _load_full(item: _Item) -> Dataset:
    if item.dataset is not None:
        return item.dataset
    assert item.path is not None
    return dcmread(item.path, force=not item.has_meta)


def _send_one(assoc: Association, item: _Item, peer: Peer, msg_id: int) -> StoreOutcome:
    accepted = [
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == item.sop_class
    ]
    base = StoreOutcome(item.source, item.sop_class, item.sop_instance)
    if not accepted:
        return _replace(base, error=f"SOP class {_class_name(item.sop_class)} not accepted by peer")
    converted_from: str | None = None
    try:
        if item.transfer_syntax in accepted and item.path is not None and item.has_meta:
            # Byte-for-byte from the file: no decode, no re-encode, constant memory.
            sent_ts = item.transfer_syntax
            with _pynetdicom_config(STORE_SEND_CHUNKED_DATASET=True):
                rsp = assoc.send_c_store(item.path, msg_id=msg_id)
        else:
            ds = _load_full(item)
            if item.transfer_syntax in accepted:
                sent_ts = item.transfer_syntax
            else:
                target = next((t for t in accepted if _uncompressed(t)), None)
                if target is None:
                    return _replace(
                        base,
                        error=f"peer accepted none of {_ts_name(item.transfer_syntax)} "
                        "or an uncompressed syntax",
                    )
                if not _uncompressed(item.transfer_syntax):
                    converted_from = item.transfer_syntax
                    if item.transfer_syntax == DeflatedExplicitVRLittleEndian:
                        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                    else:
                        ds.decompress(generate_instance_uid=False)
                    logger.warning(
                        "%s: peer accepts only uncompressed data for %s: decompressed from %s",
                        item.source,
                        _class_name(item.sop_class),
                        _ts_name(item.transfer_syntax),
                    )
                elif item.transfer_syntax == ExplicitVRBigEndian:
                    return _replace(
                        base, error="peer does not accept Explicit VR Big Endian for this class"
                    )
                sent_ts = target
            if not hasattr(ds, "file_meta"):
                ds.file_meta = FileMetaDataset()
            if "TransferSyntaxUID" not in ds.file_meta:
                # A bare data set: its own encoding; pynetdicom converts between implicit
                # and explicit little endian to what the context accepted.
                ds.file_meta.TransferSyntaxUID = _encoding_ts(ds)
            rsp = assoc.send_c_store(ds, msg_id=msg_id)
    except (ValueError, AttributeError, NotImplementedError, RuntimeError, OSError) as exc:
        if not assoc.is_established:
            raise AssociationAborted(f"{peer.address}: association lost: {exc}") from exc
        return _replace(base, error=f"cannot send: {exc}", converted_from=converted_from)
    if rsp is None or "Status" not in rsp:
        raise AssociationAborted(f"no C-STORE response from {peer.address} (aborted or timed out)")
    status = int(rsp.Status)
    error = None
    if status_category(status) == "Failure":
        comment = rsp.get("ErrorComment")
        error = f"C-STORE failed: 0x{status:04X}" + (f" ({comment})" if comment else "")
    return _replace(
        base, status=status, transfer_syntax=sent_ts, converted_from=converted_from, error=error
    )


def _replace(outcome: StoreOutcome, **changes: Any) -> StoreOutcome:
    from dataclasses import replace

    return replace(outcome, **changes)


def store(
    peer: Peer,
    sources: Iterable[Path | Dataset],
    *,
    on_progress: Callable[[int, int, StoreOutcome], None] | None = None,
) -> StoreReport:
    """C-STORE every source over as few associations as possible.

    Sources that are not DICOM instances are reported as skipped, a file the peer refuses
    as failed; the other files are still sent.  Raises only when nothing can be sent at all
    (connection, rejection), or :class:`AssociationAborted` (with the report so far) when
    an association is lost.
    """
    report = StoreReport()
    items: list[_Item] = []
    for source in sources:
        inspected = _inspect(source)
        if isinstance(inspected, StoreOutcome):
            report.outcomes.append(inspected)
        else:
            items.append(inspected)
    total = len(items) + len(report.outcomes)
    done = len(report.outcomes)
    for contexts, batch in _plan(items):
        built = [build_context(uid, list(syntaxes)) for uid, syntaxes in contexts]
        with _associated(peer, built) as assoc:
            report.associations += 1
            for index, item in enumerate(batch):
                try:
                    outcome = _send_one(assoc, item, peer, msg_id=(index % 65535) + 1)
                except AssociationAborted as exc:
                    for rest in batch[index:]:
                        report.outcomes.append(
                            StoreOutcome(
                                rest.source, rest.sop_class, rest.sop_instance, error=str(exc)
                            )
                        )
                    exc.report = report
                    raise
                report.outcomes.append(outcome)
                done += 1
                if on_progress is not None:
                    on_progress(done, total, outcome)
    return report


# --------------------------------------------------------------------------- find


def iter_find(peer: Peer, identifier: Dataset, model: QueryModel = "study") -> Iterator[Dataset]:
    """C-FIND: yield each matching identifier; raise on a failure status."""
    uid = _FIND_MODELS[model]
    with _associated(peer, [build_context(uid)]) as assoc:
        if not any(cx.abstract_syntax == uid for cx in assoc.accepted_contexts):
            raise NoAcceptedContext(f"{peer.address} does not support {uid.name}")
        for status_ds, match in assoc.send_c_find(identifier, uid):
            status = _check_response(status_ds, peer, "C-FIND")
            category = status_category(status)
            if category == "Pending":
                if match is not None:
                    yield match
                continue
            if category in ("Failure", "Cancel"):
                comment = status_ds.get("ErrorComment")
                raise OperationFailed(
                    f"C-FIND failed with status 0x{status:04X}"
                    + (f": {comment}" if comment else ""),
                    status,
                    str(comment) if comment else None,
                )
            return


def find(peer: Peer, identifier: Dataset, model: QueryModel = "study") -> list[Dataset]:
    """C-FIND: every matching identifier, in the order the peer sent them."""
    return list(iter_find(peer, identifier, model))


# --------------------------------------------------------------------------- move / get


def _safe_name(sop_instance: str) -> str:
    """A UID is not a path: only a valid UID becomes a file name as is."""
    if _UID_RE.match(sop_instance) and len(sop_instance) <= 64:
        return f"{sop_instance}.dcm"
    return hashlib.sha1(sop_instance.encode("utf-8", "replace")).hexdigest() + ".dcm"


class _FileWriter:
    """C-STORE handler writing what arrives into a directory (atomic rename)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.received: list[Path] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        try:
            sop_instance = str(event.request.AffectedSOPInstanceUID or "")
            target = self.directory / _safe_name(sop_instance)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".recv-")
            # pynetdicom's chunked receive (a process-wide switch: the node turns it on)
            # leaves the dataset in a file of its own, already in the DICOM file format.
            received = getattr(event.request, "_dataset_path", None)
            with os.fdopen(fd, "wb") as fh:
                if received is not None:
                    with open(received, "rb") as source:
                        shutil.copyfileobj(source, fh, 1 << 20)
                else:
                    fh.write(event.encoded_dataset())
            os.replace(tmp, target)
        except Exception:  # never let a handler raise: pynetdicom would answer 0xC211
            logger.exception("cannot write a received instance into %s", self.directory)
            return 0xA700
        with self._lock:
            self.received.append(target)
        return 0x0000


def _update_counts(result: RetrieveResult, status_ds: Dataset) -> None:
    for attr, keyword in (
        ("completed", "NumberOfCompletedSuboperations"),
        ("failed", "NumberOfFailedSuboperations"),
        ("warning", "NumberOfWarningSuboperations"),
        ("remaining", "NumberOfRemainingSuboperations"),
    ):
        value = status_ds.get(keyword)
        if value is not None:
            setattr(result, attr, int(value))


def _with_failed_list(status_ds: Dataset, response: Dataset | None) -> Dataset:
    """The final status, with the Failed SOP Instance UID List the identifier may carry."""
    if response is not None and "FailedSOPInstanceUIDList" in response:
        status_ds.FailedSOPInstanceUIDList = response.FailedSOPInstanceUIDList
    return status_ds


def _finish_retrieve(
    result: RetrieveResult, status: int, final: Dataset | None, what: str, peer: Peer
) -> RetrieveResult:
    result.status = status
    comment = final.get("ErrorComment") if final is not None else None
    result.comment = str(comment) if comment else None
    if final is not None and "FailedSOPInstanceUIDList" in final:
        value = final.FailedSOPInstanceUIDList
        result.failed_instances = [str(v) for v in (value if isinstance(value, list) else [value])]
    category = status_category(status)
    if category in ("Failure", "Cancel"):
        detail = f": {result.comment}" if result.comment else ""
        if what == "C-MOVE" and status == 0xA801:
            raise MoveDestinationUnknown(
                f"C-MOVE refused by {peer.address} with 0xA801 (move destination unknown){detail}",
                status,
                result.comment,
                result,
            )
        raise OperationFailed(
            f"{what} failed with status 0x{status:04X}{detail}", status, result.comment, result
        )
    return result


def _all_storage_contexts() -> list[PresentationContext]:
    contexts = []
    for uid in sorted(set(_STORAGE_CLASSES.values())):
        cx = build_context(uid, ALL_TRANSFER_SYNTAXES)
        contexts.append(cx)
    return contexts


def move(
    peer: Peer,
    identifier: Dataset,
    *,
    model: QueryModel = "study",
    destination: str | None = None,
    receiver: Receiver | None = None,
    on_progress: ProgressCallback | None = None,
) -> RetrieveResult:
    """C-MOVE to ``destination`` (default: our calling AE title).

    With ``receiver``, a storage SCP listens on ``receiver.port`` for the duration and
    writes what arrives into ``receiver.directory`` (gdcmscu ``--port-scp``).  The peer
    must know the destination's AE title, host and port: 0xA801 raises
    :class:`MoveDestinationUnknown`.
    """
    unrestricted = receiver is not None and receiver.accept_unknown_sop_classes
    with _pynetdicom_config(
        UNRESTRICTED_STORAGE_SERVICE=unrestricted or _config.UNRESTRICTED_STORAGE_SERVICE
    ):
        return _move(peer, identifier, model, destination, receiver, on_progress)


def _move(
    peer: Peer,
    identifier: Dataset,
    model: QueryModel,
    destination: str | None,
    receiver: Receiver | None,
    on_progress: ProgressCallback | None,
) -> RetrieveResult:
    uid = _MOVE_MODELS[model]
    result = RetrieveResult()
    server = None
    writer: _FileWriter | None = None
    if receiver is not None:
        receiver.directory.mkdir(parents=True, exist_ok=True)
        enable_tcp_nodelay()
        scp = _make_ae(peer)
        for cx in _all_storage_contexts():
            scp.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
        writer = _FileWriter(receiver.directory)
        try:
            server = scp.start_server(
                (receiver.bind_address, receiver.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, writer)],
                ssl_context=receiver.ssl_context,
            )
        except OSError as exc:
            raise ScuError(f"cannot listen on port {receiver.port}: {exc}") from exc
    try:
        with _associated(peer, [build_context(uid)]) as assoc:
            if not any(cx.abstract_syntax == uid for cx in assoc.accepted_contexts):
                raise NoAcceptedContext(f"{peer.address} does not support {uid.name}")
            status = 0
            final: Dataset | None = None
            for status_ds, response in assoc.send_c_move(
                identifier, destination or peer.calling_ae, uid
            ):
                status = _check_response(status_ds, peer, "C-MOVE")
                _update_counts(result, status_ds)
                if status_category(status) == "Pending":
                    if on_progress is not None:
                        total = result.completed + result.failed + result.warning
                        on_progress(total, total + result.remaining)
                    continue
                final = _with_failed_list(status_ds, response)
                break
            if writer is not None:
                result.received = list(writer.received)
            return _finish_retrieve(result, status, final, "C-MOVE", peer)
    finally:
        if server is not None:
            server.shutdown()


def _storage_contexts_for_get(
    sop_classes: Sequence[str] | None,
    transfer_syntaxes: Sequence[str] | None,
) -> list[PresentationContext]:
    syntaxes = list(transfer_syntaxes or ALL_TRANSFER_SYNTAXES)
    classes = (
        list(sop_classes)
        if sop_classes
        else [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    )
    if len(classes) > MAX_CONTEXTS - 1:
        raise ValueError(f"C-GET can propose at most {MAX_CONTEXTS - 1} storage SOP classes")
    return [build_context(uid, syntaxes) for uid in classes]


def get(
    peer: Peer,
    identifier: Dataset,
    directory: Path,
    *,
    model: QueryModel = "study",
    sop_classes: Sequence[str] | None = None,
    transfer_syntaxes: Sequence[str] | None = None,
    accept_unknown_sop_classes: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RetrieveResult:
    """C-GET into ``directory``, as getscu: propose storage classes with the SCP role.

    ``sop_classes`` defaults to pynetdicom's 120 common storage classes (an association
    holds one Q/R context plus at most 127 others).  The peer picks one transfer syntax
    per class among ``transfer_syntaxes`` (all known ones by default, uncompressed first).
    """
    uid = _GET_MODELS[model]
    directory.mkdir(parents=True, exist_ok=True)
    storage = _storage_contexts_for_get(sop_classes, transfer_syntaxes)
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in storage]
    result = RetrieveResult()
    writer = _FileWriter(directory)
    unrestricted = accept_unknown_sop_classes or _config.UNRESTRICTED_STORAGE_SERVICE
    with (
        _pynetdicom_config(UNRESTRICTED_STORAGE_SERVICE=unrestricted),
        _associated(
            peer,
            [build_context(uid), *storage],
            ext_neg=roles,
            evt_handlers=[(evt.EVT_C_STORE, writer)],
        ) as assoc,
    ):
        if not any(cx.abstract_syntax == uid for cx in assoc.accepted_contexts):
            raise NoAcceptedContext(f"{peer.address} does not support {uid.name}")
        status = 0
        final: Dataset | None = None
        for status_ds, response in assoc.send_c_get(identifier, uid):
            status = _check_response(status_ds, peer, "C-GET")
            _update_counts(result, status_ds)
            if status_category(status) == "Pending":
                if on_progress is not None:
                    total = result.completed + result.failed + result.warning
                    on_progress(total, total + result.remaining)
                continue
            final = _with_failed_list(status_ds, response)
            break
        result.received = list(writer.received)
        return _finish_retrieve(result, status, final, "C-GET", peer)


# --------------------------------------------------------------------------- helpers


def _class_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def _ts_name(uid: str) -> str:
    name = UID(uid).name
    return name if name else uid


def new_query_file_meta(model_uid: str) -> FileMetaDataset:
    """File meta for a query written with ``--store-query`` (readable by findscu)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = model_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def find_model_uid(model: QueryModel) -> str:
    return str(_FIND_MODELS[model])
