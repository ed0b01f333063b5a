"""A raw DICOM Upper Layer client for fuzzing: PDUs built by hand, sent as bytes.

Why not pynetdicom: a fuzz case must be able to send what no conforming library sends
(lengths that lie, fragments out of order, a dataset before its command), and thousands of
cases must stay cheap, so the client does nothing but pack bytes and read replies.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset

VERIFICATION = b"1.2.840.10008.1.1"
CT_IMAGE_STORAGE = b"1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = b"1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = b"1.2.840.10008.5.1.4.1.2.1.1"
IMPLICIT_LE = b"1.2.840.10008.1.2"
EXPLICIT_LE = b"1.2.840.10008.1.2.1"
APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"

RELEASE_RQ = struct.pack(">BxI", 0x05, 4) + bytes(4)
ABORT = struct.pack(">BxI", 0x07, 4) + bytes(4)


def item(kind: int, body: bytes) -> bytes:
    """A variable item (type, reserved, 16-bit length, body)."""
    return struct.pack(">BxH", kind, len(body)) + body


def pdu(kind: int, body: bytes) -> bytes:
    """A PDU (type, reserved, 32-bit length, body)."""
    return struct.pack(">BxI", kind, len(body)) + body


#: Contexts proposed by default: Verification, CT storage in two syntaxes, both C-FIND roots.
DEFAULT_CONTEXTS: tuple[tuple[int, bytes, bytes], ...] = (
    (1, VERIFICATION, IMPLICIT_LE),
    (3, CT_IMAGE_STORAGE, IMPLICIT_LE),
    (5, CT_IMAGE_STORAGE, EXPLICIT_LE),
    (7, STUDY_ROOT_FIND, IMPLICIT_LE),
    (9, PATIENT_ROOT_FIND, IMPLICIT_LE),
)


def associate_items(
    contexts: tuple[tuple[int, bytes, bytes], ...] = DEFAULT_CONTEXTS, max_pdu: int = 16384
) -> list[bytes]:
    """The variable items of an A-ASSOCIATE-RQ: application context, contexts, user info."""
    items = [item(0x10, APPLICATION_CONTEXT)]
    for context_id, abstract, transfer in contexts:
        body = bytes([context_id, 0, 0, 0]) + item(0x30, abstract) + item(0x40, transfer)
        items.append(item(0x20, body))
    user = item(0x51, struct.pack(">I", max_pdu)) + item(0x52, b"1.2.826.0.1.3680043.9.9")
    items.append(item(0x50, user))
    return items


def associate_rq(
    called: bytes = b"NODE",
    calling: bytes = b"FUZZ",
    items: list[bytes] | None = None,
    version: int = 1,
) -> bytes:
    """A well-formed A-ASSOCIATE-RQ (the starting point of most mutations)."""
    body = (
        struct.pack(">HH", version, 0)
        + called.ljust(16)[:16]
        + calling.ljust(16)[:16]
        + bytes(32)
        + b"".join(associate_items() if items is None else items)
    )
    return pdu(0x01, body)


def pdv(context_id: int, control: int, data: bytes) -> bytes:
    """A presentation data value item: length, context ID, control header, fragment."""
    return struct.pack(">IBB", len(data) + 2, context_id, control) + data


def p_data(*pdvs: bytes) -> bytes:
    return pdu(0x04, b"".join(pdvs))


def command_set(**elements: object) -> bytes:
    """A command set (implicit VR little endian) with its group length first."""
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    body = buffer.getvalue()
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def echo_rq(message_id: int = 1) -> bytes:
    return command_set(
        AffectedSOPClassUID=VERIFICATION.decode(),
        CommandField=0x0030,
        MessageID=message_id,
        CommandDataSetType=0x0101,
    )


def store_rq(sop_instance_uid: str, message_id: int = 1, sop_class: bytes = CT_IMAGE_STORAGE):
    return command_set(
        AffectedSOPClassUID=sop_class.decode(),
        CommandField=0x0001,
        MessageID=message_id,
        Priority=0,
        CommandDataSetType=0x0000,
        AffectedSOPInstanceUID=sop_instance_uid,
    )


def find_rq(message_id: int = 1, sop_class: bytes = STUDY_ROOT_FIND) -> bytes:
    return command_set(
        AffectedSOPClassUID=sop_class.decode(),
        CommandField=0x0020,
        MessageID=message_id,
        Priority=0,
        CommandDataSetType=0x0000,
    )


def encode(ds: Dataset, implicit: bool = True) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_dataset(buffer, ds)
    return buffer.getvalue()


def fragments(context_id: int, control: int, data: bytes, size: int = 16000) -> list[bytes]:
    """``data`` as P-DATA-TF PDUs of at most ``size`` bytes, the last one flagged last."""
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return [
        p_data(pdv(context_id, control | (2 if i == len(chunks) - 1 else 0), chunk))
        for i, chunk in enumerate(chunks)
    ]


class Closed(Exception):
    """The peer closed the connection (or aborted) before answering."""


@dataclass
class Reply:
    """One DIMSE reply: its command set, and its dataset when one followed."""

    command: Dataset
    dataset: Dataset | None = None

    @property
    def status(self) -> int:
        return int(self.command.Status)


class RawAssociation:
    """A socket that speaks just enough of PS3.8 to send fuzz and read the answers."""

    def __init__(self, port: int, rq: bytes | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(associate_rq() if rq is None else rq)
        kind, body = self.read_pdu()
        if kind != 0x02:
            self.close()
            raise Closed(f"association not accepted: PDU type 0x{kind:02X} {body.hex()}")

    def _recv_exact(self, size: int) -> bytes:
        chunks, got = [], 0
        while got < size:
            chunk = self.sock.recv(min(size - got, 1 << 16))
            if not chunk:
                raise Closed("connection closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def read_pdu(self) -> tuple[int, bytes]:
        kind, _, length = struct.unpack(">BBI", self._recv_exact(6))
        return kind, self._recv_exact(length)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply:
        """Read P-DATA-TF PDUs until a command (and its dataset, if any) is complete."""
        command, dataset = BytesIO(), BytesIO()
        parsed: Dataset | None = None
        while True:
            kind, body = self.read_pdu()
            if kind != 0x04:
                raise Closed(f"PDU type 0x{kind:02X} instead of a reply")
            offset = 0
            while offset < len(body):
                (length,) = struct.unpack_from(">I", body, offset)
                control = body[offset + 5]
                data = body[offset + 6 : offset + 4 + length]
                offset += 4 + length
                if control & 1:
                    command.write(data)
                    if control & 2:
                        command.seek(0)
                        parsed = read_dataset(command, True, True)
                        if parsed.CommandDataSetType == 0x0101:
                            return Reply(parsed)
                else:
                    dataset.write(data)
                    if control & 2:
                        assert parsed is not None
                        dataset.seek(0)
                        return Reply(parsed, read_dataset(dataset, True, True))

    def release(self) -> None:
        try:
            self.sock.sendall(RELEASE_RQ)
            self.read_pdu()
        except (OSError, Closed):
            pass
        self.close()

    def close(self) -> None:
        self.sock.close()


#: A-ASSOCIATE-RJ rejected-transient, service provider (presentation), local limit exceeded.
BUSY = struct.pack(">BxI", 0x03, 4) + bytes([0, 2, 3, 2])


def _read_one_pdu(sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack_from(">I", data, 2)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def send_and_drain(
    port: int, payload: bytes, timeout: float = 10.0, established_by: bytes = b""
) -> tuple[float, bytes]:
    """Send ``payload``, half-close, read until the node closes: (seconds, first reply bytes).

    When ``payload`` starts with ``established_by`` (a valid A-ASSOCIATE-RQ) and goes on,
    that part is sent first and the node's answer awaited, as a requestor must (PS3.8: no
    P-DATA before the A-ASSOCIATE-AC); the rest then reaches a node in state Sta6.

    A node busy with earlier connections answers A-ASSOCIATE-RJ "local limit exceeded":
    the payload was not exercised, so it is sent again (a few times, after a pause).
    """
    import time

    start = time.monotonic()
    staged = bool(established_by) and payload.startswith(established_by)
    staged = staged and len(payload) > len(established_by)
    for attempt in range(20):
        head = b""
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            try:
                if staged:
                    sock.sendall(established_by)
                    head = _read_one_pdu(sock)
                    if head[:1] == b"\x02":
                        sock.sendall(payload[len(established_by) :])
                else:
                    sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                while chunk := sock.recv(65536):
                    if len(head) < 64:
                        head += chunk[:64]
            except OSError:
                pass
        if not head.startswith(BUSY):
            break
        time.sleep(0.05 * (attempt + 1))
    return time.monotonic() - start, head
