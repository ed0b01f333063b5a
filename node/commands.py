"""DIMSE command sets of the retrieve path, encoded and decoded by hand.

Why: pydicom encodes a command set as a ``Dataset``, twice (once more for the group length),
which costs a few hundred microseconds per message; a C-MOVE or C-GET sends a C-STORE-RQ
and a pending C-MOVE-RSP/C-GET-RSP per instance, and reads a C-STORE-RSP.  These are a
handful of fixed elements in Implicit VR Little Endian (PS3.7 6.3.1, 9.3.1, 9.3.3, 9.3.4),
byte-identical to pynetdicom's encoding (``tests/services/test_commands.py`` compares them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_FIND_RSP = 0x8020
C_GET_RSP = 0x8010
C_MOVE_RSP = 0x8021
#: CommandDataSetType values: pynetdicom's "a dataset follows", and "none" (PS3.7 E.1-1)
DATASET_PRESENT = 0x0001
NO_DATASET = 0x0101

#: Message control headers (PS3.8 E.2): a command or dataset fragment, the last or not.
COMMAND_LAST, COMMAND_MORE, DATASET_LAST, DATASET_MORE = 0x03, 0x01, 0x02, 0x00
#: A presentation data value item's header: item length, context ID, control header.
PDV_OVERHEAD = 6

_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<HHLH")
_UL = struct.Struct("<HHLL")


class CommandError(ValueError):
    """A received command set that cannot be parsed, or is not the expected message."""


Fragment = bytes | bytearray | memoryview


def fragments(data: Fragment, last: int, more: int, max_pdu: int) -> list[tuple[int, Fragment]]:
    """(control header, fragment) pairs of ``data``, each PDV within ``max_pdu`` (0: any).

    ``max_pdu`` is the peer's maximum P-DATA-TF length; a PDV item adds ``PDV_OVERHEAD``
    bytes to its fragment (PS3.8 9.3.5.1, Annex E).
    """
    if isinstance(data, memoryview):
        data = data.cast("B")
    if not max_pdu:
        return [(last, data)]
    size = max_pdu - PDV_OVERHEAD
    if size <= 0:
        raise ValueError(f"maximum PDU length {max_pdu} cannot carry any data")
    if len(data) <= size:
        return [(last, data)]
    chunks = [data[start : start + size] for start in range(0, len(data), size)]
    return [(more, chunk) for chunk in chunks[:-1]] + [(last, chunks[-1])]


def message_fragments(
    command: Fragment, data: Fragment, max_pdu: int
) -> list[tuple[int, Fragment]]:
    """The fragments of a DIMSE message: its command set, then its dataset."""
    return fragments(command, COMMAND_LAST, COMMAND_MORE, max_pdu) + fragments(
        data, DATASET_LAST, DATASET_MORE, max_pdu
    )


def _us(element: int, value: int) -> bytes:
    return _US.pack(0x0000, element, 2, value)


def _text(element: int, value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += pad
    return _ELEMENT.pack(0x0000, element, len(raw)) + raw


def _with_group_length(body: bytes) -> bytes:
    return _UL.pack(0x0000, 0x0000, 4, len(body)) + body


def c_store_rq(
    sop_class_uid: str,
    sop_instance_uid: str,
    message_id: int,
    priority: int = 2,
    originator_aet: str | None = None,
    originator_id: int | None = None,
) -> bytes:
    """A C-STORE-RQ command set (a dataset follows), with the C-MOVE originator if given."""
    parts = [
        _text(0x0002, sop_class_uid, b"\0"),
        _us(0x0100, C_STORE_RQ),
        _us(0x0110, message_id),
        _us(0x0700, priority),
        _us(0x0800, DATASET_PRESENT),
        _text(0x1000, sop_instance_uid, b"\0"),
    ]
    if originator_aet:
        parts.append(_text(0x1030, originator_aet, b" "))
    if originator_id is not None:
        parts.append(_us(0x1031, originator_id))
    return _with_group_length(b"".join(parts))


def c_store_rsp(sop_class_uid: str, sop_instance_uid: str, responding_to: int) -> bytes:
    """A C-STORE-RSP command set with status Success and nothing optional (PS3.7 9.3.1.2)."""
    return _with_group_length(
        b"".join(
            (
                _text(0x0002, sop_class_uid, b"\0"),
                _us(0x0100, C_STORE_RSP),
                _us(0x0120, responding_to),
                _us(0x0800, NO_DATASET),
                _us(0x0900, 0x0000),
                _text(0x1000, sop_instance_uid, b"\0"),
            )
        )
    )


def c_find_rsp(
    sop_class_uid: str, responding_to: int, status: int, identifier: bool = True
) -> bytes:
    """A C-FIND-RSP command set (no Offending Element, no Error Comment)."""
    return _with_group_length(
        b"".join(
            (
                _text(0x0002, sop_class_uid, b"\0"),
                _us(0x0100, C_FIND_RSP),
                _us(0x0120, responding_to),
                _us(0x0800, DATASET_PRESENT if identifier else NO_DATASET),
                _us(0x0900, status),
            )
        )
    )


def pending_rsp(
    command_field: int,
    sop_class_uid: str,
    responding_to: int,
    remaining: int,
    completed: int,
    failed: int,
    warning: int,
) -> bytes:
    """A Pending (0xFF00) C-MOVE-RSP or C-GET-RSP command set without an identifier."""
    return _with_group_length(
        b"".join(
            (
                _text(0x0002, sop_class_uid, b"\0"),
                _us(0x0100, command_field),
                _us(0x0120, responding_to),
                _us(0x0800, NO_DATASET),
                _us(0x0900, 0xFF00),
                _us(0x1020, remaining),
                _us(0x1021, completed),
                _us(0x1022, failed),
                _us(0x1023, warning),
            )
        )
    )


@dataclass(frozen=True)
class StoreResponse:
    """What a C-STORE-RSP says."""

    responding_to: int
    status: int
    error_comment: str | None = None


def parse_elements(command: bytes | bytearray | memoryview) -> dict[int, bytes]:
    """The elements of an Implicit VR Little Endian command set, by element number."""
    data = bytes(command)
    elements: dict[int, bytes] = {}
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < 8:
            raise CommandError("truncated command set element")
        group, element, length = _ELEMENT.unpack_from(data, offset)
        offset += 8
        if group != 0x0000 or length == 0xFFFFFFFF or offset + length > end:
            raise CommandError(f"bad command set element ({group:04X},{element:04X})")
        elements[element] = data[offset : offset + length]
        offset += length
    return elements


def _uint16(elements: dict[int, bytes], element: int) -> int:
    value = elements.get(element)
    if value is None or len(value) != 2:
        raise CommandError(f"command set without a valid (0000,{element:04X})")
    return int.from_bytes(value, "little")


def parse_store_rsp(command: bytes | bytearray | memoryview) -> StoreResponse:
    """Read a C-STORE-RSP command set; raise ``CommandError`` for anything else."""
    elements = parse_elements(command)
    field = _uint16(elements, 0x0100)
    if field != C_STORE_RSP:
        raise CommandError(f"expected a C-STORE-RSP, received command 0x{field:04X}")
    comment = elements.get(0x0902)
    return StoreResponse(
        responding_to=_uint16(elements, 0x0120),
        status=_uint16(elements, 0x0900),
        error_comment=comment.decode("ascii", "replace").rstrip(" \0") if comment else None,
    )
