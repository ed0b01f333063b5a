"""The only ingest path: parse the header, write the file durably, index it, or leave nothing.

Order (ARCHITECTURE.md "Ingest"): header parsed from the received bytes (no pixel decode) ->
file written to a temp file, fsynced, renamed into place -> index updated in one transaction
-> only then may the caller answer Success.  If the index step fails the file is removed, so
nothing unacknowledged stays half-stored.

The bytes are stored exactly as received: our file meta (with the calling AE as
SourceApplicationEntityTitle) followed by the dataset as the peer encoded it.

Exceptions::

    IngestError
     ├── UnreadableDatasetError   the bytes do not parse as a dataset        (C-STORE 0xC000)
     ├── DatasetMismatchError     UIDs missing/invalid, or not the command's (C-STORE 0xA900)
     ├── OutOfResourcesError      disk full, quota, index down              (C-STORE 0xA700)
     └── NotAuthorizedError       the storage area is read-only             (C-STORE 0x0124)
"""

from __future__ import annotations

import itertools
import logging
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, cast

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from config.identity import IMPLEMENTATION_CLASS_UID as _CLASS_UID
from config.identity import IMPLEMENTATION_VERSION_NAME
from config.model import AEEntry
from storage.files import FileStore, InvalidUIDError, OutOfSpaceError, StoreError
from storage.header import HeaderError, extract
from storage.index import Index, QuotaExceededError

logger = logging.getLogger(__name__)

IMPLEMENTATION_CLASS_UID = UID(_CLASS_UID)


class IngestError(Exception):
    """An instance could not be stored; nothing of it is kept."""


class UnreadableDatasetError(IngestError):
    """The received bytes cannot be parsed as a dataset."""


class DatasetMismatchError(IngestError):
    """The dataset lacks its UIDs, has invalid ones, or does not match the request."""


class OutOfResourcesError(IngestError):
    """No room to store it (disk full, quota) or the index cannot take it now."""


class NotAuthorizedError(IngestError):
    """The AE's storage area does not accept storage (access ``R``)."""


@dataclass(frozen=True)
class IngestResult:
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    path: str
    size: int
    replaced: bool


def build_file_meta(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae: str
) -> bytes:
    """Preamble, prefix and encoded file meta for a received instance.

    Encoded by hand (group 0002 is always Explicit VR Little Endian, eight elements at
    most): pydicom's ``write_file_meta_info`` took longer than the rest of the file write.
    Values that are not plain ASCII go through pydicom, which the tests compare against.
    """
    source = source_ae.strip()
    values = (sop_class_uid, sop_instance_uid, transfer_syntax_uid, source)
    if not all(v.isascii() and len(v) < 0xFFF0 for v in values):
        return _build_file_meta_pydicom(*values)
    body = b"".join(
        (
            b"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01",
            _element(0x0002, b"UI", sop_class_uid, b"\x00"),
            _element(0x0003, b"UI", sop_instance_uid, b"\x00"),
            _element(0x0010, b"UI", transfer_syntax_uid, b"\x00"),
            _element(0x0012, b"UI", str(IMPLEMENTATION_CLASS_UID), b"\x00"),
            _element(0x0013, b"SH", IMPLEMENTATION_VERSION_NAME, b" "),
            _element(0x0016, b"AE", source, b" ") if source else b"",
        )
    )
    group_length = b"\x02\x00\x00\x00UL\x04\x00" + struct.pack("<L", len(body))
    return b"\x00" * 128 + b"DICM" + group_length + body


def _element(element: int, vr: bytes, value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += pad
    return struct.pack("<HH", 0x0002, element) + vr + struct.pack("<H", len(raw)) + raw


def _build_file_meta_pydicom(
    sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae: str
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    buffer = BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Received:
    """A dataset as the peer encoded it: in memory, or in a file from ``offset`` on.

    Large instances arrive in a file (pynetdicom's chunked receive), so neither parsing
    the header nor writing the stored file ever holds the whole dataset in memory.
    """

    data: bytes | memoryview | None = None
    path: Path | None = None
    offset: int = 0
    #: The file meta in front of the dataset in ``path`` (exactly ``offset`` bytes), when
    #: the receiver wrote it with ``build_file_meta``: the file can then become the stored
    #: file as it is, without a copy (``FileStore.adopt``).
    meta: bytes | None = None
    #: The header, already parsed from these bytes while they arrived (``EarlyHeader``).
    header: Dataset | None = None

    @classmethod
    def from_file(cls, path: Path) -> Received:
        """A received file in the DICOM file format: the dataset starts after its meta."""
        with open(path, "rb") as fh:
            read_preamble(fh, False)
            _read_file_meta_info(fh)
            return cls(path=path, offset=fh.tell())

    def stream(self) -> BinaryIO:
        if self.data is not None:
            return BytesIO(self.data)
        assert self.path is not None
        fh = open(self.path, "rb")  # noqa: SIM115 - closed by the caller's with-block
        fh.seek(self.offset)
        return fh

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        if self.data is not None:
            yield self.data
            return
        with self.stream() as fh:
            while chunk := fh.read(size):
                yield chunk


class Ingestor:
    """Stores received instances for the AE titles of the AETable."""

    def __init__(self, index: Index, stores: dict[str, FileStore]) -> None:
        self.index = index
        self.stores = stores

    def store(
        self,
        ae: AEEntry,
        dataset: Received | bytes | memoryview,
        transfer_syntax_uid: str,
        *,
        calling_ae_title: str = "",
        expected_sop_class_uid: str | None = None,
        expected_sop_instance_uid: str | None = None,
    ) -> IngestResult:
        """Store one dataset (encoded in ``transfer_syntax_uid``) for ``ae``."""
        if not ae.can_store:
            raise NotAuthorizedError(f"storage area of {ae.title} is read-only")
        store = self.stores[ae.title]
        syntax = UID(transfer_syntax_uid)
        received = dataset if isinstance(dataset, Received) else Received(data=dataset)
        try:
            header = received.header
            if header is None:
                with received.stream() as stream:
                    header = _read_header(stream, syntax)
            record = extract(header, str(syntax))
        except HeaderError as exc:
            raise DatasetMismatchError(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on bad bytes
            raise UnreadableDatasetError(f"cannot parse dataset: {exc}") from exc
        if expected_sop_instance_uid and record.sop_instance_uid != expected_sop_instance_uid:
            raise DatasetMismatchError("SOPInstanceUID differs from the C-STORE request")
        if expected_sop_class_uid and record.sop_class_uid != expected_sop_class_uid:
            raise DatasetMismatchError("SOPClassUID differs from the C-STORE request")

        meta = build_file_meta(
            record.sop_class_uid, record.sop_instance_uid, str(syntax), calling_ae_title
        )
        try:
            # Always a name of its own: a replacement must not overwrite the file the index
            # still points at before the index commit moves the pointer.
            path = store.relative_path(
                record.study_instance_uid, record.sop_instance_uid, unique=True
            )
            if (
                received.path is not None
                and received.meta == meta
                and received.offset == len(meta)
                and received.path.parent == store.tmp
            ):
                pending = store.adopt(path, received.path)
            else:
                pending = store.put(path, itertools.chain((meta,), received.chunks()))
        except InvalidUIDError as exc:
            raise DatasetMismatchError(str(exc)) from exc
        except OutOfSpaceError as exc:
            raise OutOfResourcesError(str(exc)) from exc
        except StoreError as exc:
            raise OutOfResourcesError(str(exc)) from exc

        size = pending.size
        try:
            outcome = self.index.record(
                ae.title, record, path, size, calling_ae_title=calling_ae_title, quota=ae.quota
            )
        except QuotaExceededError as exc:
            pending.abort()
            raise OutOfResourcesError(str(exc)) from exc
        except Exception as exc:
            pending.abort()
            raise OutOfResourcesError(f"index unavailable: {exc}") from exc
        # Replaced files go before the marker: after a crash in between, recovery finds
        # the marker and removes what the index no longer points at.
        for stale in outcome.files_to_delete:
            if stale != path:
                store.delete(stale)
        pending.done()
        return IngestResult(
            sop_instance_uid=record.sop_instance_uid,
            study_instance_uid=record.study_instance_uid,
            series_instance_uid=record.series_instance_uid,
            path=path,
            size=size,
            replaced=outcome.replaced,
        )


class EarlyHeader:
    """Parses a dataset's header from its first bytes, while the rest is still arriving.

    Why: a C-STORE's sender waits for the response before it sends the next instance, so
    whatever ingest does after the last fragment adds to every instance's round trip.
    The header is in the first fragment or two; parsing it then, while the sender keeps
    filling the socket buffers with pixel data, takes that work off the round trip.

    ``feed`` gets the dataset's bytes in order and returns the header once the bytes up
    to the pixel data have arrived.  It keeps at most ``LIMIT`` bytes and parses when what
    it holds has doubled, so a header that never completes (no pixel data, a huge header)
    costs a few parses of small prefixes; ingest then parses the stored file as before.
    """

    LIMIT = 1 << 20

    def __init__(self, transfer_syntax_uid: str) -> None:
        self._syntax = UID(transfer_syntax_uid) if transfer_syntax_uid else None
        #: Still looking for the header (False once found or given up).
        self.waiting = (
            self._syntax is not None
            and self._syntax.is_transfer_syntax
            and (
                self._syntax != "1.2.840.10008.1.2.1.99"  # deflated: decompress at the end
            )
        )
        self._buffer = bytearray()
        self._next_try = 0

    def feed(self, data: bytes | memoryview) -> Dataset | None:
        if not self.waiting:
            return None
        self._buffer += data
        if len(self._buffer) < self._next_try:
            return None
        header = _parse_complete_header(self._buffer, cast(UID, self._syntax))
        if header is not None or len(self._buffer) >= self.LIMIT:
            self.waiting = False
            self._buffer = bytearray()
            return header
        self._next_try = 2 * len(self._buffer)
        return None


def _parse_complete_header(data: bytearray, syntax: UID) -> Dataset | None:
    """The header in ``data`` if the pixel data's tag is there (so nothing before it is
    cut), else None."""
    reached: list[bool] = []

    def stop(tag: object, vr: object, length: object) -> bool:
        if _stop_at_pixels(tag, vr, length):
            reached.append(True)
            return True
        return False

    try:
        ds = read_dataset(
            BytesIO(data), syntax.is_implicit_VR, syntax.is_little_endian, stop_when=stop
        )
    except Exception:  # noqa: BLE001 - cut or bad bytes: the full parse at the end decides
        return None
    if not reached:
        return None
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _read_header(fp: BinaryIO, syntax: UID) -> Dataset:
    """Parse the dataset (without pixel data) in the negotiated transfer syntax."""
    if syntax == "1.2.840.10008.1.2.1.99":  # Deflated Explicit VR Little Endian
        fp = BytesIO(zlib.decompressobj(-zlib.MAX_WBITS).decompress(fp.read()))
        implicit, little = False, True
    else:
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    ds = read_dataset(fp, implicit, little, stop_when=_stop_at_pixels)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _stop_at_pixels(tag: object, vr: object, length: object) -> bool:
    return int(tag) >= 0x7FE00008  # type: ignore[call-overload]
