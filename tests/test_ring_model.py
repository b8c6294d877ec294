# SPDX-License-Identifier: GPL-2.0
"""Host tests of harness.ring_model and the pure parts of harness.checkers.ring_diff."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import uapi
from harness.checkers import ring_replay as rr
from harness.ring_model import (
    HEAD_OFFSET,
    IOC_WATCH_QUEUE_INJECT,
    IOC_WATCH_QUEUE_NR_PAGES,
    IOC_WATCH_QUEUE_SET_FILTER,
    IOC_WATCH_QUEUE_SET_SIZE,
    IOC_WATCH_QUEUE_TAKE_LOSS,
    META_ENTRY_HEADER,
    SLOT_SIZE,
    TAIL_OFFSET,
    U32_MASK,
    WATCH_META_LOSS_NOTIFICATION,
    WATCH_META_SKIP_NOTIFICATION,
    WATCH_TYPE__NR,
    WATCH_TYPE_KEY_NOTIFY,
    WATCH_TYPE_META,
    FilterError,
    PostResult,
    PostStatus,
    Record,
    Ring,
    TypeFilter,
    consume_buffer,
    encode_record,
    loss_record,
    pack_filter,
    pack_header,
    ring_record_from_pipe,
    subtype_bitmap,
    unpack_header,
)

N1 = 4096 // SLOT_SIZE  # slots in a one-page ring


def rec(nr_slots: int, subtype: int = 0, info: int = 0, wtype: int = WATCH_TYPE_KEY_NOTIFY,
        fill: int = 0x5A) -> bytes:
    return encode_record(wtype, subtype, bytes([fill]) * ((nr_slots - 1) * SLOT_SIZE), info)


def slot(ring: Ring, counter: int) -> bytes:
    off = (counter & ring.mask) * SLOT_SIZE
    return bytes(ring.image[off:off + SLOT_SIZE])


def fill_to(ring: Ring, head: int) -> None:
    """Post and drain records until the kernel head is exactly `head`."""
    while ring.head != head:
        left = head - ring.head
        idx = ring.head & ring.mask
        if idx == 0:
            left -= 2
            idx = 2
        nr = min(63, left, ring.nr_slots - idx)
        assert nr >= 1
        assert ring.post(rec(nr)).status is PostStatus.DELIVERED
        ring.consume()


# --- encodings -----------------------------------------------------------------------


def test_constants_are_the_headers() -> None:
    """The model holds no uapi value of its own: each is uapi.json's."""
    u = uapi.current()
    assert (IOC_WATCH_QUEUE_SET_SIZE, IOC_WATCH_QUEUE_SET_FILTER, IOC_WATCH_QUEUE_NR_PAGES,
            IOC_WATCH_QUEUE_TAKE_LOSS, IOC_WATCH_QUEUE_INJECT) == (
        u.IOC_WATCH_QUEUE_SET_SIZE, u.IOC_WATCH_QUEUE_SET_FILTER, u.IOC_WATCH_QUEUE_NR_PAGES,
        u.IOC_WATCH_QUEUE_TAKE_LOSS, u.IOC_WATCH_QUEUE_INJECT)
    assert (
        u.WATCH_TYPE__NR, u.offsetof_watch_queue_ring_meta_head,
        u.offsetof_watch_queue_ring_meta_tail) == (WATCH_TYPE__NR, HEAD_OFFSET, TAIL_OFFSET)
    assert Ring(1).nr_types == u.WATCH_TYPE__NR


def test_header_bitfields_are_little_endian() -> None:
    assert pack_header(0x123456, 0xAB, 0xDEADBEEF) == bytes.fromhex("563412abefbeadde")
    assert unpack_header(pack_header(0x123456, 0xAB, 0xDEADBEEF)) == (0x123456, 0xAB, 0xDEADBEEF)
    with pytest.raises(ValueError):
        pack_header(1 << 24, 0, 0)


def test_encode_record_sets_length_and_pads() -> None:
    r = encode_record(1, 7, b"abc", info=0x1234_56FF)
    assert len(r) == 16
    assert unpack_header(r) == (1, 7, 0x1234_56C2)  # low 6 bits = 2, bits 6..7 kept
    assert r[8:] == b"abc" + bytes(5)


def test_pipe_record_becomes_ring_form() -> None:
    pipe = pack_header(1, 3, 0xAB00 | 13) + b"12345" + b"junk"
    ring = ring_record_from_pipe(pipe)
    assert unpack_header(ring) == (1, 3, 0xAB00 | 2)
    assert ring[8:] == b"12345" + bytes(3)
    with pytest.raises(ValueError):
        ring_record_from_pipe(pack_header(1, 3, 40) + bytes(8))


def test_filter_packing_layout() -> None:
    f = TypeFilter(1, 0x100, 0x300, subtype_bitmap([0, 33, 255]))
    blob = pack_filter([f, TypeFilter(7)], reserved=0)
    assert len(blob) == 8 + 2 * 44
    assert blob[0:8] == bytes.fromhex("0200000000000000")
    assert blob[8:20] == bytes.fromhex("01000000 00010000 00030000")
    assert blob[20:24] == (1).to_bytes(4, "little")
    assert blob[24:28] == (2).to_bytes(4, "little")
    assert blob[48:52] == (1 << 31).to_bytes(4, "little")
    assert rr.unpack_filter(blob) == ((f, TypeFilter(7)), 0)


# --- placement -----------------------------------------------------------------------


def test_fresh_ring_image() -> None:
    ring = Ring(1)
    assert ring.image[0:8] == pack_header(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2)
    assert ring.head_word == ring.tail_word == ring.head == 0
    assert not any(ring.image[8:])
    assert ring.consume() == []


def test_first_post_lands_at_slot_2() -> None:
    ring = Ring(1)
    r = rec(3, subtype=9, info=0x4200)
    res = ring.post(r)
    assert res.status is PostStatus.DELIVERED
    assert [(p.kind, p.counter) for p in res.placements] == [("meta", 0), ("record", 2)]
    assert ring.image[16:40] == r
    assert ring.head == ring.head_word == 5
    assert ring.consume() == [Record(2, r)]
    assert ring.tail_word == 5


def test_record_ending_at_ring_end_then_next_after_meta() -> None:
    ring = Ring(1)
    fill_to(ring, N1)
    assert ring.tail_word == N1 and ring.head_word == N1
    ring.scribble(0, b"\xff" * 8)  # the kernel rewrites the meta header on the wrap
    res = ring.post(rec(1))
    assert [(p.kind, p.counter) for p in res.placements] == [("meta", N1), ("record", N1 + 2)]
    assert ring.image[0:8] == META_ENTRY_HEADER
    assert ring.head == N1 + 3
    assert [r.counter for r in ring.consume()] == [N1 + 2]


def test_record_that_does_not_fit_gets_a_skip() -> None:
    ring = Ring(1)
    fill_to(ring, N1 - 3)
    body = bytes(range(16))
    ring.scribble((N1 - 2) * SLOT_SIZE, body)  # the skip body stays as it is
    res = ring.post(rec(5))
    assert [(p.kind, p.counter, p.nr_slots) for p in res.placements] == [
        ("skip", N1 - 3, 3), ("meta", N1, 2), ("record", N1 + 2, 5)]
    assert slot(ring, N1 - 3) == pack_header(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 3)
    assert ring.image[(N1 - 2) * SLOT_SIZE:] == body
    assert ring.head == N1 + 7
    assert [r.counter for r in ring.consume()] == [N1 + 2]


def test_exactly_full_ring_is_accepted_one_more_slot_is_lost() -> None:
    ring = Ring(1)
    fill_to(ring, 100)
    ring.set_tail(100 - N1 + 7)  # 7 slots free (a legal "behind" consumer position)
    before = bytes(ring.image)
    assert ring.post(rec(8)).status is PostStatus.LOST
    assert ring.image == before
    assert ring.take_loss() == 1  # else the next post also needs room for a loss record
    assert ring.post(rec(7)).status is PostStatus.DELIVERED
    assert (ring.head - ring.tail_word) & U32_MASK == N1
    assert ring.post(rec(1)).status is PostStatus.LOST
    assert ring.pending_lost == 1


def test_fresh_ring_takes_exactly_n_slots() -> None:
    ring = Ring(1)
    for _ in range(8):
        assert ring.post(rec(63)).status is PostStatus.DELIVERED
    assert ring.head == 506
    assert ring.post(rec(7)).status is PostStatus.LOST
    assert ring.take_loss() == 1
    assert ring.post(rec(6)).status is PostStatus.DELIVERED
    assert ring.head == N1
    assert ring.post(rec(1)).status is PostStatus.LOST


def test_loss_record_precedes_next_record_with_exact_count() -> None:
    ring = Ring(1)
    ring.set_tail(ring.head - N1)  # "full": a whole ring behind
    for _ in range(3):
        assert ring.post(rec(1)).status is PostStatus.LOST
    ring.set_tail(ring.head)
    r = rec(2, subtype=4)
    res = ring.post(r)
    assert [p.kind for p in res.placements] == ["meta", "loss", "record"]
    got = ring.consume()
    assert got == [Record(2, loss_record(3)), Record(4, r)]
    assert got[0].is_loss and got[0].nr_lost == 3
    assert got[0].data == pack_header(0, WATCH_META_LOSS_NOTIFICATION, 2) + bytes([3, 0, 0, 0, 0,
                                                                                    0, 0, 0])
    assert ring.pending_lost == 0
    assert ring.post(rec(1)).placements[0].kind == "record"


def test_loss_record_and_record_must_both_fit() -> None:
    ring = Ring(1)
    fill_to(ring, 50)
    ring.pending_lost = 5
    ring.set_tail(50 - N1 + 3)  # 3 free: the record alone would fit, not with the loss
    before = bytes(ring.image)
    assert ring.post(rec(3)).status is PostStatus.LOST
    assert ring.image == before and ring.pending_lost == 6
    ring.set_tail(50 - N1 + 5)
    assert ring.post(rec(3)).status is PostStatus.DELIVERED
    assert ring.pending_lost == 0


def test_loss_record_itself_can_wrap() -> None:
    ring = Ring(1)
    fill_to(ring, N1 - 1)
    ring.pending_lost = 1
    res = ring.post(rec(1))
    assert [(p.kind, p.counter) for p in res.placements] == [
        ("skip", N1 - 1), ("meta", N1), ("loss", N1 + 2), ("record", N1 + 4)]
    assert [r.is_loss for r in ring.consume()] == [True, False]


def test_take_loss_resets_the_pending_count() -> None:
    ring = Ring(1)
    assert ring.take_loss() == 0
    ring.set_tail(ring.head + 1)
    ring.post(rec(1))
    ring.post(rec(2))
    assert ring.take_loss() == 2
    assert ring.take_loss() == 0
    ring.set_tail(ring.head)
    assert [p.kind for p in ring.post(rec(1)).placements] == ["meta", "record"]


def test_pending_loss_saturates() -> None:
    ring = Ring(1)
    ring.pending_lost = U32_MASK - 1
    ring.set_tail(1)
    ring.post(rec(1))
    ring.post(rec(1))
    assert ring.pending_lost == U32_MASK


@pytest.mark.parametrize("bad", [
    lambda h: h + 1,  # ahead of head
    lambda h: h + 0x8000_0000,
    lambda h: h - N1 - 1,  # more than a ring behind
    lambda h: (h & ~(N1 - 1)) + 1,  # middle of the meta entry
    lambda h: (h & ~(N1 - 1)) + 1 - N1,
])
def test_bad_tail_means_no_room(bad: Callable[[int], int]) -> None:
    ring = Ring(1)
    fill_to(ring, 300)
    ring.set_tail(bad(ring.head) & U32_MASK)
    before = bytes(ring.image)
    assert ring.post(rec(1)).status is PostStatus.LOST
    assert ring.image == before
    assert ring.pending_lost == 1


def test_counters_wrap_at_2_32() -> None:
    ring = Ring(1)
    start = (1 << 32) - N1 + 10  # idx 10
    ring.head = start
    ring.scribble(HEAD_OFFSET, start.to_bytes(4, "little") * 2)
    posted = [rec(63, fill=i) for i in range(20)]
    seen = []
    for r in posted:
        assert ring.post(r).status is PostStatus.DELIVERED
        seen += ring.consume()
    assert ring.head < start
    assert [r.data for r in seen] == posted


def test_info_bits_6_7_are_cleared_in_the_ring() -> None:
    ring = Ring(1)
    ring.post(rec(2, info=0xFFFF_FFC0))
    assert unpack_header(bytes(ring.image[16:24]))[2] == 0xFFFF_FF02


def test_removal_notification_bypasses_the_filter() -> None:
    ring = Ring(1)
    ring.set_filter([TypeFilter(1)])
    removal = encode_record(WATCH_TYPE_META, 0, bytes(8), 0x0500)
    assert ring.post(removal).status is PostStatus.FILTERED
    assert ring.post(removal, use_filter=False).status is PostStatus.DELIVERED
    assert ring.consume()[0].data == removal


def test_post_rejects_zero_length() -> None:
    with pytest.raises(ValueError):
        Ring(1).post(pack_header(1, 0, 0))


def test_consumer_stops_on_a_corrupted_ring() -> None:
    ring = Ring(1)
    ring.post(rec(4))
    ring.scribble(16, pack_header(1, 0, 0))
    res = consume_buffer(ring.image)
    assert res.records == [] and res.error is not None and res.tail == 2


# --- filters -----------------------------------------------------------------------


def test_filter_subtypes_above_31() -> None:
    ring = Ring(1)
    ring.set_filter([TypeFilter(1, subtype_filter=subtype_bitmap([33, 255]))])
    assert [ring.post(rec(1, subtype=s)).status for s in (33, 32, 255, 0, 254)] == [
        PostStatus.DELIVERED, PostStatus.FILTERED, PostStatus.DELIVERED,
        PostStatus.FILTERED, PostStatus.FILTERED]
    assert ring.counters.filtered == 3 and ring.pending_lost == 0


def test_filter_info_mask_type_and_removal() -> None:
    ring = Ring(1)
    ring.set_filter([TypeFilter(1, info_filter=0x0200, info_mask=0x0300)])
    assert ring.post(rec(1, info=0x0200)).status is PostStatus.DELIVERED
    assert ring.post(rec(1, info=0x0300)).status is PostStatus.FILTERED
    assert ring.post(rec(1, info=0x0200, wtype=2)).status is PostStatus.FILTERED
    ring.set_filter(None)
    assert ring.post(rec(1, wtype=1000)).status is PostStatus.DELIVERED


def test_filter_for_unknown_types_only_rejects_everything() -> None:
    ring = Ring(1)
    ring.set_filter([TypeFilter(64), TypeFilter(1023)])
    assert ring.post(rec(1, wtype=64)).status is PostStatus.FILTERED
    assert ring.post(rec(1)).status is PostStatus.FILTERED


@pytest.mark.parametrize("filters,reserved", [
    ([], 0),
    ([TypeFilter(1)] * 17, 0),
    ([TypeFilter(1)], 1),
    ([TypeFilter(1, info_filter=0x100, info_mask=0)], 0),
    ([TypeFilter(1, info_mask=0x40)], 0),
])
def test_invalid_filter_is_einval_and_keeps_the_old(filters: list[TypeFilter],
                                                    reserved: int) -> None:
    ring = Ring(1)
    ring.set_filter([TypeFilter(1, subtype_filter=subtype_bitmap([5]))])
    with pytest.raises(FilterError) as e:
        ring.set_filter(filters, reserved)
    assert e.value.errno == errno.EINVAL
    assert ring.post(rec(1, subtype=4)).status is PostStatus.FILTERED
    assert ring.post(rec(1, subtype=5)).status is PostStatus.DELIVERED


# --- properties --------------------------------------------------------------------

SEQ_SHIFT = 16

post_op = st.tuples(st.just("post"), st.integers(1, 63), st.integers(1, 1023),
                    st.integers(0, 255), st.integers(0, 255))
filter_op = st.tuples(st.just("filter"), st.none() | st.lists(
    st.builds(lambda t, m, f, subs: TypeFilter(t, f & m, m, subtype_bitmap(subs)),
              st.sampled_from([0, 1, 2, 64]), st.sampled_from([0, 0x100, 0xFF00]),
              st.integers(0, 0xFFFF), st.sets(st.integers(0, 255), max_size=40)),
    min_size=1, max_size=3))
consume_op = st.tuples(st.just("consume"), st.none() | st.integers(1, 5))
sane_ops = st.lists(st.one_of(
    post_op, post_op, post_op, post_op, post_op, post_op, consume_op, consume_op,
    st.tuples(st.just("take_loss")), filter_op,
), min_size=30, max_size=200)
geometry = st.sampled_from([(1, 1024), (1, 1024), (2, 1024), (1, 4096)])


def check_post(ring: Ring, res: PostResult, tail_before: bytes) -> None:
    assert ring.image[TAIL_OFFSET:TAIL_OFFSET + 4] == tail_before  # kernel writes head only
    for p in res.placements:
        idx = p.counter & ring.mask
        assert idx + p.nr_slots <= ring.nr_slots, "record straddles the ring end"
        assert p.offset == idx * SLOT_SIZE
        assert p.offset + len(p.data) <= HEAD_OFFSET or p.offset >= 2 * SLOT_SIZE


@settings(max_examples=150, deadline=None)
@given(geometry, sane_ops)
def test_sane_consumer_sees_every_record_in_order(geom: tuple[int, int],
                                                  ops: list[tuple[object, ...]]) -> None:
    ring = Ring(*geom)
    expected: list[tuple[str, int]] = []  # the stream: ("rec", seq) / ("loss", n)
    seen: list[tuple[str, int]] = []
    pending = taken = 0
    seq = 0

    def consume(limit: int | None) -> None:
        for r in ring.consume(limit):
            seen.append(("loss", r.nr_lost) if r.is_loss else ("rec", r.info >> SEQ_SHIFT))

    for op in ops:
        if op[0] == "post":
            _, nr, wtype, subtype, wid = op
            assert isinstance(nr, int) and isinstance(wtype, int)
            assert isinstance(subtype, int) and isinstance(wid, int)
            seq += 1
            tail = bytes(ring.image[TAIL_OFFSET:TAIL_OFFSET + 4])
            res = ring.post(rec(nr, subtype, seq << SEQ_SHIFT | wid << 8, wtype))
            check_post(ring, res, tail)
            if res.status is PostStatus.LOST:
                pending += 1
            elif res.status is PostStatus.DELIVERED:
                if pending:
                    expected.append(("loss", pending))
                pending = 0
                expected.append(("rec", seq))
        elif op[0] == "consume":
            assert op[1] is None or isinstance(op[1], int)
            consume(op[1])
        elif op[0] == "take_loss":
            got = ring.take_loss()
            assert got == pending
            taken += got
            pending = 0
        else:
            assert op[1] is None or isinstance(op[1], list)
            ring.set_filter(op[1])
        assert (ring.head - ring.tail_word) & U32_MASK <= ring.nr_slots
        assert ring.head_word == ring.head
    consume(None)
    taken += ring.take_loss()
    assert seen == expected
    c = ring.counters
    delivered = sum(1 for kind, _ in seen if kind == "rec")
    reported = sum(n for kind, n in seen if kind == "loss")
    assert delivered + reported + taken == c.posted - c.filtered
    assert delivered == c.delivered and c.lost == reported + taken


hostile_ops = st.lists(st.one_of(
    post_op, post_op, post_op, consume_op,
    st.tuples(st.just("take_loss")),
    st.tuples(st.just("tail"), st.integers(0, U32_MASK)),
    st.tuples(st.just("tail_near"), st.integers(-1100, 1100)),
    st.tuples(st.just("scribble"), st.integers(0, 4095), st.binary(min_size=1, max_size=64)),
), min_size=20, max_size=200)


@settings(max_examples=150, deadline=None)
@given(geometry, hostile_ops)
def test_hostile_consumer_only_hurts_itself(geom: tuple[int, int],
                                            ops: list[tuple[object, ...]]) -> None:
    ring = Ring(*geom)
    size = len(ring.image)
    for op in ops:
        if op[0] == "post":
            nr, subtype = op[1], op[3]
            assert isinstance(nr, int) and isinstance(subtype, int)
            tail_before = bytes(ring.image[TAIL_OFFSET:TAIL_OFFSET + 4])
            image_before = bytes(ring.image)
            ok = ring.tail_ok(ring.tail_word)
            res = ring.post(rec(nr, subtype))
            check_post(ring, res, tail_before)
            if not ok:
                assert res.status is PostStatus.LOST and ring.image == image_before
        elif op[0] == "consume":
            assert op[1] is None or isinstance(op[1], int)
            consume_buffer(ring.image, op[1])  # terminates, whatever the image says
        elif op[0] == "take_loss":
            ring.take_loss()
        elif op[0] == "tail":
            assert isinstance(op[1], int)
            ring.set_tail(op[1])
        elif op[0] == "tail_near":
            assert isinstance(op[1], int)
            ring.set_tail((ring.head + op[1]) & U32_MASK)
        else:
            off, data = op[1], op[2]
            assert isinstance(off, int) and isinstance(data, bytes)
            ring.scribble(off % size, data[:size - off % size])
        assert len(ring.image) == size
        c = ring.counters
        assert (c.delivered + c.loss_reported + c.loss_taken + ring.pending_lost
                == c.posted - c.filtered)
