# SPDX-License-Identifier: GPL-2.0
"""Pure-Python reference model of the /dev/watch_queue notification ring.

Implements the ring ABI (the uapi header's comments, ring-abi.md):
the byte image of the mapping after every operation (meta entry, head word,
skip headers, loss records, zero padding), the kernel's authoritative head,
the pending loss count, the room check that treats hostile tails as "no
room", and the pipe filter semantics of kernel/watch_queue.c.

No I/O: the checker in harness/checkers/ring_diff.py compares this image with
the real mapping byte for byte.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from harness import uapi

# --- uapi (include/uapi/linux/watch_queue.h, from the installed headers) ----

_U = uapi.current()

WATCH_TYPE_META = _U.WATCH_TYPE_META
WATCH_TYPE_KEY_NOTIFY = _U.WATCH_TYPE_KEY_NOTIFY
WATCH_TYPE__NR = _U.WATCH_TYPE__NR

WATCH_META_REMOVAL_NOTIFICATION = _U.WATCH_META_REMOVAL_NOTIFICATION
WATCH_META_LOSS_NOTIFICATION = _U.WATCH_META_LOSS_NOTIFICATION
WATCH_META_SKIP_NOTIFICATION = _U.WATCH_META_SKIP_NOTIFICATION

WATCH_INFO_LENGTH = _U.WATCH_INFO_LENGTH  # pipe records: length in bytes
WATCH_INFO_NR_SLOTS = _U.WATCH_INFO_NR_SLOTS  # ring records: length in 8-byte slots
WATCH_INFO_ID = _U.WATCH_INFO_ID
WATCH_INFO_TYPE_INFO = _U.WATCH_INFO_TYPE_INFO

WATCH_QUEUE_RING_MAX_PAGES = _U.WATCH_QUEUE_RING_MAX_PAGES
WATCH_FILTER_MAX = 16  # not uapi: the nr_filters limit in kernel/watch_queue.c

SLOT_SIZE = _U.sizeof_watch_notification
META_SLOTS = _U.sizeof_watch_queue_ring_meta // SLOT_SIZE
LOSS_SLOTS = _U.sizeof_watch_notification_loss // SLOT_SIZE
MAX_RECORD_SLOTS = WATCH_INFO_NR_SLOTS
HEAD_OFFSET = _U.offsetof_watch_queue_ring_meta_head  # __u32 head in slot 1
TAIL_OFFSET = _U.offsetof_watch_queue_ring_meta_tail  # __u32 tail in slot 1
NR_LOST_OFFSET = _U.offsetof_watch_notification_loss_nr_lost
U32_MASK = 0xFFFFFFFF

IOC_WATCH_QUEUE_SET_SIZE = _U.IOC_WATCH_QUEUE_SET_SIZE
IOC_WATCH_QUEUE_SET_FILTER = _U.IOC_WATCH_QUEUE_SET_FILTER
IOC_WATCH_QUEUE_NR_PAGES = _U.IOC_WATCH_QUEUE_NR_PAGES
IOC_WATCH_QUEUE_TAKE_LOSS = _U.IOC_WATCH_QUEUE_TAKE_LOSS
IOC_WATCH_QUEUE_INJECT = _U.IOC_WATCH_QUEUE_INJECT

# --- struct watch_notification encoding ------------------------------------


def pack_header(wtype: int, subtype: int, info: int) -> bytes:
    """struct watch_notification: type:24, subtype:8 in one LE u32, then info."""
    if not 0 <= wtype <= 0xFFFFFF or not 0 <= subtype <= 0xFF:
        raise ValueError(f"type {wtype} / subtype {subtype} out of range")
    word = wtype | (subtype << 24)
    return word.to_bytes(4, "little") + (info & U32_MASK).to_bytes(4, "little")


def unpack_header(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """Return (type, subtype, info) of the header at data[offset:offset+8]."""
    word = int.from_bytes(data[offset:offset + 4], "little")
    info = int.from_bytes(data[offset + 4:offset + 8], "little")
    return word & 0xFFFFFF, word >> 24, info


def encode_record(wtype: int, subtype: int, payload: bytes = b"",
                  info: int = 0) -> bytes:
    """A ring-form record: header + payload zero-padded to whole slots.

    info bits 0..5 are replaced by the length in slots; all other bits of
    info (watch id, type info, and bits 6..7) are passed through as given.
    """
    nr_slots = 1 + -(-len(payload) // SLOT_SIZE)
    if nr_slots > MAX_RECORD_SLOTS:
        raise ValueError(f"payload of {len(payload)} bytes needs {nr_slots} slots")
    info = (info & ~WATCH_INFO_NR_SLOTS & U32_MASK) | nr_slots
    body = payload.ljust((nr_slots - 1) * SLOT_SIZE, b"\0")
    return pack_header(wtype, subtype, info) + body


def ring_record_from_pipe(record: bytes) -> bytes:
    """Turn a pipe-style record of B = info & WATCH_INFO_LENGTH bytes into ring
    form: L = ceil(B / 8) slots, info bits 0..6 replaced by L, zero padding."""
    wtype, subtype, info = unpack_header(record)
    nr_bytes = info & WATCH_INFO_LENGTH
    if nr_bytes < SLOT_SIZE or nr_bytes > len(record):
        raise ValueError(f"pipe record length {nr_bytes} invalid")
    nr_slots = -(-nr_bytes // SLOT_SIZE)
    info = (info & ~WATCH_INFO_LENGTH & U32_MASK) | nr_slots
    body = record[SLOT_SIZE:nr_bytes].ljust((nr_slots - 1) * SLOT_SIZE, b"\0")
    return pack_header(wtype, subtype, info) + body


META_ENTRY_HEADER = pack_header(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION,
                                META_SLOTS)


def skip_header(nr_slots: int) -> bytes:
    return pack_header(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, nr_slots)


def loss_record(nr_lost: int) -> bytes:
    """struct watch_notification_loss: META/LOSS, 2 slots, nr_lost, 0."""
    return (pack_header(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, LOSS_SLOTS)
            + (nr_lost & U32_MASK).to_bytes(4, "little") + bytes(4))


# --- filters (struct watch_notification_filter) ----------------------------

TYPE_FILTER_SIZE = _U.sizeof_watch_notification_type_filter
SUBTYPE_WORDS = (TYPE_FILTER_SIZE - 12) // 4  # after type, info_filter, info_mask
ALL_SUBTYPES: tuple[int, ...] = (U32_MASK,) * SUBTYPE_WORDS


def subtype_bitmap(subtypes: Iterable[int]) -> tuple[int, ...]:
    """The subtype_filter[8] words with a bit set for each subtype 0..255."""
    words = [0] * SUBTYPE_WORDS
    for st in subtypes:
        if not 0 <= st < 32 * SUBTYPE_WORDS:
            raise ValueError(f"subtype {st} out of range")
        words[st // 32] |= 1 << (st % 32)
    return tuple(words)


@dataclass(frozen=True)
class TypeFilter:
    """struct watch_notification_type_filter."""

    type: int
    info_filter: int = 0
    info_mask: int = 0
    subtype_filter: tuple[int, ...] = ALL_SUBTYPES

    def pack(self) -> bytes:
        if len(self.subtype_filter) != SUBTYPE_WORDS:
            raise ValueError("subtype_filter needs 8 words")
        words = (self.type, self.info_filter, self.info_mask,
                 *self.subtype_filter)
        return b"".join((w & U32_MASK).to_bytes(4, "little") for w in words)

    def matches(self, wtype: int, subtype: int, info: int) -> bool:
        word = self.subtype_filter[subtype // 32]
        return (wtype == self.type and bool(word >> (subtype % 32) & 1)
                and (info & self.info_mask) == self.info_filter)




def pack_filter(filters: Sequence[TypeFilter], reserved: int = 0) -> bytes:
    """struct watch_notification_filter with its flexible array."""
    head = len(filters).to_bytes(4, "little") + (reserved & U32_MASK).to_bytes(4, "little")
    return head + b"".join(f.pack() for f in filters)


def filter_errno(filters: Sequence[TypeFilter], reserved: int = 0) -> int:
    """0 if watch_queue_set_filter() accepts the filter, else the errno."""
    if not filters or len(filters) > WATCH_FILTER_MAX or reserved != 0:
        return errno.EINVAL
    for f in filters:
        if f.info_filter & ~f.info_mask or f.info_mask & WATCH_INFO_LENGTH:
            return errno.EINVAL
    return 0


class FilterError(ValueError):
    def __init__(self, err: int) -> None:
        super().__init__(errno.errorcode.get(err, str(err)))
        self.errno = err


# --- records as the consumer sees them -------------------------------------


@dataclass(frozen=True)
class Record:
    """One record read from the ring: its counter and its L*8 bytes."""

    counter: int
    data: bytes

    @property
    def header(self) -> tuple[int, int, int]:
        return unpack_header(self.data)

    @property
    def type(self) -> int:
        return self.header[0]

    @property
    def subtype(self) -> int:
        return self.header[1]

    @property
    def info(self) -> int:
        return self.header[2]

    @property
    def is_loss(self) -> bool:
        return self.header[:2] == (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION)

    @property
    def nr_lost(self) -> int:
        if not self.is_loss:
            return 0
        return int.from_bytes(self.data[NR_LOST_OFFSET:NR_LOST_OFFSET + 4], "little")


class RingBuffer(Protocol):
    """What the consumer needs of a mapping: a bytearray or an mmap."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice, /) -> bytes | bytearray: ...

    def __setitem__(self, key: slice, value: bytes, /) -> None: ...


def read_u32(buf: RingBuffer, offset: int) -> int:
    return int.from_bytes(buf[offset:offset + 4], "little")


def write_u32(buf: RingBuffer, offset: int, value: int) -> None:
    buf[offset:offset + 4] = (value & U32_MASK).to_bytes(4, "little")


@dataclass(frozen=True)
class ConsumeResult:
    records: list[Record]
    tail: int
    error: str | None = None  # why a protocol-following consumer stopped early


def consume_buffer(buf: RingBuffer, max_records: int | None = None) -> ConsumeResult:
    """The consumer protocol of ring-abi.md on any mapping.

    Reads head and tail from slot 1, skips META/SKIP records (the meta entry
    included), returns loss and data records, stores the new tail.  Stops
    with an error instead of looping on a corrupted ring.
    """
    nr_slots = len(buf) // SLOT_SIZE
    mask = nr_slots - 1
    head = read_u32(buf, HEAD_OFFSET)
    tail = start = read_u32(buf, TAIL_OFFSET)
    records: list[Record] = []
    error: str | None = None
    while tail != head and (max_records is None or len(records) < max_records):
        used = (head - tail) & U32_MASK
        idx = tail & mask
        if used > nr_slots:
            error = f"tail {tail:#x} outside head {head:#x} - {nr_slots}"
            break
        if idx == 1:
            error = f"tail {tail:#x} in the meta entry"
            break
        off = idx * SLOT_SIZE
        wtype, subtype, info = unpack_header(bytes(buf[off:off + SLOT_SIZE]))
        length = info & WATCH_INFO_NR_SLOTS
        if length == 0 or idx + length > nr_slots or length > used:
            error = f"bad record length {length} at {tail:#x}"
            break
        if (wtype, subtype) != (WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION):
            records.append(Record(tail, bytes(buf[off:off + length * SLOT_SIZE])))
        tail = (tail + length) & U32_MASK
    if tail != start:
        write_u32(buf, TAIL_OFFSET, tail)
    return ConsumeResult(records, tail, error)


# --- the ring ----------------------------------------------------------------


class PostStatus(enum.Enum):
    DELIVERED = "delivered"
    FILTERED = "filtered"
    LOST = "lost"


class Placement(NamedTuple):
    """A piece the writer placed: where, how long, what, and its bytes."""

    counter: int
    offset: int  # byte offset in the mapping
    nr_slots: int
    kind: str  # "meta", "skip", "loss" or "record"
    data: bytes  # what was written: the whole record, or only a header


class PostResult(NamedTuple):
    status: PostStatus
    head: int  # kernel head after the post
    placements: tuple[Placement, ...] = ()

    @property
    def touched(self) -> list[tuple[int, int]]:
        """(byte offset, length) of every byte the post wrote."""
        if self.status is not PostStatus.DELIVERED:
            return []
        return [(p.offset, len(p.data)) for p in self.placements] + [(HEAD_OFFSET, 4)]


@dataclass
class Counters:
    posted: int = 0  # post() calls with a valid record
    filtered: int = 0  # rejected by the filter (not lost)
    delivered: int = 0  # records written into the ring
    lost: int = 0  # records dropped for want of room
    loss_reported: int = 0  # sum of nr_lost written in loss records
    loss_taken: int = 0  # sum of take_loss() results


class Ring:
    """The ring as the kernel keeps it, plus the byte image of the mapping."""

    def __init__(self, nr_pages: int, page_size: int = 4096,
                 nr_types: int = WATCH_TYPE__NR) -> None:
        if nr_pages < 1 or nr_pages & (nr_pages - 1):
            raise ValueError(f"nr_pages {nr_pages} is not a power of two")
        if page_size < SLOT_SIZE or page_size & (page_size - 1):
            raise ValueError(f"page_size {page_size} is not a power of two")
        self.nr_slots = nr_pages * page_size // SLOT_SIZE
        if self.nr_slots < META_SLOTS + LOSS_SLOTS + MAX_RECORD_SLOTS:
            raise ValueError(f"{self.nr_slots} slots cannot hold every record")
        self.mask = self.nr_slots - 1
        self.nr_types = nr_types
        self.image = bytearray(self.nr_slots * SLOT_SIZE)
        self.image[0:SLOT_SIZE] = META_ENTRY_HEADER
        self.head = 0  # authoritative, kernel memory
        self.pending_lost = 0
        self.filters: tuple[TypeFilter, ...] | None = None
        self.counters = Counters()

    # -- consumer side: everything here is user-writable memory --

    @property
    def tail_word(self) -> int:
        return read_u32(self.image, TAIL_OFFSET)

    @property
    def head_word(self) -> int:
        return read_u32(self.image, HEAD_OFFSET)

    def set_tail(self, value: int) -> None:
        write_u32(self.image, TAIL_OFFSET, value)

    def scribble(self, offset: int, data: bytes) -> None:
        if offset < 0 or offset + len(data) > len(self.image):
            raise ValueError("scribble outside the mapping")
        self.image[offset:offset + len(data)] = data

    def consume(self, max_records: int | None = None) -> list[Record]:
        return consume_buffer(self.image, max_records).records

    # -- kernel side --

    def set_filter(self, filters: Sequence[TypeFilter] | None,
                   reserved: int = 0) -> None:
        """IOC_WATCH_QUEUE_SET_FILTER; None removes the filter."""
        if filters is not None:
            err = filter_errno(filters, reserved)
            if err:
                raise FilterError(err)
            # watch_queue_set_filter() drops filters for unknown types.
            filters = tuple(f for f in filters if f.type < self.nr_types)
        self.filters = filters

    def passes_filter(self, wtype: int, subtype: int, info: int) -> bool:
        """filter_watch_notification(), with the type bound checked once."""
        if self.filters is None:
            return True
        return any(f.matches(wtype, subtype, info) for f in self.filters)

    def take_loss(self) -> int:
        """IOC_WATCH_QUEUE_TAKE_LOSS: the count it returns."""
        return self.take_loss_at()[0]

    def take_loss_at(self) -> tuple[int, int]:
        """IOC_WATCH_QUEUE_TAKE_LOSS: the count, and the head it applies to."""
        nr_lost, self.pending_lost = self.pending_lost, 0
        self.counters.loss_taken += nr_lost
        return nr_lost, self.head

    def tail_ok(self, tail: int) -> bool:
        used = (self.head - tail) & U32_MASK
        return used <= self.nr_slots and tail & self.mask != 1

    def has_room(self, tail: int, need: int) -> bool:
        """The room check: a bad tail means no room at all."""
        used = (self.head - tail) & U32_MASK
        return self.tail_ok(tail) and used + need <= self.nr_slots

    def post(self, record: bytes, use_filter: bool = True) -> PostResult:
        """Post a ring-form record (length in slots = info & 0x3f).

        The filter sees the record as given; the ring copy has info bits
        6..7 cleared and is zero-padded to whole slots.  use_filter=False is
        for removal notifications, which remove_watch_from_object() posts
        without consulting the filter."""
        word = int.from_bytes(record[0:4], "little")
        info = int.from_bytes(record[4:8], "little")
        nr_slots = info & WATCH_INFO_NR_SLOTS
        if nr_slots == 0 or len(record) < SLOT_SIZE:
            raise ValueError("record of 0 slots")
        counters = self.counters
        counters.posted += 1
        filtering = use_filter and self.filters is not None
        if filtering and not self.passes_filter(word & 0xFFFFFF, word >> 24, info):
            counters.filtered += 1
            return PostResult(PostStatus.FILTERED, self.head)

        size = nr_slots * SLOT_SIZE
        data = bytes(record[:size]).ljust(size, b"\0")
        if info & 0xC0:
            data = data[:4] + (info & ~0xC0).to_bytes(4, "little") + data[8:]

        tail = int.from_bytes(self.image[TAIL_OFFSET:TAIL_OFFSET + 4], "little")  # once
        writes: list[Placement] = []
        h = self.head
        if self.pending_lost:
            h = self._place(h, loss_record(self.pending_lost), "loss", writes)
        h = self._place(h, data, "record", writes)
        if not self.has_room(tail, (h - self.head) & U32_MASK):
            self.pending_lost = min(self.pending_lost + 1, U32_MASK)
            counters.lost += 1
            return PostResult(PostStatus.LOST, self.head)

        image = self.image
        for p in writes:
            image[p.offset:p.offset + len(p.data)] = p.data
        self.head = h
        image[HEAD_OFFSET:HEAD_OFFSET + 4] = h.to_bytes(4, "little")
        counters.loss_reported += self.pending_lost
        self.pending_lost = 0
        counters.delivered += 1
        return PostResult(PostStatus.DELIVERED, h, tuple(writes))

    def _place(self, h: int, data: bytes, kind: str, writes: list[Placement]) -> int:
        """Placement steps 1-3 of the design; returns the new head counter.

        Only headers are written for the meta entry and skip records; the
        body of a skip region keeps whatever bytes it had."""
        nr_slots = len(data) // SLOT_SIZE
        idx = h & self.mask
        if idx == 0:
            writes.append(Placement(h, 0, META_SLOTS, "meta", META_ENTRY_HEADER))
            h, idx = (h + META_SLOTS) & U32_MASK, META_SLOTS
        left = self.nr_slots - idx
        if nr_slots > left:
            writes.append(Placement(h, idx * SLOT_SIZE, left, "skip", skip_header(left)))
            h = (h + left) & U32_MASK
            writes.append(Placement(h, 0, META_SLOTS, "meta", META_ENTRY_HEADER))
            h, idx = (h + META_SLOTS) & U32_MASK, META_SLOTS
        writes.append(Placement(h, idx * SLOT_SIZE, nr_slots, kind, data))
        return (h + nr_slots) & U32_MASK
