"""The clients every system is measured with: DCMTK ``storescu``/``findscu``/``movescu``.

Why DCMTK for everyone: the sender must be the same program for us and for the peers, and a
C++ client costs the receiver nothing it would not cost with a modality.  The one exception
is ``FindSession``, a lean SCU of our own (pynetdicom's PDU classes, one thread, blocking
reads) that keeps one association open to time C-FIND round trips without the process start
and association set-up of ``findscu`` (the index targets are about the query, not about
starting a process).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pydicom.dataset import Dataset

from bench.peers import CLIENT_AET, MOVE_DEST_AET, peer_env

HOST = "127.0.0.1"

#: storescu's option to propose each transfer syntax (as tests/interop/test_dcmtk.py).
STORESCU_FLAG = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
}


class ClientError(RuntimeError):
    """A DCMTK client failed (its stderr is in the message)."""


def binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ClientError(f"{name} not installed (apt-get install dcmtk)")
    return path


@dataclass
class StoreResult:
    elapsed: float
    sent: int
    failed_files: list[str]


def _failed_files(stderr: str, files: Sequence[str]) -> list[str]:
    # storescu names the files it could not send ("Store Failed, file: ...", "unknown
    # storage SOP class in file: ...", "missing SOP class (or instance) in file: ...")
    complaints = [line for line in stderr.splitlines() if "file: " in line]
    return [f for f in files if any(f"file: {f}" in c for c in complaints)]


def storescu_dirs(
    aet: str, port: int, groups: Sequence[Sequence[Path]], timeout: float = 1800
) -> float:
    """Send every file under the folders of each group, one ``storescu`` (one association)
    per group, all at once; returns the wall-clock time until the last one exits."""
    args = [binary("storescu"), "-aet", CLIENT_AET, "-aec", aet, "+sd", "+r", HOST, str(port)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*args, *(str(folder) for folder in group)],
            env=peer_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for group in groups
    ]
    errors = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            errors.append(stderr.decode(errors="replace").strip()[-400:])
    elapsed = time.perf_counter() - start
    if errors:
        raise ClientError(f"storescu failed: {' | '.join(errors)}")
    return elapsed


def storescu_files(
    aet: str, port: int, files: Sequence[str], flags: Sequence[str], timeout: float = 1800
) -> StoreResult:
    """One ``storescu -R -nh`` association for ``files`` (the corpus: it must not halt on a
    file the receiver refuses)."""
    args = [binary("storescu"), "-aet", CLIENT_AET, "-aec", aet, "-R", "-nh", *flags]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, HOST, str(port), *files],
        env=peer_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    failed = _failed_files(proc.stderr, files)
    return StoreResult(elapsed=elapsed, sent=len(files) - len(failed), failed_files=failed)


def _key_args(keys: dict[str, str]) -> list[str]:
    out = []
    for keyword, value in keys.items():
        out += ["-k", f"{keyword}={value}" if value else keyword]
    return out


def findscu(aet: str, port: int, keys: dict[str, str], timeout: float = 120) -> float:
    """One ``findscu`` (study root) run: process, association, query, release."""
    args = [binary("findscu"), "-aet", CLIENT_AET, "-aec", aet, "-S", *_key_args(keys)]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, HOST, str(port)],
        env=peer_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise ClientError(f"findscu failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return elapsed


def movescu(aet: str, port: int, keys: dict[str, str], timeout: float = 1800) -> float:
    """One ``movescu`` (study root) run moving to ``DEST``; returns the wall-clock time."""
    args = [
        binary("movescu"),
        "-aet",
        CLIENT_AET,
        "-aec",
        aet,
        "-aem",
        MOVE_DEST_AET,
        "-S",
        *_key_args(keys),
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, HOST, str(port)],
        env=peer_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise ClientError(f"movescu failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return elapsed


def identifier(keys: dict[str, str]) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


class FindSession:
    """One open association (Study Root C-FIND) from a lean SCU: one thread, blocking reads.

    Why not pynetdicom's SCU: its DUL thread sleeps 1 ms whenever the socket is momentarily
    empty (a request waits up to 1 ms to go out, each burst of responses up to 1 ms to be
    read), and its association thread can take a response off the DIMSE queue between two
    C-FINDs (``send_c_find`` pauses it through a checkpoint that it checks racily), losing a
    match or the final response (the C-FIND then waits for ``dimse_timeout``).  This client
    does what ``findscu`` does: association set-up with pynetdicom's PDU classes, then each
    request written and its responses read on this thread, every identifier decoded by
    pydicom (as a viewer would).  The same client measures every system.
    """

    def __init__(self, aet: str, port: int, timeout: float = 120) -> None:
        import socket

        from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID
        from pynetdicom._globals import DEFAULT_MAX_LENGTH, DEFAULT_TRANSFER_SYNTAXES
        from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
        from pynetdicom.pdu_primitives import (
            A_ASSOCIATE,
            ImplementationClassUIDNotification,
            MaximumLengthNotification,
        )
        from pynetdicom.presentation import build_context
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind
        from pynetdicom.transport import AddressInformation

        self._model = str(StudyRootQueryRetrieveInformationModelFind)
        self._message_id = 0
        self._sock = socket.create_connection((HOST, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = A_ASSOCIATE()
        request.application_context_name = "1.2.840.10008.3.1.1.1"
        request.calling_ae_title = CLIENT_AET
        request.called_ae_title = aet
        request.calling_presentation_address = AddressInformation("127.0.0.1", 0)
        request.called_presentation_address = AddressInformation(HOST, port)
        context = build_context(self._model, DEFAULT_TRANSFER_SYNTAXES)
        context.context_id = 1
        request.presentation_context_definition_list = [context]
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = DEFAULT_MAX_LENGTH
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        request.user_information = [max_length, implementation]
        pdu = A_ASSOCIATE_RQ()
        pdu.from_primitive(request)
        self._sock.sendall(pdu.encode())
        pdu_type, body = self._read_pdu()
        if pdu_type != 0x02:
            self._sock.close()
            raise ClientError(f"association to {aet} on port {port} was not established")
        accept = A_ASSOCIATE_AC()
        accept.decode(bytes([0x02, 0, *len(body).to_bytes(4, "big")]) + body)
        accepted = [cx for cx in accept.presentation_context if cx.result == 0x00]
        if not accepted:
            self.close()
            raise ClientError(f"{aet} accepted no Study Root C-FIND context")
        self._context_id = int(accepted[0].context_id)
        syntax = accepted[0].transfer_syntax
        self._implicit = syntax == "1.2.840.10008.1.2"
        self._little = syntax != "1.2.840.10008.1.2.2"
        if syntax not in DEFAULT_TRANSFER_SYNTAXES or syntax == "1.2.840.10008.1.2.1.99":
            self.close()
            raise ClientError(f"{aet} accepted transfer syntax {syntax}, not handled here")
        self._peer_max = 0
        for item in accept.user_information.user_data:
            if type(item).__name__ == "MaximumLengthSubItem":
                self._peer_max = int(item.maximum_length_received or 0)
        self.established = True

    def _recv(self, size: int) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            chunk = self._sock.recv(size - len(buf))
            if not chunk:
                raise ClientError("the peer closed the connection")
            buf += chunk
        return bytes(buf)

    def _read_pdu(self) -> tuple[int, bytes]:
        header = self._recv(6)
        return header[0], self._recv(int.from_bytes(header[2:6], "big"))

    def _send_message(self, command: bytes, dataset: bytes) -> None:
        room = (self._peer_max or 1 << 30) - 6
        pdus = []
        for data, more, last in ((command, 0x01, 0x03), (dataset, 0x00, 0x02)):
            chunks = [data[i : i + room] for i in range(0, len(data), room)]
            for n, chunk in enumerate(chunks):
                control = last if n == len(chunks) - 1 else more
                pdv = bytes([self._context_id, control]) + chunk
                item = len(pdv).to_bytes(4, "big") + pdv
                pdus.append(bytes([0x04, 0]) + len(item).to_bytes(4, "big") + item)
        self._sock.sendall(b"".join(pdus))

    def _identifier_bytes(self, query: Dataset) -> bytes:
        from pydicom.filebase import DicomBytesIO
        from pydicom.filewriter import write_dataset

        fp = DicomBytesIO()
        fp.is_little_endian = self._little
        fp.is_implicit_VR = self._implicit
        write_dataset(fp, query)
        return fp.getvalue()

    def _responses(self) -> Iterator[tuple[int, bytes | None]]:
        """(status, identifier bytes) of each C-FIND-RSP, until the final one."""
        command, dataset = bytearray(), bytearray()
        status, has_dataset = None, False
        while True:
            pdu_type, body = self._read_pdu()
            if pdu_type != 0x04:
                raise ClientError(f"C-FIND: PDU type 0x{pdu_type:02X} instead of P-DATA")
            offset = 0
            while offset < len(body):
                length = int.from_bytes(body[offset : offset + 4], "big")
                control = body[offset + 5]
                data = body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if control & 1:
                    command += data
                    if not control & 2:
                        continue
                    elements = _command_elements(bytes(command))
                    status = int.from_bytes(elements[0x0900], "little")
                    has_dataset = int.from_bytes(elements[0x0800], "little") != 0x0101
                    command.clear()
                    if has_dataset:
                        continue
                    yield status, None
                else:
                    dataset += data
                    if not control & 2:
                        continue
                    yield cast(int, status), bytes(dataset)
                    dataset.clear()
                if status not in (0xFF00, 0xFF01):
                    return

    def find(self, keys: dict[str, str]) -> tuple[float, int]:
        """Time one C-FIND until its final response; returns (seconds, matches)."""
        from pydicom.filebase import DicomBytesIO
        from pydicom.filereader import read_dataset

        query = identifier(keys)
        start = time.perf_counter()
        self._message_id = self._message_id % 0xFFFF + 1
        self._send_message(_c_find_rq(self._model, self._message_id), self._identifier_bytes(query))
        matches = 0
        final = None
        for status, encoded in self._responses():
            if status in (0xFF00, 0xFF01):
                matches += 1
                if encoded:  # read it, as a client that uses the answer does
                    fp = DicomBytesIO(encoded)
                    read_dataset(fp, self._implicit, self._little)[(0x0020, 0x000D)]
            else:
                final = status
        elapsed = time.perf_counter() - start
        if final != 0x0000:
            raise ClientError(f"C-FIND ended with status 0x{final or 0:04X}")
        return elapsed, matches

    def close(self) -> None:
        if self.established:
            self.established = False
            try:
                self._sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-RELEASE-RQ
                self._read_pdu()  # A-RELEASE-RP
            except (OSError, ClientError):
                pass
        self._sock.close()


def _c_find_rq(sop_class_uid: str, message_id: int) -> bytes:
    """A C-FIND-RQ command set, priority medium, an identifier follows (PS3.7 9.3.2.1)."""
    uid = sop_class_uid.encode("ascii")
    if len(uid) % 2:
        uid += b"\0"
    body = (
        struct.pack("<HHL", 0, 0x0002, len(uid))
        + uid
        + struct.pack("<HHLH", 0, 0x0100, 2, 0x0020)
        + struct.pack("<HHLH", 0, 0x0110, 2, message_id)
        + struct.pack("<HHLH", 0, 0x0700, 2, 0x0002)
        + struct.pack("<HHLH", 0, 0x0800, 2, 0x0001)
    )
    return struct.pack("<HHLL", 0, 0, 4, len(body)) + body


def _command_elements(command: bytes) -> dict[int, bytes]:
    """The elements of an Implicit VR Little Endian command set, by element number."""
    out: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(command):
        _, element, length = struct.unpack_from("<HHL", command, offset)
        out[element] = command[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return out
