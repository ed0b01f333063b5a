"""Deterministic fuzz corpora: structured mutations of PDUs and of C-STORE datasets.

Every case is built from a well-formed starting point by one mutation that a broken or
hostile peer could produce: each PDU type with each kind of wrong length, truncation at each
boundary, wrong item types inside an A-ASSOCIATE-RQ, presentation data values with bad
lengths, control headers or order; and in a dataset, each element's length, VR or tag made
wrong, truncation at each element boundary, undefined-length mistakes.  A seeded random part
(byte flips, random bytes) covers what the structure misses.  Same cases on every run.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.reliability import rawdicom as r
from tests.services.helpers import make_ct

HUGE32 = (0xFFFFFFF0, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF)

# -- PDUs --------------------------------------------------------------------------------


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _rq_item_offsets(rq: bytes) -> list[tuple[int, int]]:
    """(offset, depth) of every variable item and sub-item of an A-ASSOCIATE-RQ."""
    found: list[tuple[int, int]] = []

    def walk(start: int, end: int, depth: int, skip: int) -> None:
        offset = start
        while offset + 4 <= end:
            kind = rq[offset]
            (length,) = struct.unpack_from(">H", rq, offset + 2)
            found.append((offset, depth))
            body = offset + 4
            if kind == 0x20 and depth == 0:
                walk(body + 4, body + length, 1, 0)
            elif kind == 0x50 and depth == 0:
                walk(body, body + length, 1, 0)
            offset = body + length

    walk(6 + 68, len(rq), 0, 0)
    return found


def pdu_cases() -> Iterator[tuple[str, bytes]]:
    """(name, bytes sent on a fresh connection) for the PDU fuzz corpus.

    Cases that start with ``associate_rq()`` are meant to be sent in two steps: the RQ,
    then, once the node accepted, the rest (``rawdicom.send_and_drain(established_by=)``).
    """
    rq = r.associate_rq()
    echo = r.echo_rq()
    valid_echo = r.p_data(r.pdv(1, 3, echo))

    # 1. every PDU type, alone, with every kind of length
    for kind in (*range(0x00, 0x09), 0x10, 0x7F, 0x80, 0xFF):
        for length in (0, 1, 3, 4, 5, 6, 68, 1 << 20, *HUGE32):
            for body in (b"", bytes(4), bytes(range(256)) * 2):
                yield (
                    f"type{kind:02X}-len{length:X}-body{len(body)}",
                    struct.pack(">BxI", kind, length) + body,
                )

    # 2. the A-ASSOCIATE-RQ truncated at every byte of its fixed part and item headers,
    #    then every 5th byte
    items = _rq_item_offsets(rq)
    cuts = set(range(1, 80)) | set(range(80, len(rq), 5))
    for offset, _ in items:
        cuts |= {offset - 1, offset, offset + 1, offset + 2, offset + 3, offset + 4}
    for cut in sorted(c for c in cuts if 0 < c < len(rq)):
        yield f"rq-cut{cut}", rq[:cut]

    # 3. the RQ's own length field
    true = len(rq) - 6
    for length in (true - 1, true + 1, 0, 1, true * 2, 1 << 20, (1 << 20) + 1, *HUGE32):
        yield f"rq-len{length:X}", _patch(rq, 2, struct.pack(">I", length))
    # 4. fixed fields: version, AE titles, reserved bytes
    for version in (0, 2, 0x8001, 0xFFFF):
        yield f"rq-version{version}", _patch(rq, 6, struct.pack(">H", version))
    titles = (
        b"",
        b" " * 16,
        b"NODE\0",
        b"\xff" * 16,
        b"node",
        b"../../x",
        b"NODE'; DROP--",
        b"\\NODE",
        b"*",
    )
    for title in titles:
        yield f"rq-called-{title!r}", _patch(rq, 10, title.ljust(16)[:16])
        yield f"rq-calling-{title!r}", _patch(rq, 26, title.ljust(16)[:16])
    yield "rq-reserved-ff", _patch(rq, 42, b"\xff" * 32)

    # 5. every item and sub-item: wrong lengths, wrong types
    item_types = (0x00, 0x10, 0x20, 0x21, 0x30, 0x40, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55)
    item_types += (0x56, 0x57, 0x58, 0x59, 0x5A, 0x7F, 0xFF)
    for offset, depth in items:
        (length,) = struct.unpack_from(">H", rq, offset + 2)
        for new in {length - 1, length + 1, 0, 1, 0xFFFF, length + 100} - {length}:
            if new >= 0:
                yield (
                    f"rq-item{offset}-d{depth}-len{new}",
                    _patch(rq, offset + 2, struct.pack(">H", new)),
                )
        for kind in item_types:
            if kind != rq[offset]:
                yield f"rq-item{offset}-d{depth}-type{kind:02X}", _patch(rq, offset, bytes([kind]))

    # 6. item lists that are wrong as a whole
    base = r.associate_items()
    app, contexts, user = base[0], base[1:-1], base[-1]
    ctx = r.DEFAULT_CONTEXTS

    def with_items(name: str, new_items: list[bytes]) -> tuple[str, bytes]:
        return name, r.associate_rq(items=new_items)

    yield with_items("items-none", [])
    yield with_items("items-no-app-context", contexts + [user])
    yield with_items("items-no-contexts", [app, user])
    yield with_items("items-no-user", [app, *contexts])
    yield with_items("items-two-users", [app, *contexts, user, user])
    yield with_items("items-user-first", [user, app, *contexts])
    yield with_items("items-app-twice", [app, app, *contexts, user])
    yield with_items("items-bad-app-context", [r.item(0x10, b"1.2.3"), *contexts, user])
    yield with_items("items-long-app-context", [r.item(0x10, b"1" * 65000), *contexts, user])
    for context_id in (0, 2, 255, 254):
        yield with_items(
            f"items-context-id{context_id}",
            [app, *r.associate_items(((context_id, ctx[0][1], ctx[0][2]),))[1:-1], user],
        )
    yield with_items("items-context-dup", [app, contexts[0], contexts[0], user])
    many = tuple((2 * i + 1, r.VERIFICATION, r.IMPLICIT_LE) for i in range(128))
    yield with_items("items-128-contexts", r.associate_items(many))
    yield with_items(
        "items-200-syntaxes",
        [app, r.item(0x20, bytes([1, 0, 0, 0]) + r.item(0x30, r.VERIFICATION))]
        + [r.item(0x40, b"1.2.3." + str(i).encode()) for i in range(200)]
        + [user],
    )
    for name, sub in (
        ("no-abstract", r.item(0x40, r.IMPLICIT_LE)),
        ("no-transfer", r.item(0x30, r.VERIFICATION)),
        ("empty", b""),
        ("long-abstract", r.item(0x30, b"1." * 5000) + r.item(0x40, r.IMPLICIT_LE)),
        ("unknown-syntax", r.item(0x30, r.VERIFICATION) + r.item(0x40, b"1.2.3.4.5")),
        ("nul-abstract", r.item(0x30, b"\0" * 16) + r.item(0x40, r.IMPLICIT_LE)),
    ):
        yield with_items(
            f"items-context-{name}", [app, r.item(0x20, bytes([1, 0, 0, 0]) + sub), user]
        )
    for max_length in (0, 1, 6, 0xFFFFFFFF):
        new_user = r.item(0x50, r.item(0x51, struct.pack(">I", max_length)))
        yield with_items(f"items-max-length-{max_length}", [app, *contexts, new_user])
    for name, sub in (
        ("max-length-short", r.item(0x51, b"\0\0")),
        ("impl-uid-long", r.item(0x52, b"1" * 4000)),
        ("async-ops", r.item(0x53, b"\xff\xff")),
        ("async-ops-short", r.item(0x53, b"")),
        ("role", r.item(0x54, b"\x00\x05abc")),
        ("role-long", r.item(0x54, struct.pack(">H", 64) + b"1" * 64 + b"\x01\x01")),
        ("role-liar", r.item(0x54, struct.pack(">H", 0xFFFF) + b"1.2")),
        ("impl-version", r.item(0x55, b"X" * 300)),
        ("sop-ext", r.item(0x56, struct.pack(">H", 3) + b"1.2\x01\x02")),
        ("sop-ext-liar", r.item(0x56, struct.pack(">H", 900) + b"1.2")),
        ("sop-common", r.item(0x57, b"\0\x03")),
        ("identity-type0", r.item(0x58, b"\x00\x00\x00\x01a\x00\x00")),
        ("identity-liar", r.item(0x58, b"\x02\x01\xff\xffab")),
        ("identity-pass-liar", r.item(0x58, b"\x02\x01\x00\x01a\xff\xff")),
        ("identity-huge", r.item(0x58, b"\x01\x00\x40\x00" + b"u" * 0x4000 + b"\x00\x00")),
        ("identity-rsp", r.item(0x59, b"\x00\x00")),
        ("unknown-sub", r.item(0x7E, b"??")),
    ):
        new_user = r.item(0x50, r.item(0x51, struct.pack(">I", 16384)) + sub)
        yield with_items(f"items-user-{name}", [app, *contexts, new_user])

    # 7. after an accepted association: every PDU type and length where a P-DATA belongs
    for kind in range(0x00, 0x100):
        yield f"sta6-type{kind:02X}", rq + struct.pack(">BxI", kind, 4) + bytes(4)
    for kind in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
        for length in (0, 1, 3, 5, 6, 16449, 1 << 20, *HUGE32):
            yield (
                f"sta6-type{kind:02X}-len{length:X}",
                rq + struct.pack(">BxI", kind, length) + bytes(min(length, 64)),
            )
    yield "sta6-rq-again", rq + rq
    # the same, pipelined: bytes after the RQ before the node's answer (state Sta3)
    pipelined = r.associate_rq(calling=b"PIPELINED")
    for kind in range(0x01, 0x08):
        yield f"sta3-type{kind:02X}", pipelined + struct.pack(">BxI", kind, 4) + bytes(4)
    yield "sta3-echo", pipelined + valid_echo
    yield "sta3-garbage", pipelined + b"\xff" * 100
    yield "sta6-release-rp", rq + struct.pack(">BxI", 0x06, 4) + bytes(4)

    # 8. presentation data values of a C-ECHO: lengths, context IDs, control headers
    pdv_body = bytes([1, 3]) + echo
    for length in (0, 1, 2, 3, len(pdv_body) - 1, len(pdv_body) + 1, 0xFFFF, *HUGE32):
        yield f"pdv-len{length:X}", rq + r.pdu(0x04, struct.pack(">I", length) + pdv_body)
    for context_id in (0, 2, 3, 7, 11, 255):
        yield f"pdv-context{context_id}", rq + r.p_data(r.pdv(context_id, 3, echo))
    for control in range(256):
        yield f"pdv-control{control:02X}", rq + r.p_data(r.pdv(1, control, echo)) + valid_echo
    yield "pdv-empty-pdu", rq + r.pdu(0x04, b"")
    yield "pdv-only-header", rq + r.pdu(0x04, struct.pack(">I", 2) + b"\x01\x03")
    yield (
        "pdv-100-fragments",
        rq
        + r.p_data(
            *[r.pdv(1, 1, echo[i : i + 1]) for i in range(len(echo) - 1)],
            r.pdv(1, 3, echo[-1:]),
        ),
    )
    yield "pdv-trailing-garbage", rq + r.pdu(0x04, r.pdv(1, 3, echo) + b"\x00\x01")

    # 9. command sets: truncated, wrong group length, wrong fields
    for cut in range(0, len(echo)):
        yield f"cmd-cut{cut}", rq + r.p_data(r.pdv(1, 3, echo[:cut]))
    for delta in (-1, 1, -100, 0x7FFFFFFF):
        (group,) = struct.unpack_from("<I", echo, 8)
        bad = _patch(echo, 8, struct.pack("<I", max(group + delta, 0) & 0xFFFFFFFF))
        yield f"cmd-group-length{delta}", rq + r.p_data(r.pdv(1, 3, bad))
    for field in (0x0000, 0x0002, 0x0030 | 0x8000, 0x0FFF, 0x0100, 0x0110, 0x0120, 0x0FFE):
        cmd = r.command_set(
            AffectedSOPClassUID=r.VERIFICATION.decode(),
            CommandField=field,
            MessageID=1,
            CommandDataSetType=0x0101,
        )
        yield f"cmd-field{field:04X}", rq + r.p_data(r.pdv(1, 3, cmd))
    for name, cmd in (
        (
            "no-message-id",
            r.command_set(
                AffectedSOPClassUID="1.2.840.10008.1.1",
                CommandField=0x30,
                CommandDataSetType=0x0101,
            ),
        ),
        ("no-sop-class", r.command_set(CommandField=0x30, MessageID=1, CommandDataSetType=0x0101)),
        (
            "no-dataset-type",
            r.command_set(AffectedSOPClassUID="1.2.840.10008.1.1", CommandField=0x30, MessageID=1),
        ),
        (
            "echo-with-dataset",
            r.command_set(
                AffectedSOPClassUID="1.2.840.10008.1.1",
                CommandField=0x30,
                MessageID=1,
                CommandDataSetType=0,
            ),
        ),
        (
            "cancel-unknown",
            r.command_set(
                CommandField=0x0FFF, MessageIDBeingRespondedTo=9, CommandDataSetType=0x0101
            ),
        ),
        (
            "store-rsp",
            r.command_set(
                AffectedSOPClassUID="1.2.840.10008.1.1",
                CommandField=0x8001,
                MessageIDBeingRespondedTo=1,
                CommandDataSetType=0x0101,
                Status=0,
            ),
        ),
        ("find-no-identifier", r.find_rq()),
        ("store-wrong-context", r.store_rq("1.2.3.4")),
    ):
        context_id = 7 if name in ("store-wrong-context", "find-no-identifier") else 1
        yield f"cmd-{name}", rq + r.p_data(r.pdv(context_id, 3, cmd)) + r.RELEASE_RQ
    yield "cmd-not-a-dataset", rq + r.p_data(r.pdv(1, 3, b"\xff" * 40))
    yield "cmd-explicit-vr", rq + r.p_data(r.pdv(1, 3, b"\0\0\0\0UL\x04\0\x04\0\0\0\0\0\0\0"))

    # 10. fragments out of order, datasets before commands, messages cut short
    ct = make_ct(rows=4)
    del ct.file_meta
    dataset = r.encode(ct)
    store = r.store_rq(ct.SOPInstanceUID)
    find_identifier = Dataset()
    find_identifier.QueryRetrieveLevel = "STUDY"
    find_identifier.StudyInstanceUID = ""
    identifier = r.encode(find_identifier)
    orders = {
        "dataset-before-command": [r.pdv(3, 2, dataset), r.pdv(3, 3, store)],
        "dataset-nonlast-before-command": [r.pdv(3, 0, dataset[:50]), r.pdv(3, 3, store)],
        "command-last-then-nonlast": [r.pdv(1, 3, echo), r.pdv(1, 1, echo)],
        "command-nonlast-then-dataset": [r.pdv(3, 1, store[:20]), r.pdv(3, 2, dataset)],
        "two-last-commands": [r.pdv(1, 3, echo), r.pdv(1, 3, echo)],
        "store-no-dataset-then-echo": [r.pdv(3, 3, store), r.pdv(1, 3, echo)],
        "store-dataset-other-context": [r.pdv(3, 3, store), r.pdv(5, 2, dataset)],
        "store-dataset-cut": [r.pdv(3, 3, store), r.pdv(3, 0, dataset[:100])],
        "store-dataset-cut-then-release": [r.pdv(3, 3, store), r.pdv(3, 0, dataset[:100])],
        "store-dataset-cut-then-command": [
            r.pdv(3, 3, store),
            r.pdv(3, 0, dataset[:100]),
            r.pdv(1, 3, echo),
        ],
        "store-empty-dataset": [r.pdv(3, 3, store), r.pdv(3, 2, b"")],
        "store-dataset-as-command": [r.pdv(3, 3, store), r.pdv(3, 3, dataset)],
        "find-identifier-never-last": [r.pdv(7, 3, r.find_rq()), r.pdv(7, 0, identifier)],
        "find-identifier-garbage": [r.pdv(7, 3, r.find_rq()), r.pdv(7, 2, b"\xff" * 33)],
        "find-identifier-cut": [r.pdv(7, 3, r.find_rq()), r.pdv(7, 2, identifier[:-3])],
        "interleaved-messages": [
            r.pdv(3, 3, store),
            r.pdv(3, 0, dataset[:64]),
            r.pdv(7, 3, r.find_rq()),
            r.pdv(3, 2, dataset[64:]),
        ],
    }
    for name, pdvs in orders.items():
        tail = r.RELEASE_RQ if name.endswith("release") else b""
        yield f"order-{name}", rq + r.p_data(*pdvs) + tail
        yield f"order-{name}-split", rq + b"".join(r.p_data(p) for p in pdvs) + tail
        yield f"order-{name}-abort", rq + b"".join(r.p_data(p) for p in pdvs) + r.ABORT

    # 11. seeded random: random bytes, a valid RQ with flipped bytes, a session with flips
    rng = random.Random(20240611)
    session = rq + valid_echo + r.RELEASE_RQ
    for i in range(150):
        yield f"random-bytes-{i}", rng.randbytes(rng.randint(1, 600))
    for i in range(150):
        yield f"random-after-rq-{i}", rq + rng.randbytes(rng.randint(1, 300))
    for i in range(200):
        data = bytearray(rq)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield f"random-rq-flips-{i}", bytes(data)
    for i in range(200):
        data = bytearray(session)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(rq), len(data))] = rng.randrange(256)
        yield f"random-session-flips-{i}", bytes(data)


# -- datasets ----------------------------------------------------------------------------

#: SOP Instance UID of every dataset case: this prefix + (100000000 + the case number).
UID_PREFIX = "1.2.826.0.1.3680043.10.999.7."
PLACEHOLDER = UID_PREFIX + "1" + "0" * 8

_LONG_VRS = {
    b"OB",
    b"OW",
    b"OF",
    b"OD",
    b"OL",
    b"OV",
    b"SQ",
    b"UT",
    b"UN",
    b"UC",
    b"UR",
    b"SV",
    b"UV",
}


def base_dataset() -> Dataset:
    """A small CT with a sequence (undefined length) and pixel data, SOP UID a placeholder."""
    ds = make_ct(
        rows=4, sop_uid=PLACEHOLDER, study_uid=UID_PREFIX + "1", series_uid=UID_PREFIX + "2"
    )
    del ds.file_meta
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    ds.StudyDescription = "CHEST PA"
    return ds


@dataclass(frozen=True)
class Element:
    offset: int
    header: int  # bytes before the value
    length_at: int  # offset of the length field
    length_size: int  # 2 or 4
    length: int  # value length as encoded (0xFFFFFFFF: undefined)
    end: int  # offset after the element (after the delimiter for undefined lengths)


def elements(data: bytes, implicit: bool) -> list[Element]:
    """The top-level elements of a little endian dataset (no nested undefined sequences)."""
    found, offset = [], 0
    while offset < len(data):
        if implicit or data[offset : offset + 4] in (b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"):
            (length,) = struct.unpack_from("<I", data, offset + 4)
            header, length_at, size = 8, offset + 4, 4
        else:
            vr = data[offset + 4 : offset + 6]
            if vr in _LONG_VRS:
                (length,) = struct.unpack_from("<I", data, offset + 8)
                header, length_at, size = 12, offset + 8, 4
            else:
                (length,) = struct.unpack_from("<H", data, offset + 6)
                header, length_at, size = 8, offset + 6, 2
        if length == 0xFFFFFFFF:
            end = data.index(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", offset) + 8
        else:
            end = offset + header + length
        found.append(Element(offset, header, length_at, size, length, end))
        offset = end
    return found


def _set_length(data: bytes, elem: Element, value: int) -> bytes:
    fmt = "<H" if elem.length_size == 2 else "<I"
    return _patch(
        data,
        elem.length_at,
        struct.pack(fmt, value & (0xFFFF if elem.length_size == 2 else 0xFFFFFFFF)),
    )


def dataset_mutations(implicit: bool) -> Iterator[tuple[str, bytes]]:
    """(name, mutated bytes) of the base dataset in one transfer syntax."""
    data = r.encode(base_dataset(), implicit)
    total = len(data)
    syntax = "ivr" if implicit else "evr"
    yield f"{syntax}-intact", data
    for elem in elements(data, implicit):
        tag = data[elem.offset : elem.offset + 4][::-1].hex()  # gggg eeee, byte-swapped pairs
        name = f"{syntax}-{tag}"
        length = elem.length
        undefined = length == 0xFFFFFFFF
        big = 0xFFFF if elem.length_size == 2 else 0xFFFFFFFF
        new_lengths = {0, 1, big, big - 15, total + 16, 0xFFFF}
        if not undefined:
            new_lengths |= {length - 1, length + 1, length | 1, length + 2}
        for new in sorted(new_lengths - {length}):
            if new >= 0:
                yield f"{name}-len{new:X}", _set_length(data, elem, new)
        for cut in {
            elem.offset,
            elem.offset + 1,
            elem.offset + elem.header - 1,
            elem.offset + elem.header,
            elem.end - 1,
        }:
            if 0 < cut < total:
                yield f"{name}-cut{cut}", data[:cut]
        for new_tag in (
            b"\xfe\xff\x00\xe0",
            b"\xfe\xff\x0d\xe0",
            b"\xfe\xff\xdd\xe0",
            b"\xe0\x7f\x10\x00",
            b"\x08\x00\x00\x00",
            b"\x02\x00\x10\x00",
            b"\xff\xff\xff\xff",
            b"\x09\x00\x10\x00",
        ):
            yield f"{name}-tag{new_tag.hex()}", _patch(data, elem.offset, new_tag)
        if not implicit:
            for vr in (b"XX", b"\0\0", b"SQ", b"UN", b"OB", b"ui", b"UT", b"DA"):
                if vr != data[elem.offset + 4 : elem.offset + 6]:
                    yield f"{name}-vr{vr.hex()}", _patch(data, elem.offset + 4, vr)

    # undefined-length mistakes around the sequence and the pixel data
    seq_at = data.index(b"\x08\x00\x18\x22")
    seq = next(e for e in elements(data, implicit) if e.offset == seq_at)
    body = data[seq.offset + seq.header : seq.end - 8]
    head = data[: seq.offset + seq.header]
    tail = data[seq.end :]
    item_delim = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    seq_delim = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    mistakes = {
        "seq-no-delimiter": head + body + tail,
        "seq-delimiter-twice": head + body + seq_delim + seq_delim + tail,
        "seq-item-delimiter-only": head + item_delim + seq_delim + tail,
        "seq-item-undefined-no-delimiter": head
        + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
        + body[8:]
        + seq_delim
        + tail,
        "seq-item-length-huge": head
        + b"\xfe\xff\x00\xe0\xf0\xff\xff\xff"
        + body[8:]
        + seq_delim
        + tail,
        "seq-nested-unclosed": head
        + (b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + data[seq_at : seq.offset + seq.header]) * 20
        + tail,
        "seq-delimiter-at-top": seq_delim + data,
        "item-delimiter-at-top": item_delim + data,
        "pixel-undefined-native": data[:-40]
        + b"\xe0\x7f\x10\x00"
        + (b"" if implicit else b"OW\0\0")
        + b"\xff\xff\xff\xff"
        + b"\xfe\xff\x00\xe0\x00\x00\x00\x00",
        "pixel-undefined-no-items": data[: data.rindex(b"\xe0\x7f\x10\x00")]
        + b"\xe0\x7f\x10\x00"
        + (b"" if implicit else b"OB\0\0")
        + b"\xff\xff\xff\xff",
        "trailing-padding": data
        + b"\xfc\xff\xfc\xff"
        + (b"" if implicit else b"OB\0\0")
        + b"\x04\x00\x00\x00"
        + bytes(4),
        "trailing-odd-byte": data + b"\x00",
        "empty": b"",
        "one-byte": b"\x08",
        "zeros": bytes(total),
        "ff": b"\xff" * total,
        "doubled": data + data,
    }
    for name, mutated in mistakes.items():
        yield f"{syntax}-{name}", mutated

    rng = random.Random(7 if implicit else 8)
    for i in range(100):
        buffer = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            buffer[rng.randrange(total)] = rng.randrange(256)
        yield f"{syntax}-flips-{i}", bytes(buffer)


def dataset_cases() -> Iterator[tuple[str, bool, bytes]]:
    """(name, implicit?, dataset bytes) for both syntaxes; the SOP Instance UID, where the
    mutation left it intact, is ``PLACEHOLDER`` for the caller to replace."""
    for implicit in (True, False):
        for name, data in dataset_mutations(implicit):
            yield name, implicit, data
