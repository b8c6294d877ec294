# SPDX-License-Identifier: GPL-2.0
"""Host tests of the ring differential checker: the trace format, the replay
through the model (whole-mapping compare after every operation, the
delivered + lost == posted invariant, hostile consumers included) and the
checker's command line, with fake kernels standing in for the guest driver."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import stat
import sys
from pathlib import Path

import pytest

from harness import ktap
from harness.checkers import ring_diff as rd
from harness.checkers import ring_replay as rr
from harness.ring_model import (
    HEAD_OFFSET,
    SLOT_SIZE,
    WATCH_TYPE_KEY_NOTIFY,
    Ring,
    TypeFilter,
    encode_record,
    pack_header,
)
from harness.ring_trace import Header, Kind, Op, Why, decode, encode, slot_delta
from tests.ring_fakes import (
    FakeDriver,
    LateHeadRing,
    StrayWriteRing,
    finish,
    random_record,
    run_random,
    wrapped,
)

REPO = Path(__file__).resolve().parent.parent


def replay(drv: FakeDriver, nr_ops: int, complete: bool = True) -> rr.Result:
    return rr.replay(decode(drv.trace(nr_ops, complete)))


# --- the trace -------------------------------------------------------------------------


def test_trace_round_trip() -> None:
    h = Header(2, 4096, True, 3, 77, "ring_hostile_2page")
    ops = [Op(Kind.OPEN, delta=((0, b"x" * 8),)),
           Op(Kind.INJECT, b"r" * 16, errno.EINVAL),
           Op(Kind.CONSUME, b"\0" * 4, 0, b"\1\0\0\0" * 3, ((8, b"a" * 8), (64, b"b" * 16)))]
    t = decode(encode(h, ops))
    assert t.header == h and t.ops == ops and t.complete and t.problem is None
    cut = decode(encode(h, ops)[:-20])
    assert not cut.complete and "cut short" in (cut.problem or "")
    assert not decode(encode(h, ops, complete=False)).complete


def test_slot_delta_is_whole_slots() -> None:
    a = bytes(64)
    b = bytearray(a)
    b[9] = 1
    b[40:50] = b"z" * 10
    assert slot_delta(a, bytes(b)) == ((8, bytes(b[8:16])), (40, bytes(b[40:56])))


# --- replay ------------------------------------------------------------------------------


def test_model_against_itself_passes_every_step() -> None:
    drv = FakeDriver(1)
    run_random(drv, random.Random(1), 3000)
    finish(drv)
    res = replay(drv, 3000)
    assert res.failure is None
    assert "invariant=ok" in res.summary


def first_wrap(seed: int, nr_pages: int, nr_ops: int) -> int:
    """Index of the first operation whose record went round the end of the ring."""
    ring = Ring(nr_pages)
    rng = random.Random(seed)
    from harness.ring_model import consume_buffer
    for i in range(nr_ops):
        roll = rng.random()
        if roll < 0.2:
            consume_buffer(ring.image, rng.choice((None, 1, 3)))
        elif roll < 0.25:
            ring.take_loss()
        else:
            res = ring.post(random_record(rng))
            if wrapped(res.placements):
                return i
    raise AssertionError("no wrap")


def test_stray_write_into_free_space_is_caught_at_the_first_wrap() -> None:
    """A kernel that writes 8 bytes into free space after each wrap: the
    sparse compare of old went 25,000 operations without seeing it."""
    wrap = first_wrap(5, 4, 25_000)
    drv = FakeDriver(4, ring_class=StrayWriteRing)
    run_random(drv, random.Random(5), 25_000)
    finish(drv)
    res = replay(drv, 25_000)
    assert res.failure is not None
    assert res.failure.step == wrap
    assert res.failure.what == "mapping differs from the model"
    assert any("53 54 52 41 59 21 21 21" in line for line in res.failure.diff)  # "STRAY!!!"


def test_late_head_is_caught() -> None:
    drv = FakeDriver(1, ring_class=LateHeadRing)
    run_random(drv, random.Random(2), 2000)
    res = replay(drv, 2000)
    assert res.failure is not None
    assert f"@{HEAD_OFFSET:#07x}" in "\n".join(res.failure.diff)


def test_fresh_ring_mismatch_is_step_minus_1() -> None:
    class NoMetaRing(Ring):
        def __init__(self, nr_pages: int, page_size: int = 4096) -> None:
            super().__init__(nr_pages, page_size)
            self.image[0:SLOT_SIZE] = bytes(SLOT_SIZE)

    res = replay(FakeDriver(1, ring_class=NoMetaRing), 0)
    assert res.failure is not None and res.failure.step == -1


def test_wrong_take_loss_and_errno_are_reported() -> None:
    class LeakyLoss(Ring):
        def take_loss(self) -> int:
            return super().take_loss() + (1 if self.counters.lost > 5 else 0)

    drv = FakeDriver(1, ring_class=LeakyLoss)
    run_random(drv, random.Random(1), 5000)
    res = replay(drv, 5000)
    assert res.failure is not None and "take_loss returned" in res.failure.what

    drv = FakeDriver(1)
    drv.inject(pack_header(0, 0, 1))  # META: EINVAL
    drv.ops[-1] = Op(Kind.INJECT, drv.ops[-1].arg, 0)  # a kernel that took it
    res = replay(drv, 1)
    assert res.failure is not None and res.failure.step == 0
    assert "inject returned" in res.failure.what


def test_filters_replay() -> None:
    drv = FakeDriver(1)
    drv.set_filter([TypeFilter(WATCH_TYPE_KEY_NOTIFY)])
    drv.set_filter([])  # EINVAL
    drv.set_filter([TypeFilter(1, 0x100, 0)])  # EINVAL: info_filter outside the mask
    drv.inject(encode_record(5, 0, b"filtered"))
    drv.set_filter(None)
    drv.inject(encode_record(5, 0, b"gets in"))
    finish(drv)
    assert [op.err for op in drv.ops[2:4]] == [errno.EINVAL] * 2
    assert replay(drv, 6).failure is None


def test_incomplete_trace_fails() -> None:
    drv = FakeDriver(1)
    run_random(drv, random.Random(1), 50)
    res = replay(drv, 50, complete=False)
    assert res.failure is not None and "incomplete" in res.failure.what


def hostile_overwrite(resync: bool) -> FakeDriver:
    """Unread records, a sane-looking hostile tail that lets the kernel
    overwrite them, then the consumer's tail back (or at head)."""
    drv = FakeDriver(1, hostile=True)
    for _ in range(20):
        drv.inject(encode_record(WATCH_TYPE_KEY_NOTIFY, 1, bytes(100)))
    drv.consume(3)
    mine = drv.ring.tail_word
    drv.write_tail(Why.TAIL_EDGE, drv.ring.head - 10)  # "nearly empty"
    for _ in range(15):
        drv.inject(encode_record(WATCH_TYPE_KEY_NOTIFY, 2, bytes(200)))
    drv.write_tail(Why.RESTORE_TAIL, drv.ring.head if resync else mine)
    finish(drv)
    return drv


def test_hostile_consumer_discards_are_counted() -> None:
    res = replay(hostile_overwrite(resync=True), 38)
    assert res.failure is None, res.failure
    assert "discarded=" in res.summary and "discarded=0+" not in res.summary
    assert "invariant=ok" in res.summary


def test_hostile_overwrite_without_resync_breaks_the_consumer() -> None:
    # Going back to its own tail after the kernel overwrote unread records,
    # the consumer reads garbage: the replay says so rather than pass.
    res = replay(hostile_overwrite(resync=False), 38)
    assert res.failure is not None


def test_invariant_counts_what_the_model_posted() -> None:
    drv = FakeDriver(1)
    run_random(drv, random.Random(3), 500)
    finish(drv)
    trace = decode(drv.trace(500))
    # A consumer that read one record fewer than the model says is a mismatch.
    ops = list(trace.ops)
    last_consume = max(i for i, op in enumerate(ops) if op.kind is Kind.CONSUME)
    nr, tail, _ = ops[last_consume].consumed
    bad = Op(Kind.CONSUME, ops[last_consume].arg, 0,
             (nr - 1).to_bytes(4, "little") + tail.to_bytes(4, "little") + bytes(4),
             ops[last_consume].delta)
    ops[last_consume] = bad
    res = rr.replay(type(trace)(trace.header, ops, True))
    assert res.failure is not None and "consumer read" in res.failure.what


def test_describe_every_kind() -> None:
    drv = FakeDriver(1)
    drv.inject(encode_record(1, 2, b"abc"))
    drv.consume(None)
    drv.take_loss()
    drv.set_filter(None)
    drv.write(Why.SCRIBBLE_FREE, 64, b"\xff" * 20)
    texts = [rr.describe(op) for op in drv.ops]
    assert texts[0] == "open" and texts[1].startswith("inject type=1 subtype=2")
    assert texts[2] == "consume max=all" and texts[3] == "take_loss"
    assert texts[4] == "set_filter NULL" and texts[5].startswith("write scribble_free at 0x40")


# --- the command line, with tests/ring_fakes.py as the driver -------------------------


@pytest.fixture
def fake_driver(tmp_path: Path) -> Path:
    script = tmp_path / "fake_driver"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} "
                      f"-m tests.ring_fakes \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def run_main(*argv: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    rc = rd.main(list(argv), out)
    return rc, out.getvalue().splitlines()


def test_main_passes_against_the_model(fake_driver: Path) -> None:
    rc, lines = run_main("--driver", str(fake_driver), "--ops", "2000", "--seed", "5")
    assert rc == 0, lines
    assert lines[:2] == ["KTAP version 1", "1..4"] and lines[-1] == "# ops=2000"
    assert [(t.name, t.status) for t in ktap.parse(lines).leaves()] == [
        (name, ktap.Status.PASSED)
        for name in ("ring_1page", "ring_2page", "ring_4page", "ring_hostile_2page")]


def test_main_catches_the_stray_writer_and_prints_a_rerun_line(
        fake_driver: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RING_BUG", "stray")
    monkeypatch.setenv("VMTEST_SELFTESTS", "/b/obj-default/selftests")
    rc, lines = run_main("--driver", str(fake_driver), "--ops", "3000", "--pages", "4",
                         "--subtest", "ring_4page", "--seed", "9")
    text = "\n".join(lines)
    assert rc == 1 and "not ok 1 ring_4page" in lines
    mismatch = next(line for line in lines if "MISMATCH" in line)
    step = int(mismatch.split("step=")[1].split()[0])
    rerun = next(line for line in lines if line.startswith("# rerun: "))
    assert rerun == ("# rerun: make vmrun CMD='VMTEST_SELFTESTS=/b/obj-default/selftests "
                     "PYTHONPATH=. python3 -m harness.checkers.ring_diff --seed 9 --pages 4 "
                     f"--subtest ring_4page --ops {step + 1}'")
    assert "kernel 53 54 52 41 59 21 21 21" in text
    # The rerun's prefix fails at the same step; one operation fewer passes.
    rc2, lines2 = run_main("--driver", str(fake_driver), "--ops", str(step + 1), "--pages", "4",
                           "--subtest", "ring_4page", "--seed", "9")
    assert rc2 == 1 and f"step={step} " in "\n".join(lines2)
    rc3, _ = run_main("--driver", str(fake_driver), "--ops", str(step), "--pages", "4",
                      "--subtest", "ring_4page", "--seed", "9")
    assert rc3 == 0


def test_main_skips_when_the_driver_skips(fake_driver: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RING_SKIP", "/dev/watch_queue absent")
    rc, lines = run_main("--driver", str(fake_driver), "--ops", "10")
    assert rc == 0
    assert lines[3] == "ok 1 ring_1page # SKIP /dev/watch_queue absent"


def test_missing_driver_fails(tmp_path: Path) -> None:
    rc, lines = run_main("--driver", str(tmp_path / "none"), "--ops", "10")
    assert rc == 1 and "not ok 1 ring_1page" in lines
    assert any("cannot run" in line for line in lines)


def test_record_then_replay_results(fake_driver: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The split run: the guest records, the host replays into NAME.out."""
    results = tmp_path / "guest"
    results.mkdir()
    monkeypatch.setenv("VMTEST_RESULTS", str(results))
    out = io.StringIO()
    assert rd.main(["--driver", str(fake_driver), "--ops", "400", "--record"], out) == 0
    (results / "ring_diff.out").write_text(out.getvalue())
    (results / "ring_diff.rc").write_text("0\n")
    meta = json.loads((results / "ring_diff.trace" / "meta.json").read_text())
    assert [s["name"] for s in meta["subtests"]] == ["ring_1page", "ring_2page", "ring_4page",
                                                     "ring_hostile_2page"]
    assert rd.replay_results(results) == 0
    lines = (results / "ring_diff.out").read_text().splitlines()
    assert ktap.parse(lines).status is ktap.Status.PASSED
    assert (results / "ring_diff.rc").read_text() == "0\n"
    assert "host's" in (results / "ring_diff.guest.out").read_text()


def test_replay_results_without_a_trace_fails(tmp_path: Path) -> None:
    (tmp_path / "ring_diff.rc").write_text("0\n")
    assert rd.replay_results(tmp_path) == 1
    assert ktap.parse((tmp_path / "ring_diff.out").read_text().splitlines()).status \
        is ktap.Status.FAILED
    assert (tmp_path / "ring_diff.rc").read_text() == "1\n"


def test_record_needs_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VMTEST_RESULTS", raising=False)
    assert rd.main(["--record"], io.StringIO()) == 2


def test_driver_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMTEST_SELFTESTS", "/x/selftests")
    assert rd.locate_driver(None) == Path("/x/selftests/drivers/ring_diff_driver")
    assert rd.locate_driver("/y") == Path("/y")
    monkeypatch.delenv("VMTEST_SELFTESTS")
    assert rd.locate_driver(None).parts[-3:] == ("selftests", "drivers", "ring_diff_driver")
    assert os.path.isabs(rd.locate_driver(None))


def test_replay_results_of_a_broken_trace_is_a_failure(fake_driver: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMTEST_RESULTS", str(tmp_path))
    assert rd.main(["--driver", str(fake_driver), "--ops", "50", "--record",
                    "--subtest", "ring_1page"], io.StringIO()) == 0
    (tmp_path / "ring_diff.trace" / "ring_1page.trace").write_bytes(b"WQRDIFF1" + bytes(40))
    (tmp_path / "ring_diff.rc").write_text("0\n")
    assert rd.replay_results(tmp_path) == 1
    result = ktap.parse((tmp_path / "ring_diff.out").read_text().splitlines())
    assert result.status is ktap.Status.FAILED
    assert (tmp_path / "ring_diff.rc").read_text() == "1\n"
