# SPDX-License-Identifier: GPL-2.0
"""Fake kernels for the ring_diff tests: the model (or a buggy copy of it)
driven like the C driver drives the real ring, writing the same trace.

Also runnable as a stand-in for selftests/drivers/ring_diff_driver:
    python -m tests.ring_fakes --seed S --name N --ops K --pages P --out F [--hostile]
with $FAKE_RING_BUG naming a bug of BUGS.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections.abc import Sequence

from harness.checkers.ring_replay import inject_errno
from harness.ring_model import (
    HEAD_OFFSET,
    SLOT_SIZE,
    TAIL_OFFSET,
    U32_MASK,
    WATCH_TYPE_KEY_NOTIFY,
    FilterError,
    Placement,
    PostResult,
    PostStatus,
    Ring,
    TypeFilter,
    consume_buffer,
    encode_record,
    pack_filter,
)
from harness.ring_trace import Header, Kind, Op, Why, encode, slot_delta, u32_arg


class StrayWriteRing(Ring):
    """Writes 8 stray bytes into free space after every wrap."""

    def post(self, record: bytes, use_filter: bool = True) -> PostResult:
        res = super().post(record, use_filter)
        if res.status is PostStatus.DELIVERED and wrapped(res.placements):
            tail = self.tail_word
            free = (tail + self.nr_slots - self.head) & U32_MASK
            if free > 1:
                idx = (self.head + free - 1) & self.mask
                if idx > 1:
                    self.image[idx * SLOT_SIZE:(idx + 1) * SLOT_SIZE] = b"STRAY!!!"
        return res


class LateHeadRing(Ring):
    """Publishes head one record late (a missing store)."""

    def post(self, record: bytes, use_filter: bool = True) -> PostResult:
        old = self.head_word
        res = super().post(record, use_filter)
        if res.status is PostStatus.DELIVERED and self.counters.delivered % 7 == 0:
            self.image[HEAD_OFFSET:HEAD_OFFSET + 4] = old.to_bytes(4, "little")
        return res


BUGS: dict[str, type[Ring]] = {"stray": StrayWriteRing, "late-head": LateHeadRing}


def wrapped(placements: Sequence[Placement]) -> bool:
    """The post went round the end of the ring (it wrote the meta entry again)."""
    return any(p.kind == "meta" and p.counter != 0 for p in placements)


class FakeDriver:
    """Operations on a fake ring, recorded as ring_diff_driver records them."""

    def __init__(self, nr_pages: int, page_size: int = 4096, ring_class: type[Ring] = Ring,
                 name: str = "fake", seed: int = 0, hostile: bool = False) -> None:
        self.ring = ring_class(nr_pages, page_size)
        self.header = Header(nr_pages, page_size, hostile, 0, seed, name)
        self.shadow = bytes(len(self.ring.image))
        self.ops: list[Op] = []
        self.emit(Kind.OPEN)

    def emit(self, kind: Kind, arg: bytes = b"", err: int = 0, result: bytes = b"") -> None:
        image = bytes(self.ring.image)
        self.ops.append(Op(kind, arg, err, result, slot_delta(self.shadow, image)))
        self.shadow = image

    def inject(self, record: bytes) -> None:
        err = inject_errno(record)
        if not err:
            self.ring.post(record)
        self.emit(Kind.INJECT, record, err)

    def consume(self, max_records: int | None = None) -> None:
        res = consume_buffer(self.ring.image, max_records)
        self.emit(Kind.CONSUME, u32_arg(max_records or 0),
                  result=u32_arg(len(res.records), res.tail, 1 if res.error else 0))

    def take_loss(self) -> None:
        self.emit(Kind.TAKE_LOSS, result=u32_arg(self.ring.take_loss()))

    def set_filter(self, filters: Sequence[TypeFilter] | None, reserved: int = 0) -> None:
        try:
            self.ring.set_filter(filters, reserved)
            err = 0
        except FilterError as e:
            err = e.errno
        blob = b"" if filters is None else pack_filter(filters, reserved)
        self.emit(Kind.SET_FILTER, u32_arg(filters is None) + blob, err)

    def write(self, why: Why, offset: int, data: bytes) -> None:
        self.ring.scribble(offset, data)
        self.emit(Kind.WRITE, u32_arg(why, offset) + data)

    def write_tail(self, why: Why, value: int) -> None:
        self.write(why, TAIL_OFFSET, (value & U32_MASK).to_bytes(4, "little"))

    def trace(self, nr_ops: int, complete: bool = True) -> bytes:
        h = self.header
        header = Header(h.nr_pages, h.page_size, h.hostile, nr_ops, h.seed, h.name)
        return encode(header, self.ops, complete)


def random_record(rng: random.Random, lo: int = 1, hi: int = 63) -> bytes:
    payload = rng.randbytes((rng.randint(lo, hi) - 1) * SLOT_SIZE)
    return encode_record(WATCH_TYPE_KEY_NOTIFY, rng.randrange(256), payload,
                         rng.getrandbits(24) << 8)


def run_random(drv: FakeDriver, rng: random.Random, nr_ops: int) -> None:
    """Injections of every length, consumption now and then, TAKE_LOSS."""
    for _ in range(nr_ops):
        roll = rng.random()
        if roll < 0.2:
            drv.consume(rng.choice((None, 1, 3)))
        elif roll < 0.25:
            drv.take_loss()
        else:
            drv.inject(random_record(rng))


def finish(drv: FakeDriver) -> None:
    drv.consume(None)
    drv.take_loss()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    for opt in ("--seed", "--ops", "--pages"):
        p.add_argument(opt, type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="")
    p.add_argument("--hostile", action="store_true")
    args = p.parse_args(argv)
    if os.environ.get("FAKE_RING_SKIP"):
        print(os.environ["FAKE_RING_SKIP"], file=sys.stderr)
        return 4
    ring_class = BUGS.get(os.environ.get("FAKE_RING_BUG", ""), Ring)
    drv = FakeDriver(args.pages, ring_class=ring_class, name=args.name, seed=args.seed,
                     hostile=args.hostile)
    run_random(drv, random.Random(f"{args.seed}/{args.name}"), args.ops)
    finish(drv)
    with open(args.out, "wb") as f:
        f.write(drv.trace(args.ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
