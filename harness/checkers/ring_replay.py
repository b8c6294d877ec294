# SPDX-License-Identifier: GPL-2.0
"""Replays a ring_diff trace through the model: pure, no I/O.

The trace (harness/ring_trace.py) holds every operation the guest driver
performed on the real ring and every byte of the mapping that changed.  Each
operation is applied to harness.ring_model.Ring; the whole mapping rebuilt
from the trace must then equal the model's image, byte for byte, after every
operation, and every ioctl must have returned what the model says.  Because
every operation is compared, the first mismatch is also the shortest failing
prefix of operations.

At the end, records delivered + losses reported == records posted (filtered
ones not counted), the hostile subtest included: records a hostile consumer
gave up on when it resynchronised at head count as discarded.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.ring_model import (
    SLOT_SIZE,
    SUBTYPE_WORDS,
    TYPE_FILTER_SIZE,
    WATCH_INFO_NR_SLOTS,
    WATCH_TYPE_META,
    FilterError,
    PostStatus,
    Ring,
    TypeFilter,
    consume_buffer,
    unpack_header,
)
from harness.ring_trace import CONSUME_ERRORS, Kind, Op, Trace, Why

MAX_DIFF_SLOTS = 16


def inject_errno(record: bytes) -> int:
    """What IOC_WATCH_QUEUE_INJECT must return for a record (0: accepted)."""
    wtype, _, info = unpack_header(record)
    if info & WATCH_INFO_NR_SLOTS == 0 or wtype == WATCH_TYPE_META:
        return errno.EINVAL
    return 0


def unpack_filter(blob: bytes) -> tuple[tuple[TypeFilter, ...], int]:
    """struct watch_notification_filter -> (filters, __reserved)."""
    nr = int.from_bytes(blob[0:4], "little")
    reserved = int.from_bytes(blob[4:8], "little")
    filters = []
    for i in range(nr):
        off = 8 + i * TYPE_FILTER_SIZE
        w = [int.from_bytes(blob[off + 4 * j:off + 4 * j + 4], "little")
             for j in range(3 + SUBTYPE_WORDS)]
        filters.append(TypeFilter(w[0], w[1], w[2], tuple(w[3:])))
    return tuple(filters), reserved


def describe(op: Op) -> str:
    """One line for a failure report."""
    if op.kind is Kind.INJECT:
        wtype, subtype, info = unpack_header(op.arg)
        return (f"inject type={wtype} subtype={subtype} info={info:#010x} "
                f"slots={info & WATCH_INFO_NR_SLOTS}")
    if op.kind is Kind.CONSUME:
        return f"consume max={op.max_records or 'all'}"
    if op.kind is Kind.SET_FILTER:
        blob = op.filter_blob
        if blob is None:
            return "set_filter NULL"
        filters, reserved = unpack_filter(blob)
        return f"set_filter n={len(filters)} reserved={reserved}"
    if op.kind is Kind.WRITE:
        off, data = op.write
        return f"write {op.why.name.lower()} at {off:#x}: {data[:16].hex(' ')}" + \
            (" ..." if len(data) > 16 else "")
    if op.kind is Kind.NOP:
        return f"nothing to do for {op.why.name.lower()}"
    return op.kind.name.lower()


def diff_slots(real: bytes | bytearray, model: bytes | bytearray,
               limit: int = MAX_DIFF_SLOTS) -> list[str]:
    """Hexdump of the 8-byte slots that differ: kernel vs model."""
    lines: list[str] = []
    count = 0
    for off in range(0, min(len(real), len(model)), SLOT_SIZE):
        a, b = real[off:off + SLOT_SIZE], model[off:off + SLOT_SIZE]
        if a == b:
            continue
        count += 1
        if count <= limit:
            lines.append(f"slot {off // SLOT_SIZE:#06x} @{off:#07x} kernel {a.hex(' ')}")
            lines.append(f"{'':21} model  {b.hex(' ')}")
    if count > limit:
        lines.append(f"... {count - limit} more differing slots")
    if len(real) != len(model):
        lines.append(f"sizes differ: kernel {len(real)}, model {len(model)}")
    return lines


class Mismatch(Exception):
    def __init__(self, what: str, diff: Sequence[str] = ()) -> None:
        super().__init__(what)
        self.what = what
        self.diff = list(diff)


@dataclass
class Tally:
    consumed: int = 0  # data records the consumer read
    loss_seen: int = 0  # sum of nr_lost in the loss records it read
    taken: int = 0  # sum of TAKE_LOSS results
    discarded: int = 0  # data records a resynchronising consumer skipped
    discarded_lost: int = 0  # nr_lost of the loss records it skipped
    unread: int = 0  # data records in the ring, not read yet
    unread_lost: int = 0  # nr_lost of the loss records in the ring, not read yet


@dataclass
class Failure:
    step: int  # index of the failing op: -1 the fresh ring, >= nr_ops the final ops
    what: str
    diff: list[str] = field(default_factory=list)


@dataclass
class Result:
    name: str
    nr_ops: int
    failure: Failure | None
    ops: list[Op]
    summary: str = ""


class Replay:
    """The model next to the mapping the trace rebuilds."""

    def __init__(self, trace: Trace, ring_class: type[Ring] = Ring) -> None:
        h = trace.header
        self.model = ring_class(h.nr_pages, h.page_size)
        self.real = bytearray(h.nr_pages * h.page_size)
        self.tally = Tally()
        self.consumer_tail = 0

    def step(self, op: Op) -> None:
        if op.kind is Kind.INJECT:
            self.inject(op)
        elif op.kind is Kind.CONSUME:
            self.consume(op)
        elif op.kind is Kind.TAKE_LOSS:
            if op.err:
                raise Mismatch(f"TAKE_LOSS failed: {errno.errorcode.get(op.err, op.err)}")
            got = op.u32(0, op.result)
            want, want_head = self.model.take_loss_at()
            if got != want:
                raise Mismatch(f"take_loss returned {got}, model says {want}")
            # struct watch_queue_loss: the head the count applies to follows.
            if len(op.result) >= 8 and op.u32(4, op.result) != want_head:
                raise Mismatch(f"take_loss placed the loss at head {op.u32(4, op.result)}, "
                               f"model says {want_head}")
            self.tally.taken += got
        elif op.kind is Kind.SET_FILTER:
            self.set_filter(op)
        elif op.kind is Kind.WRITE:
            self.write(op)
        for off, data in op.delta:
            self.real[off:off + len(data)] = data
        if self.real != self.model.image:
            raise Mismatch("mapping differs from the model",
                           diff_slots(self.real, self.model.image))

    def inject(self, op: Op) -> None:
        want = inject_errno(op.arg)
        if op.err != want:
            raise Mismatch(f"inject returned {errno.errorcode.get(op.err, op.err)}, "
                           f"expected {errno.errorcode.get(want, want)}")
        if want:
            return
        reported = self.model.counters.loss_reported
        if self.model.post(op.arg).status is PostStatus.DELIVERED:
            self.tally.unread += 1
            self.tally.unread_lost += self.model.counters.loss_reported - reported

    def consume(self, op: Op) -> None:
        got_nr, got_tail, got_error = op.consumed
        want = consume_buffer(self.model.image, op.max_records)
        if (got_nr, got_tail, bool(got_error)) != (len(want.records), want.tail,
                                                   want.error is not None):
            raise Mismatch(f"consumer read {got_nr} records up to {got_tail:#x} "
                           f"({CONSUME_ERRORS.get(got_error, 'no error')}), model "
                           f"{len(want.records)} up to {want.tail:#x} ({want.error})")
        if want.error:
            raise Mismatch(f"consumer stopped: {want.error}")
        t = self.tally
        for r in want.records:
            if r.is_loss:
                t.loss_seen += r.nr_lost
                t.unread_lost -= r.nr_lost
            else:
                t.consumed += 1
                t.unread -= 1
        self.consumer_tail = want.tail

    def set_filter(self, op: Op) -> None:
        blob = op.filter_blob
        try:
            if blob is None:
                self.model.set_filter(None)
            else:
                self.model.set_filter(*unpack_filter(blob))
            want = 0
        except FilterError as e:
            want = e.errno
        if op.err != want:
            raise Mismatch(f"set_filter returned {errno.errorcode.get(op.err, op.err)}, "
                           f"expected {errno.errorcode.get(want, want)}")

    def write(self, op: Op) -> None:
        off, data = op.write
        self.model.scribble(off, data)
        if op.why is Why.RESTORE_TAIL:
            value = int.from_bytes(data[:4], "little")
            if value != self.consumer_tail:
                # The consumer gives up on what it has not read and goes on at
                # head: those records are discarded, not lost.
                t = self.tally
                t.discarded += t.unread
                t.discarded_lost += t.unread_lost
                t.unread = t.unread_lost = 0
                self.consumer_tail = value

    def invariant(self) -> None:
        c, t = self.model.counters, self.tally
        want = c.posted - c.filtered
        got = t.consumed + t.loss_seen + t.taken + t.discarded + t.discarded_lost
        if got != want or t.unread or t.unread_lost or self.model.pending_lost:
            raise Mismatch(f"delivered {t.consumed} + loss records {t.loss_seen} + "
                           f"take_loss {t.taken} + discarded {t.discarded}+{t.discarded_lost}"
                           f" = {got} != posted-not-filtered {want} (unread {t.unread}, "
                           f"{t.unread_lost} lost; pending {self.model.pending_lost})")

    def summary(self) -> str:
        c, t = self.model.counters, self.tally
        return (f"posted={c.posted} filtered={c.filtered} delivered={c.delivered} "
                f"lost={c.lost} loss_records={t.loss_seen} take_loss={t.taken} "
                f"discarded={t.discarded}+{t.discarded_lost}lost invariant=ok")


def replay(trace: Trace, ring_class: type[Ring] = Ring) -> Result:
    """Replay a whole trace; stop at the first mismatch."""
    h = trace.header
    res = Result(h.name, h.nr_ops, None, trace.ops)
    if not trace.ops or trace.ops[0].kind is not Kind.OPEN:
        res.failure = Failure(-1, trace.problem or "the trace has no OPEN record")
        return res
    rp = Replay(trace, ring_class)
    for i, op in enumerate(trace.ops):
        try:
            rp.step(op)
        except Mismatch as m:
            res.failure = Failure(i - 1, m.what, m.diff)
            return res
    if not trace.complete:
        res.failure = Failure(len(trace.ops) - 1,
                              f"trace incomplete after {len(trace.ops) - 1} ops: "
                              f"{trace.problem}")
        return res
    try:
        rp.invariant()
    except Mismatch as m:
        res.failure = Failure(len(trace.ops) - 1, m.what)
        return res
    res.summary = rp.summary()
    return res
