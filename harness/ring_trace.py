# SPDX-License-Identifier: GPL-2.0
"""The trace selftests/drivers/ring_diff_driver.c writes: pure encoding and decoding.

All integers are little-endian u32 unless said otherwise.

    header:  "WQRDIFF1", version, nr_pages, page_size, hostile, nr_ops,
             seed (u64), name length, name bytes, pool length, pool bytes
    op:      kind, arg length, arg bytes, errno, result length, result bytes,
             ranges: each one offset, length, source (0xffffffff: the bytes
             follow; else they are the pool's from that offset), then
             0xffffffff and the number of ranges
    end:     END, number of ops recorded (OPEN and the final ops included)

An op's ranges are every 8-byte slot of the mapping that changed since the
previous op (the first op, OPEN, against an all-zero mapping): applied in
order they rebuild the whole mapping after every op.  The pool is random
bytes the records' bodies are cut from, so that neither a record nor the
bytes of the mapping that repeat it need to be written out again.

Arguments and results by kind (decode() gives INJECT the whole record):
    OPEN        -, -                     the fresh ring
    INJECT      header, pool offset of the body; errno of IOC_WATCH_QUEUE_INJECT
    CONSUME     max records (0: all), (records read, tail stored, error code)
    TAKE_LOSS   -, what the ioctl copied out (the count first)
    SET_FILTER  is_null, struct watch_notification_filter; errno of the ioctl
    WRITE       why, offset, bytes       the consumer's own store
    NOP         why                      an operation that had nothing to do
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MAGIC = b"WQRDIFF1"
VERSION = 2
LITERAL = 0xFFFFFFFF
_HEADER = struct.Struct("<8sIIIIIQI")
_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")
_U32X3 = struct.Struct("<III")
_NR_SLOTS = 0x3F  # WATCH_INFO_NR_SLOTS: the driver's records are of 0..63 slots


class Kind(enum.IntEnum):
    OPEN = 0
    INJECT = 1
    CONSUME = 2
    TAKE_LOSS = 3
    SET_FILTER = 4
    WRITE = 5
    NOP = 6
    END = 7


class Why(enum.IntEnum):
    """Why the consumer wrote into the mapping (WRITE) or did nothing (NOP)."""

    TAIL_AHEAD = 0
    TAIL_BEHIND = 1
    TAIL_META = 2
    TAIL_EDGE = 3
    TAIL_RANDOM = 4
    RESTORE_TAIL = 5
    SCRIBBLE_HEAD = 6
    RESTORE_HEAD = 7
    SCRIBBLE_FREE = 8


CONSUME_ERRORS = {1: "tail outside head - nr_slots", 2: "tail in the meta entry",
                  3: "bad record length"}


@dataclass(frozen=True)
class Header:
    nr_pages: int
    page_size: int
    hostile: bool
    nr_ops: int
    seed: int
    name: str


@dataclass(frozen=True)
class Op:
    kind: Kind
    arg: bytes = b""
    err: int = 0
    result: bytes = b""
    delta: tuple[tuple[int, bytes], ...] = ()  # (offset, bytes)

    def u32(self, offset: int, data: bytes | None = None) -> int:
        return int(_U32.unpack_from(self.arg if data is None else data, offset)[0])

    @property
    def why(self) -> Why:
        return Why(self.u32(0))

    @property
    def max_records(self) -> int | None:
        """CONSUME: at most this many records; None: drain."""
        return self.u32(0) or None

    @property
    def consumed(self) -> tuple[int, int, int]:
        """CONSUME: (records read, tail stored, error code)."""
        nr, tail, error = struct.unpack_from("<III", self.result)
        return nr, tail, error

    @property
    def filter_blob(self) -> bytes | None:
        """SET_FILTER: the struct, or None for "remove the filter"."""
        return None if self.u32(0) else self.arg[4:]

    @property
    def write(self) -> tuple[int, bytes]:
        """WRITE: (offset, bytes)."""
        return self.u32(4), self.arg[8:]


@dataclass(frozen=True)
class Trace:
    header: Header
    ops: list[Op]
    complete: bool  # the END record is there and counts every op
    problem: str | None = None  # why decoding stopped early


class TraceError(ValueError):
    pass


def decode_header(data: bytes) -> tuple[Header, bytes, int]:
    """(header, pool, offset of the first op)."""
    if len(data) < _HEADER.size:
        raise TraceError(f"trace of {len(data)} bytes has no header")
    magic, version, pages, page_size, hostile, nr_ops, seed, name_len = \
        _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise TraceError(f"not a ring_diff trace of version {VERSION}: {magic!r} {version}")
    end = _HEADER.size + name_len
    name = data[_HEADER.size:end].decode(errors="replace")
    try:
        (pool_len,) = _U32.unpack_from(data, end)
    except struct.error:
        raise TraceError("trace cut short in its header") from None
    pool = data[end + 4:end + 4 + pool_len]
    return Header(pages, page_size, bool(hostile), nr_ops, seed, name), pool, end + 4 + pool_len


def iter_ops(data: bytes, offset: int, pool: bytes) -> Iterator[Op | int]:
    """The ops from offset on; the END record yields its count and stops.

    Raises TraceError where the data stops in the middle of a record."""
    size = len(data)
    u32 = _U32.unpack_from
    pair = _U32X2.unpack_from
    triple = _U32X3.unpack_from
    while offset < size:
        try:
            kind, arg_len = pair(data, offset)
            offset += 8
            if kind == Kind.END:
                yield int(arg_len)
                return
            arg = data[offset:offset + arg_len]
            offset += arg_len
            err, res_len = pair(data, offset)
            offset += 8
            result = data[offset:offset + res_len]
            offset += res_len
            delta = []
            while True:
                (off,) = u32(data, offset)
                if off == LITERAL:
                    (nr_ranges,) = u32(data, offset + 4)
                    offset += 8
                    break
                _, length, src = triple(data, offset)
                offset += 12
                if src == LITERAL:
                    delta.append((off, data[offset:offset + length]))
                    offset += length
                else:
                    delta.append((off, pool[src:src + length]))
        except struct.error:
            raise TraceError(f"trace cut short at byte {offset}") from None
        if offset > size:
            raise TraceError(f"trace cut short at byte {size}")
        if nr_ranges != len(delta):
            raise TraceError(f"op counts {nr_ranges} ranges, holds {len(delta)}")
        if kind == Kind.INJECT:
            info, src = _U32X2.unpack_from(arg, 4)
            arg = arg[:8] + pool[src:src + max(0, (info & _NR_SLOTS) - 1) * 8]
        yield Op(Kind(kind), arg, err, result, tuple(delta))


def decode(data: bytes) -> Trace:
    header, pool, offset = decode_header(data)
    ops: list[Op] = []
    try:
        for item in iter_ops(data, offset, pool):
            if isinstance(item, int):
                if item != len(ops):
                    return Trace(header, ops, False, f"END counts {item} ops, "
                                                     f"the trace holds {len(ops)}")
                return Trace(header, ops, True)
            ops.append(item)
    except (TraceError, ValueError) as e:
        return Trace(header, ops, False, str(e))
    return Trace(header, ops, False, "no END record: the driver stopped early")


# --- encoding (the C driver's format, for fakes and tests) --------------------------


def encode_op(op: Op, pool_offset: int = 0) -> bytes:
    """An op in the driver's format; an INJECT's body is at pool_offset."""
    arg = op.arg[:8] + _U32.pack(pool_offset) if op.kind is Kind.INJECT else op.arg
    parts = [_U32X2.pack(op.kind, len(arg)), arg,
             _U32X2.pack(op.err & 0xFFFFFFFF, len(op.result)), op.result]
    for off, data in op.delta:
        parts += [_U32X3.pack(off, len(data), LITERAL), data]
    parts.append(_U32X2.pack(LITERAL, len(op.delta)))
    return b"".join(parts)


def encode(header: Header, ops: Sequence[Op], complete: bool = True) -> bytes:
    """A whole trace: the pool is the INJECT bodies one after the other."""
    bodies: list[bytes] = []
    size = 0
    ops_out = []
    for op in ops:
        ops_out.append(encode_op(op, size))
        if op.kind is Kind.INJECT:
            bodies.append(op.arg[8:])
            size += len(op.arg) - 8
    pool = b"".join(bodies)
    name = header.name.encode()
    head = _HEADER.pack(MAGIC, VERSION, header.nr_pages, header.page_size, int(header.hostile),
                        header.nr_ops, header.seed, len(name)) + name
    end = _U32X2.pack(Kind.END, len(ops)) if complete else b""
    return head + _U32.pack(len(pool)) + pool + b"".join(ops_out) + end


def u32_arg(*values: int) -> bytes:
    return b"".join(_U32.pack(v & 0xFFFFFFFF) for v in values)


def slot_delta(before: bytes, after: bytes, slot: int = 8,
               chunk: int = 256) -> tuple[tuple[int, bytes], ...]:
    """The runs of whole slots that differ, as the driver computes them."""
    if before == after:
        return ()
    out: list[tuple[int, bytes]] = []
    start: int | None = None
    for base in range(0, len(after), chunk):
        if before[base:base + chunk] == after[base:base + chunk]:
            if start is not None:
                out.append((start, after[start:base]))
                start = None
            continue
        for off in range(base, min(base + chunk, len(after)), slot):
            differs = before[off:off + slot] != after[off:off + slot]
            if differs and start is None:
                start = off
            elif not differs and start is not None:
                out.append((start, after[start:off]))
                start = None
    if start is not None:
        out.append((start, after[start:]))
    return tuple(out)
