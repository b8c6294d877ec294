# SPDX-License-Identifier: GPL-2.0
"""Differential checker: the real /dev/watch_queue ring against the model.

Runs inside the test VM:

    python3 -m harness.checkers.ring_diff --seed S --ops N [--pages P]

Every operation (inject, consume, take_loss, filter change, hostile tail,
scribble) is applied to the real mapping and to harness.ring_model.Ring; the
bytes the model says were written (plus head and tail) are compared after
each step and the whole mapping every --full-every steps and at the end.
On a mismatch the failing prefix is shrunk by bisection on the op count.
Output is KTAP.  --self-test drives a fake ring (the model itself) through
the same code, so the driver can be tested without the kernel.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import mmap
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from harness.ring_model import (
    HEAD_OFFSET,
    IOC_WATCH_QUEUE_INJECT,
    IOC_WATCH_QUEUE_NR_PAGES,
    IOC_WATCH_QUEUE_SET_FILTER,
    IOC_WATCH_QUEUE_TAKE_LOSS,
    SLOT_SIZE,
    SUBTYPE_WORDS,
    TAIL_OFFSET,
    TYPE_FILTER_SIZE,
    U32_MASK,
    WATCH_FILTER_MAX,
    WATCH_INFO_NR_SLOTS,
    WATCH_TYPE_KEY_NOTIFY,
    WATCH_TYPE_META,
    FilterError,
    Record,
    Ring,
    RingBuffer,
    TypeFilter,
    consume_buffer,
    encode_record,
    pack_filter,
    unpack_header,
)

DEVICE = "/dev/watch_queue"
FULL_EVERY = 1000
MAX_DIFF_SLOTS = 16

# --- operations ----------------------------------------------------------------


@dataclass(frozen=True)
class Inject:
    record: bytes


@dataclass(frozen=True)
class Consume:
    max_records: int | None  # None: drain


@dataclass(frozen=True)
class TakeLoss:
    pass


@dataclass(frozen=True)
class SetFilter:
    filters: tuple[TypeFilter, ...] | None  # None: remove
    reserved: int = 0


@dataclass(frozen=True)
class HostileTail:
    kind: str  # ahead, behind, meta, edge, random
    value: int


@dataclass(frozen=True)
class RestoreTail:
    pass


@dataclass(frozen=True)
class ScribbleHead:
    value: int


@dataclass(frozen=True)
class RestoreHead:
    pass


@dataclass(frozen=True)
class ScribbleFree:
    pos: int
    data: bytes


Op = (Inject | Consume | TakeLoss | SetFilter | HostileTail | RestoreTail
      | ScribbleHead | RestoreHead | ScribbleFree)

HOSTILE_KINDS = ("ahead", "behind", "meta", "edge", "random")
EDGE_DELTAS = (-1, 0, 1, 2)  # applied to head - N: one over, full, inside


def describe(op: Op) -> str:
    if isinstance(op, Inject):
        wtype, subtype, info = unpack_header(op.record)
        return (f"inject type={wtype} subtype={subtype} info={info:#010x} "
                f"slots={info & WATCH_INFO_NR_SLOTS}")
    if isinstance(op, SetFilter):
        if op.filters is None:
            return "set_filter NULL"
        return f"set_filter n={len(op.filters)} reserved={op.reserved} {op.filters}"
    if isinstance(op, ScribbleFree):
        return f"scribble_free pos={op.pos:#x} len={len(op.data)}"
    return repr(op)


# --- generation: a pure function of the rng, stable under truncation ------------


@dataclass(frozen=True)
class Phase:
    consume_p: float
    sizes: tuple[int, int]


PHASES = (
    Phase(0.02, (1, 63)), Phase(0.15, (1, 63)), Phase(0.5, (1, 63)),
    Phase(0.1, (1, 4)), Phase(0.3, (32, 63)), Phase(0.05, (60, 63)),
)


def gen_record(rng: random.Random, sizes: tuple[int, int]) -> bytes:
    """A valid record: 50% KEY_NOTIFY, else type 1..1023; any subtype and
    info bits 8..31; bits 6..7 set one time in 16 (the ring clears them)."""
    bits = rng.getrandbits(64)
    lo, hi = sizes
    nr_slots = lo + (bits & 0xFF) % (hi - lo + 1)
    wtype = WATCH_TYPE_KEY_NOTIFY if bits & 0x100 else 1 + (bits >> 9 & 0x3FF) % 1023
    info = (bits >> 19 & 0xFFFFFF) << 8 | nr_slots
    if bits >> 43 & 0xF == 0:
        info |= (bits >> 47 & 3) << 6
    header = (wtype | (bits >> 49 & 0xFF) << 24).to_bytes(4, "little") + info.to_bytes(4, "little")
    return header + rng.randbytes((nr_slots - 1) * SLOT_SIZE)


def gen_bad_record(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return encode_record(WATCH_TYPE_META, rng.randint(0, 255), b"", 0)
    return encode_record(1, 0, b"", 0)[:4] + (rng.getrandbits(26) << 6).to_bytes(4, "little")


def gen_type_filter(rng: random.Random) -> TypeFilter:
    # Types 2..63 are avoided: the kernel may know more types (mounts) than
    # WATCH_TYPE__NR here; 64..1023 are unknown everywhere and ignored.
    wtype = rng.choice((0, 1, 1, 1, rng.randint(64, 1023)))
    mask = 0
    if rng.random() < 0.3:
        mask = 1 << rng.randint(7, 31)
    subtypes = tuple(rng.getrandbits(32) for _ in range(SUBTYPE_WORDS))
    return TypeFilter(wtype, rng.getrandbits(32) & mask, mask, subtypes)


def gen_filter(rng: random.Random) -> SetFilter:
    roll = rng.random()
    if roll < 0.5:
        return SetFilter(None)
    filters = tuple(gen_type_filter(rng) for _ in range(rng.randint(1, 3)))
    if roll < 0.9:
        return SetFilter(filters)
    bad = rng.randint(0, 4)  # each case is EINVAL
    if bad == 0:
        return SetFilter(())
    if bad == 1:
        return SetFilter(filters * WATCH_FILTER_MAX + filters[:1])
    if bad == 2:
        return SetFilter(filters, reserved=rng.randint(1, U32_MASK))
    f = filters[0]
    if bad == 3:
        f = TypeFilter(f.type, f.info_filter | 0x100, f.info_mask & ~0x100, f.subtype_filter)
    else:
        f = TypeFilter(f.type, 0, 1 << rng.randint(0, 6), f.subtype_filter)
    return SetFilter((f, *filters[1:]))


def gen_ops(rng: random.Random, count: int, hostile: bool) -> list[Op]:
    """count operations; a prefix of gen_ops(n) is gen_ops(m) for m < n."""
    ops: list[Op] = []
    while len(ops) < count:
        phase = rng.choice(PHASES)
        for _ in range(rng.randint(50, 400)):
            roll = rng.random()
            if roll < 0.004:
                ops.append(gen_filter(rng))
            elif roll < 0.02:
                ops.append(TakeLoss())
            elif roll < 0.022:
                ops.append(Inject(gen_bad_record(rng)))
            elif hostile and roll < 0.04:
                ops.append(HostileTail(rng.choice(HOSTILE_KINDS), rng.getrandbits(32)))
                ops.extend(Inject(gen_record(rng, phase.sizes))
                           for _ in range(rng.randint(1, 6)))
                ops.append(RestoreTail())
            elif hostile and roll < 0.05:
                ops.append(ScribbleHead(rng.getrandbits(32)))
                ops.extend(Inject(gen_record(rng, phase.sizes))
                           for _ in range(rng.randint(0, 3)))
                ops.append(RestoreHead())
            elif hostile and roll < 0.07:
                ops.append(ScribbleFree(rng.getrandbits(32),
                                        rng.randbytes(rng.randint(1, 200))))
            elif rng.random() < phase.consume_p:
                ops.append(Consume(None if rng.random() < 0.5 else rng.randint(1, 8)))
            else:
                ops.append(Inject(gen_record(rng, phase.sizes)))
    return ops[:count]


def inject_errno(record: bytes) -> int:
    """What IOC_WATCH_QUEUE_INJECT must return for a record (0: accepted)."""
    wtype, _, info = unpack_header(record)
    if info & WATCH_INFO_NR_SLOTS == 0 or wtype == WATCH_TYPE_META:
        return errno.EINVAL
    return 0


def unpack_filter(blob: bytes) -> tuple[tuple[TypeFilter, ...], int]:
    """Inverse of pack_filter: (filters, __reserved)."""
    nr = int.from_bytes(blob[0:4], "little")
    reserved = int.from_bytes(blob[4:8], "little")
    filters = []
    for i in range(nr):
        off = 8 + i * TYPE_FILTER_SIZE
        w = [int.from_bytes(blob[off + 4 * j:off + 4 * j + 4], "little")
             for j in range(3 + SUBTYPE_WORDS)]
        filters.append(TypeFilter(w[0], w[1], w[2], tuple(w[3:])))
    return tuple(filters), reserved


# --- targets -----------------------------------------------------------------------


class Target(Protocol):
    """A ring to test: the device, or a fake for --self-test."""

    @property
    def buf(self) -> RingBuffer: ...

    def inject(self, record: bytes) -> int: ...  # 0 or errno

    def take_loss(self) -> int: ...

    def set_filter(self, blob: bytes | None) -> int: ...  # 0 or errno

    def close(self) -> None: ...


TargetFactory = Callable[[int], Target]


class DeviceTarget:
    """An open, sized and mapped /dev/watch_queue."""

    def __init__(self, nr_pages: int, path: str = DEVICE) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(self.fd, IOC_WATCH_QUEUE_NR_PAGES, nr_pages)
            self.map = mmap.mmap(self.fd, nr_pages * mmap.PAGESIZE, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def buf(self) -> RingBuffer:
        return self.map

    def inject(self, record: bytes) -> int:
        return _ioctl_errno(self.fd, IOC_WATCH_QUEUE_INJECT, record)

    def take_loss(self) -> int:
        out = bytearray(4)
        fcntl.ioctl(self.fd, IOC_WATCH_QUEUE_TAKE_LOSS, out, True)
        return int.from_bytes(out, "little")

    def set_filter(self, blob: bytes | None) -> int:
        return _ioctl_errno(self.fd, IOC_WATCH_QUEUE_SET_FILTER,
                            0 if blob is None else blob)

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def _ioctl_errno(fd: int, request: int, arg: int | bytes) -> int:
    try:
        if isinstance(arg, bytes):
            # An immutable argument is copied through a 1024-byte buffer, too
            # small for a 17-entry filter; a mutable one is passed as it is.
            fcntl.ioctl(fd, request, bytearray(arg), True)
        else:
            fcntl.ioctl(fd, request, arg)
    except OSError as e:
        return e.errno or -1
    return 0


class FakeTarget:
    """The model posing as the kernel, reached through the ioctl encodings."""

    def __init__(self, nr_pages: int, page_size: int = mmap.PAGESIZE,
                 ring_class: type[Ring] = Ring) -> None:
        self.ring = ring_class(nr_pages, page_size)

    @property
    def buf(self) -> RingBuffer:
        return self.ring.image

    def inject(self, record: bytes) -> int:
        err = inject_errno(record)
        if not err:
            self.ring.post(record)
        return err

    def take_loss(self) -> int:
        return self.ring.take_loss()

    def set_filter(self, blob: bytes | None) -> int:
        try:
            if blob is None:
                self.ring.set_filter(None)
            else:
                self.ring.set_filter(*unpack_filter(blob))
        except FilterError as e:
            return e.errno
        return 0

    def close(self) -> None:
        pass


class ExactFitBugRing(Ring):
    """The 2019 wedge: a post that would exactly fill the ring is refused."""

    def has_room(self, tail: int, need: int) -> bool:
        used = (self.head - tail) & U32_MASK
        return self.tail_ok(tail) and used + need < self.nr_slots


SELF_TEST_BUGS: dict[str, type[Ring]] = {"exact-fit": ExactFitBugRing}


# --- the driver ----------------------------------------------------------------------


class Mismatch(Exception):
    def __init__(self, what: str, diff: Sequence[str] = ()) -> None:
        super().__init__(what)
        self.what = what
        self.diff = list(diff)


@dataclass
class Tally:
    consumed: int = 0  # data records the consumer saw
    loss_seen: int = 0  # sum of nr_lost in loss records
    taken: int = 0  # sum of TAKE_LOSS results
    discarded: bool = False  # a hostile tail let records be overwritten


@dataclass
class Driver:
    target: Target
    model: Ring
    tally: Tally = field(default_factory=Tally)
    consumer_tail: int = 0
    hostile_from: int | None = None  # model.counters.delivered at HostileTail
    head_scribbled: bool = False

    def write_both(self, offset: int, data: bytes) -> tuple[int, int]:
        self.target.buf[offset:offset + len(data)] = data
        self.model.scribble(offset, data)
        return offset, len(data)

    def set_tail(self, value: int) -> tuple[int, int]:
        return self.write_both(TAIL_OFFSET, (value & U32_MASK).to_bytes(4, "little"))

    def step(self, op: Op) -> list[tuple[int, int]]:
        """Apply op to both rings; return the byte ranges to compare."""
        if isinstance(op, Inject):
            return self.inject(op.record)
        if isinstance(op, Consume):
            return self.consume(op.max_records)
        if isinstance(op, TakeLoss):
            got, want = self.target.take_loss(), self.model.take_loss()
            if got != want:
                raise Mismatch(f"take_loss returned {got}, model says {want}")
            self.tally.taken += got
            return []
        if isinstance(op, SetFilter):
            return self.set_filter(op)
        if isinstance(op, HostileTail):
            if self.hostile_from is None:
                self.hostile_from = self.model.counters.delivered
            return [self.set_tail(self.hostile_tail(op))]
        if isinstance(op, RestoreTail):
            return self.restore_tail()
        if isinstance(op, ScribbleHead):
            self.head_scribbled = True
            return [self.write_both(HEAD_OFFSET, op.value.to_bytes(4, "little"))]
        if isinstance(op, RestoreHead):
            self.head_scribbled = False
            return [self.write_both(HEAD_OFFSET, self.model.head.to_bytes(4, "little"))]
        return self.scribble_free(op)

    def inject(self, record: bytes) -> list[tuple[int, int]]:
        want = inject_errno(record)
        got = self.target.inject(record)
        if got != want:
            raise Mismatch(f"inject returned {errno.errorcode.get(got, got)}, "
                           f"expected {errno.errorcode.get(want, want)}")
        return self.model.post(record).touched if not want else []

    def consume(self, max_records: int | None) -> list[tuple[int, int]]:
        got = consume_buffer(self.target.buf, max_records)
        want = consume_buffer(self.model.image, max_records)
        if got != want:
            raise Mismatch(f"consumer read {_brief(got.records, got.error)}, "
                           f"model {_brief(want.records, want.error)}")
        if got.error:
            raise Mismatch(f"consumer stopped: {got.error}")
        self.consumer_tail = got.tail
        for r in got.records:
            if r.is_loss:
                self.tally.loss_seen += r.nr_lost
            else:
                self.tally.consumed += 1
        return [(TAIL_OFFSET, 4)]

    def set_filter(self, op: SetFilter) -> list[tuple[int, int]]:
        blob = None if op.filters is None else pack_filter(op.filters, op.reserved)
        got = self.target.set_filter(blob)
        try:
            self.model.set_filter(op.filters, op.reserved)
            want = 0
        except FilterError as e:
            want = e.errno
        if got != want:
            raise Mismatch(f"set_filter returned {got}, expected {want}")
        return []

    def hostile_tail(self, op: HostileTail) -> int:
        head, n = self.model.head, self.model.nr_slots
        if op.kind == "ahead":
            return head + 1 + op.value % (1 << 31)
        if op.kind == "behind":
            return head - n - 1 - op.value % (1 << 31)
        if op.kind == "meta":
            return (head & ~self.model.mask) + 1 - n * (op.value % 3)
        if op.kind == "edge":
            return head - n + EDGE_DELTAS[op.value % len(EDGE_DELTAS)]
        return op.value

    def restore_tail(self) -> list[tuple[int, int]]:
        if self.hostile_from is None:
            return []
        if self.model.counters.delivered != self.hostile_from:
            # A sane-looking hostile tail let the kernel overwrite records
            # the consumer had not read: resynchronise at head.
            self.consumer_tail = self.model.head
            self.tally.discarded = True
        self.hostile_from = None
        return [self.set_tail(self.consumer_tail)]

    def scribble_free(self, op: ScribbleFree) -> list[tuple[int, int]]:
        """Scribble on slots the consumer has released (never slot 1)."""
        n = self.model.nr_slots
        free = (self.consumer_tail + n - self.model.head) & U32_MASK
        if self.hostile_from is not None or free == 0 or free > n:
            return []
        start = op.pos % (free * SLOT_SIZE)
        counter = self.model.head + start // SLOT_SIZE
        off = (counter & self.model.mask) * SLOT_SIZE + start % SLOT_SIZE
        length = min(len(op.data), free * SLOT_SIZE - start, n * SLOT_SIZE - off)
        if off < HEAD_OFFSET:
            length = min(length, HEAD_OFFSET - off)
        elif off < 2 * SLOT_SIZE:
            return []
        return [self.write_both(off, op.data[:length])]

    def finish(self) -> None:
        """Leave the ring sane, drain it and take the pending loss."""
        if self.hostile_from is not None:
            self.compare(self.restore_tail())
        if self.head_scribbled:
            self.compare(self.step(RestoreHead()))
        self.compare(self.consume(None))
        self.compare(self.step(TakeLoss()))
        self.compare_full()

    def compare(self, ranges: Sequence[tuple[int, int]]) -> None:
        buf, image = self.target.buf, self.model.image
        for off, length in [*ranges, (HEAD_OFFSET, 8)]:
            if buf[off:off + length] != image[off:off + length]:
                raise Mismatch(f"bytes {off:#x}..{off + length:#x} differ",
                               diff_slots(bytes(buf[:]), bytes(image)))

    def compare_full(self) -> None:
        real = bytes(self.target.buf[:])
        if real != self.model.image:
            raise Mismatch("mapping differs from the model",
                           diff_slots(real, bytes(self.model.image)))

    def check_invariant(self) -> None:
        c, t = self.model.counters, self.tally
        want = c.posted - c.filtered
        got = t.consumed + t.loss_seen + t.taken
        if not t.discarded and got != want:
            raise Mismatch(f"delivered {t.consumed} + loss records {t.loss_seen} + "
                           f"take_loss {t.taken} = {got} != posted-not-filtered {want}")


def _brief(records: Sequence[Record], error: str | None) -> str:
    first = f" first@{records[0].counter:#x}" if records else ""
    return f"{len(records)} records{first} error={error}"


def diff_slots(real: bytes, model: bytes, limit: int = MAX_DIFF_SLOTS) -> list[str]:
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


# --- running, shrinking, reporting -------------------------------------------------------


@dataclass(frozen=True)
class Subtest:
    name: str
    nr_pages: int
    hostile: bool = False


@dataclass
class Failure:
    step: int  # index of the failing op; len(ops) for the final checks
    what: str
    diff: list[str]


@dataclass
class RunResult:
    failure: Failure | None
    ops: int
    counters: str = ""


def run_ops(factory: TargetFactory, nr_pages: int, ops: Sequence[Op],
            full_every: int = FULL_EVERY) -> RunResult:
    """Run ops on a fresh target and a fresh model; stop at the first mismatch.

    A failure before the first op (open, size, mmap, fresh image) is step -1."""
    try:
        target = factory(nr_pages)
    except OSError as e:
        return RunResult(Failure(-1, f"open/size/mmap failed: {e}", []), 0)
    try:
        model = Ring(nr_pages, len(target.buf) // nr_pages)
        drv = Driver(target, model)
        step = -1
        try:
            drv.compare_full()
            for step, op in enumerate(ops):
                drv.compare(drv.step(op))
                if (step + 1) % full_every == 0:
                    drv.compare_full()
            step = len(ops)
            drv.finish()
            drv.check_invariant()
        except Mismatch as m:
            return RunResult(Failure(step, m.what, m.diff), step)
        except OSError as e:
            return RunResult(Failure(step, f"unexpected error: {e}", []), step)
        c, t = model.counters, drv.tally
        return RunResult(None, len(ops),
                         f"posted={c.posted} filtered={c.filtered} delivered={c.delivered} "
                         f"lost={c.lost} loss_records={t.loss_seen} take_loss={t.taken} "
                         f"invariant={'skipped (records discarded)' if t.discarded else 'ok'}")
    finally:
        target.close()


def shrink(factory: TargetFactory, nr_pages: int, ops: Sequence[Op],
           failing: int, budget_s: float) -> tuple[int, Failure | None]:
    """Smallest op count that still fails (bisection; assumes monotony).

    Returns (count, failure of that run); failure is None when the full
    failing prefix did not fail again (not reproducible)."""
    deadline = time.monotonic() + budget_s
    hi = max(0, min(failing + 1, len(ops)))
    best = run_ops(factory, nr_pages, ops[:hi]).failure
    if best is None:
        return hi, None
    lo = 0  # the empty prefix is assumed to pass
    while hi - lo > 1 and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        res = run_ops(factory, nr_pages, ops[:mid]).failure
        if res is None:
            lo = mid
        else:
            hi, best = mid, res
    return hi, best


class Ktap:
    """KTAP version 1 writer."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def header(self, nr_tests: int) -> None:
        self.out.write(f"KTAP version 1\n1..{nr_tests}\n")

    def diag(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.out.write(f"# {line}".rstrip() + "\n")
        self.out.flush()

    def result(self, number: int, name: str, ok: bool, skip: str | None = None) -> None:
        self.out.write(ktap_result_line(number, name, ok, skip) + "\n")
        self.out.flush()


def ktap_result_line(number: int, name: str, ok: bool, skip: str | None = None) -> str:
    line = f"{'ok' if ok else 'not ok'} {number} {name}"
    return f"{line} # SKIP {skip}" if skip is not None else line


def default_subtests(pages: int | None) -> list[Subtest]:
    if pages is not None:
        return [Subtest(f"ring_{pages}page", pages),
                Subtest(f"ring_hostile_{pages}page", pages, hostile=True)]
    return [Subtest("ring_1page", 1), Subtest("ring_2page", 2),
            Subtest("ring_4page", 4), Subtest("ring_hostile_2page", 2, hostile=True)]


def subtest_rng(seed: int, sub: Subtest) -> random.Random:
    return random.Random(f"{seed}/{sub.name}")


def run_subtest(ktap: Ktap, factory: TargetFactory, seed: int, sub: Subtest,
                nr_ops: int, shrink_budget_s: float, rerun_flags: str = "") -> bool:
    ops = gen_ops(subtest_rng(seed, sub), nr_ops, sub.hostile)
    start = time.monotonic()
    res = run_ops(factory, sub.nr_pages, ops)
    took = time.monotonic() - start
    if res.failure is None:
        ktap.diag(f"{sub.name}: {len(ops)} ops in {took:.1f}s {res.counters}")
        return True
    f = res.failure
    op_text = ("fresh ring" if f.step < 0 else
               describe(ops[f.step]) if f.step < len(ops) else "final drain/take_loss")
    ktap.diag(f"{sub.name}: MISMATCH seed={seed} step={f.step} ({op_text}): {f.what}")
    count, minimal = shrink(factory, sub.nr_pages, ops, f.step, shrink_budget_s)
    if minimal is None:
        ktap.diag(f"prefix of {count} ops did not fail again: not reproducible")
        minimal = f
    else:
        ktap.diag(f"minimal failing prefix: {count} ops, fails at step {minimal.step}: "
                  f"{minimal.what}")
        ktap.diag(f"rerun: python3 -m harness.checkers.ring_diff{rerun_flags} --seed {seed} "
                  f"--ops {count} --pages {sub.nr_pages} --subtest {sub.name}")
        for i in range(max(0, count - 5), count):
            ktap.diag(f"  op {i}: {describe(ops[i])}")
    for line in minimal.diff:
        ktap.diag(line)
    return False


def probe(path: str = DEVICE) -> str | None:
    """None if the device can be tested, else why it is skipped."""
    if not os.path.exists(path):
        return f"{path} absent"
    try:
        target = DeviceTarget(1, path)
    except OSError as e:
        if e.errno == errno.ENOTTY:
            return "kernel lacks IOC_WATCH_QUEUE_NR_PAGES"
        raise
    try:
        err = target.inject(encode_record(WATCH_TYPE_KEY_NOTIFY, 0))
    finally:
        target.close()
    if err == errno.ENOTTY:
        return "kernel lacks CONFIG_WATCH_QUEUE_TEST_INJECT"
    return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ring_diff", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ops", type=int, default=100_000, help="total, spread over subtests")
    p.add_argument("--pages", type=int, help="run only this ring size (plus hostile)")
    p.add_argument("--subtest", help="run only the subtest of this name")
    p.add_argument("--shrink-budget", type=float, default=120.0, metavar="SECONDS")
    p.add_argument("--self-test", action="store_true",
                   help="check the driver on the host against a fake ring (the model)")
    p.add_argument("--self-test-bug", choices=sorted(SELF_TEST_BUGS),
                   help="with --self-test: give the fake ring a known bug")
    p.add_argument("--device", default=DEVICE)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    subtests = default_subtests(args.pages)
    if args.subtest:
        subtests = [s for s in subtests if s.name == args.subtest]
        if not subtests:
            print(f"ring_diff: no subtest {args.subtest!r}", file=sys.stderr)
            return 2
    ktap = Ktap(out)
    ktap.header(len(subtests))
    factory: TargetFactory
    rerun_flags = ""
    if args.self_test:
        rerun_flags = " --self-test" + (f" --self-test-bug {args.self_test_bug}"
                                        if args.self_test_bug else "")
        ring_class = SELF_TEST_BUGS.get(args.self_test_bug or "", Ring)

        def factory(nr_pages: int) -> Target:
            return FakeTarget(nr_pages, ring_class=ring_class)
        bug = f" with bug {args.self_test_bug}" if args.self_test_bug else ""
        ktap.diag(f"ring_diff: self-test against the model{bug}")
    else:
        device = args.device
        reason = probe(device)
        if reason is not None:
            for i, sub in enumerate(subtests, 1):
                ktap.result(i, sub.name, True, reason)
            ktap.diag("ops=0")
            return 0

        def factory(nr_pages: int) -> Target:
            return DeviceTarget(nr_pages, device)
    per_sub = max(1, args.ops // len(subtests))
    ktap.diag(f"ring_diff: seed={args.seed} ops/subtest={per_sub} page_size={mmap.PAGESIZE}")
    all_ok = True
    for i, sub in enumerate(subtests, 1):
        ok = run_subtest(ktap, factory, args.seed, sub, per_sub, args.shrink_budget,
                         rerun_flags)
        ktap.result(i, sub.name, ok)
        all_ok &= ok
    ktap.diag(f"ops={per_sub * len(subtests)}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
