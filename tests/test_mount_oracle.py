# SPDX-License-Identifier: GPL-2.0
"""Host tests of the mount oracle's pure parts (mountinfo, mount_records,
mount_expect, mount_ops) and its driver's error handling: mountinfo
parsing and diffing, the expected-record computation, record decoding (pipe
and ring form), and the operation generator."""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import os
import random
import struct

import pytest

from harness import ktap, uapi
from harness.checkers import mount_expect as me
from harness.checkers import mount_ops as mop
from harness.checkers import mount_oracle as mo
from harness.checkers import mount_records as mr
from harness.checkers import mountinfo as mi
from harness.ring_model import Ring, consume_buffer, ring_record_from_pipe

U = uapi.current()

# --- canned mountinfo ------------------------------------------------------------

BASE = (
    "1 1 0:2 / / rw - rootfs rootfs rw\n"
    "20 1 0:30 / /mnt rw,relatime - tmpfs mo_base rw\n"
    "21 20 0:31 / /mnt/w0 rw,relatime - tmpfs mo_root rw\n"
    "22 20 0:32 / /mnt/o0 rw,relatime shared:3 - tmpfs mo_root rw\n"
    "30 21 0:33 / /mnt/w0/d0 rw,nosuid,relatime - tmpfs mo_tmp rw\n"
    "31 30 0:34 / /mnt/w0/d0/d1 ro,noatime - tmpfs mo_tmp ro\n"
)


def snap(text: str = BASE, extra: str = "", drop: tuple[int, ...] = ()) -> dict[int, mi.MountEntry]:
    lines = [ln for ln in (text + extra).splitlines() if int(ln.split()[0]) not in drop]
    return mi.parse_mountinfo("\n".join(lines) + "\n")


def line(mnt: int, parent: int, point: str, opts: str = "rw,relatime", root: str = "/") -> str:
    return f"{mnt} {parent} 0:{mnt + 100} {root} {point} {opts} - tmpfs mo_tmp rw\n"


def watch(watch_id: int, mnt: int) -> me.Watch:
    return me.Watch(watch_id, mnt, 0x1000 + mnt)


def ev(kind: str, wid: int, trig: int, aux: int, watched: int, attr: int) -> mr.Event:
    return mr.Event(kind, wid, trig != watched, trig, aux, watched, attr)


# --- parsing ---------------------------------------------------------------------


def test_parse_fields_and_optional_fields() -> None:
    s = snap()
    assert set(s) == {1, 20, 21, 22, 30, 31}
    e = s[22]
    assert (e.parent, e.mount_point, e.root, e.fstype, e.source) == (20, "/mnt/o0", "/",
                                                                      "tmpfs", "mo_root")
    assert e.propagation == "shared:3"
    assert s[30].options == frozenset({"rw", "nosuid", "relatime"})


def test_parse_unescapes_paths() -> None:
    s = mi.parse_mountinfo("5 1 0:9 /a\\040b /mnt/x\\040y\\134z rw - tmpfs a\\011b rw\n")
    assert s[5].mount_point == "/mnt/x y\\z"
    assert s[5].root == "/a b"
    assert s[5].source == "a\tb"


def test_parse_ignores_junk_lines() -> None:
    assert mi.parse_mountinfo("\ngarbage\n" + line(7, 1, "/x")).keys() == {7}


def test_parser_filter_and_cache_identity() -> None:
    parser = mi.MountinfoParser("/mnt/w0")
    a = parser.parse(BASE)
    b = parser.parse(BASE + line(40, 30, "/mnt/w0/d0/d2"))
    assert set(a) == {21, 30, 31}
    assert set(b) == {21, 30, 31, 40}
    assert a[30] is b[30]  # unchanged lines are the same object
    assert not parser.keep(line(50, 20, "/mnt/w00"))


@pytest.mark.parametrize(("opts", "attr"), [
    ("rw,relatime", 0),
    ("rw", U.MOUNT_ATTR_STRICTATIME),
    ("ro,noatime", U.MOUNT_ATTR_RDONLY | U.MOUNT_ATTR_NOATIME),
    ("rw,nosuid,nodev,noexec,relatime", 0xE),
    ("rw,nodiratime,nosymfollow,relatime", 0x80 | 0x200000),
    ("rw,relatime,idmapped", U.MOUNT_ATTR_IDMAP),
])
def test_attr_from_options(opts: str, attr: int) -> None:
    assert mi.attr_from_options(opts.split(",")) == attr


# --- diffing ---------------------------------------------------------------------


def test_diff_appeared_disappeared() -> None:
    pre = snap()
    post = snap(extra=line(40, 30, "/mnt/w0/d0/d2"), drop=(31,))
    d = mi.diff_mounts(pre, post)
    assert (d.appeared, d.disappeared, d.moved) == ((40,), (31,), ())
    assert not d.empty
    assert mi.diff_mounts(pre, snap()).empty


def test_diff_move_flags_only_the_moved_mount() -> None:
    pre = snap()
    # 30 (with 31 below it) moves from /mnt/w0/d0 to /mnt/o0/d2.
    moved = BASE.replace("30 21 0:33 / /mnt/w0/d0", "30 22 0:33 / /mnt/o0/d2").replace(
        "/mnt/w0/d0/d1", "/mnt/o0/d2/d1")
    d = mi.diff_mounts(pre, snap(moved))
    assert d.moved == (30,)
    # Same parent, other directory: a move too.
    within = BASE.replace("/mnt/w0/d0/d1", "/mnt/w0/d0/d2")
    assert mi.diff_mounts(pre, snap(within)).moved == (31,)


def test_diff_attributes() -> None:
    pre = snap()
    post_text = BASE.replace("ro,noatime - tmpfs mo_tmp ro", "rw,noatime - tmpfs mo_tmp ro")
    post_text = post_text.replace("rw,nosuid,relatime", "rw,relatime")
    d = mi.diff_mounts(pre, snap(post_text))
    assert d.ro_changed == (31,)
    assert d.other_changed == (30,)
    both = BASE.replace("ro,noatime - tmpfs mo_tmp ro", "rw,relatime - tmpfs mo_tmp ro")
    d = mi.diff_mounts(pre, snap(both))
    assert (d.ro_changed, d.other_changed) == ((31,), (31,))


def test_is_within_and_subtree() -> None:
    s = snap()
    assert mi.is_within(s, 31, 21)
    assert mi.is_within(s, 21, 21)
    assert not mi.is_within(s, 22, 21)
    assert not mi.is_within(s, 99, 21)
    assert mi.subtree_members(s, [21]) == {21, 30, 31}
    assert mi.subtree_members(s, [21, 22]) == {21, 22, 30, 31}


def test_visible_mounts_stacked_and_covered() -> None:
    extra = (line(40, 30, "/mnt/w0/d0")  # stacked on 30: hides 30 and 31
             + line(41, 22, "/mnt/o0/d0/d1")  # mounted before 42 covered d0
             + line(42, 22, "/mnt/o0/d0"))
    s = snap(extra=extra)
    vis = mi.visible_mounts(s, mi.subtree_members(s, [21, 22]))
    assert vis == {21, 22, 40, 42}


def test_arena_view_covered_root_is_movable() -> None:
    arena = mop.Arena("/mnt", "/mnt/w0", "/mnt/o0", "/mnt/a0")
    s = snap(extra=line(40, 21, "/mnt/w0"))
    view = mop.arena_view(s, arena, [21, 22])
    assert "/mnt/w0" in view.movable and "/mnt/o0" not in view.movable
    assert view.size == 5
    plain = mop.arena_view(snap(), arena, [21, 22])
    assert plain.movable == ("/mnt/w0/d0", "/mnt/w0/d0/d1")


# --- expected records ------------------------------------------------------------


def test_expected_new_mount_nested_watches() -> None:
    pre = snap()
    post = snap(extra=line(40, 31, "/mnt/w0/d0/d1/d0"))
    d = mi.diff_mounts(pre, post)
    got = me.expected_events(pre, post, d, [watch(1, 21), watch(2, 31), watch(3, 22)])
    assert sorted(got) == sorted([ev("NEW_MOUNT", 1, 31, 40, 21, 0),
                                  ev("NEW_MOUNT", 2, 31, 40, 31, 0)])
    assert [e.in_subtree for e in sorted(got)] == [True, False]


def test_expected_unmount_tree_and_removal_last() -> None:
    pre = snap()
    post = snap(drop=(30, 31))
    d = mi.diff_mounts(pre, post)
    got = me.expected_events(pre, post, d, [watch(1, 21), watch(2, 30)])
    ro_noatime = U.MOUNT_ATTR_RDONLY | U.MOUNT_ATTR_NOATIME
    assert got == [ev("UNMOUNT", 1, 21, 30, 21, U.MOUNT_ATTR_NOSUID),
                   ev("UNMOUNT", 1, 30, 31, 21, ro_noatime),
                   ev("UNMOUNT", 2, 30, 31, 30, ro_noatime),
                   mr.Event(mr.REMOVAL, 2, False, 0, 0, 30, 0)]
    assert mr.order_problems(got) == []


def test_expected_expiry_precedes_unmount() -> None:
    pre = snap()
    post = snap(drop=(31,))
    got = me.expected_events(pre, post, mi.diff_mounts(pre, post), [watch(1, 21)], expired=[31])
    assert [e.kind for e in got] == ["EXPIRY", "UNMOUNT"]


def test_expected_move_out_of_the_watched_subtree() -> None:
    pre = snap()
    moved = BASE.replace("30 21 0:33 / /mnt/w0/d0", "30 22 0:33 / /mnt/o0/d2").replace(
        "/mnt/w0/d0/d1", "/mnt/o0/d2/d1")
    post = snap(moved)
    got = me.expected_events(pre, post, mi.diff_mounts(pre, post), [watch(1, 21), watch(5, 22)])
    assert sorted(got) == sorted([ev("MOVE_FROM", 1, 21, 30, 21, U.MOUNT_ATTR_NOSUID),
                                  ev("MOVE_TO", 5, 22, 30, 22, U.MOUNT_ATTR_NOSUID)])


def test_expected_attribute_events_on_the_watched_mount() -> None:
    pre = snap()
    post = snap(BASE.replace("21 20 0:31 / /mnt/w0 rw,relatime", "21 20 0:31 / /mnt/w0 ro"))
    got = me.expected_events(pre, post, mi.diff_mounts(pre, post), [watch(1, 21)])
    attr = U.MOUNT_ATTR_RDONLY | U.MOUNT_ATTR_STRICTATIME
    assert got == [ev("READONLY", 1, 21, 21, 21, attr), ev("SETATTR", 1, 21, 21, 21, attr)]
    assert not got[0].in_subtree


def test_expected_explicit_unwatch() -> None:
    s = snap()
    w = [watch(1, 21), watch(4, 30)]
    got = me.expected_events(s, s, mi.diff_mounts(s, s), w, unwatched=[w[1]])
    assert got == [mr.Event(mr.REMOVAL, 4, False, 0, 0, 30, 0)]


# --- record decoding -------------------------------------------------------------


def mount_record(subtype: int, wid: int, trig: int, aux: int, watched: int, attr: int,
                 flags: int = -1) -> bytes:
    if flags < 0:
        flags = (U.NOTIFY_MOUNT_IN_SUBTREE if trig != watched else 0) | (
            U.NOTIFY_MOUNT_IS_NOW_RO if attr & 1 else 0)
    info = flags | (wid << 8) | mr.MOUNT_RECORD_SIZE
    return struct.pack("<IIQQQQ", U.WATCH_TYPE_MOUNT_NOTIFY | (subtype << 24), info,
                       trig, aux, watched, attr)


def removal_record(wid: int, uid: int) -> bytes:
    return struct.pack("<IIQ", U.WATCH_TYPE_META, (wid << 8) | mr.REMOVAL_RECORD_SIZE, uid)


IDS = {0x1021: 21, 0x1030: 30, 0x1031: 31}


def decode_all(records: list[mr.RawRecord]) -> tuple[list[mr.Event], list[str]]:
    events: list[mr.Event] = []
    problems: list[str] = []
    for r in records:
        e, bad = mr.decode_record(r, IDS.get)
        problems += bad
        if e is not None:
            events.append(e)
    return events, problems


def test_pipe_records_decode() -> None:
    buf = (mount_record(0, 1, 0x1030, 0x1031, 0x1021, 0x11)
           + mount_record(4, 1, 0x1021, 0x1021, 0x1021, 0x20)
           + removal_record(2, 0x1030))
    records, problem = mr.split_pipe_records(buf)
    assert problem is None
    events, problems = decode_all(records)
    assert problems == []
    assert events == [ev("NEW_MOUNT", 1, 30, 31, 21, 0x11), ev("SETATTR", 1, 21, 21, 21, 0x20),
                      mr.Event(mr.REMOVAL, 2, False, 0, 0, 30, 0)]
    assert mr.record_uids(records[0]) == [0x1030, 0x1031, 0x1021]


def test_pipe_record_problems() -> None:
    bad_flag = mount_record(3, 1, 0x1021, 0x1021, 0x1021, 0x1, flags=0)  # RO without IS_NOW_RO
    wrong_sub = mount_record(0, 1, 0x1021, 0x1030, 0x1021, 0, flags=U.NOTIFY_MOUNT_IN_SUBTREE)
    unknown = mount_record(1, 1, 0x9999, 0x1030, 0x1021, 0)
    records, _ = mr.split_pipe_records(bad_flag + wrong_sub + unknown)
    _, problems = decode_all(records)
    assert any("IS_NOW_RO" in p for p in problems)
    assert any("IN_SUBTREE" in p for p in problems)
    assert any("unknown 64-bit mount id 0x9999" in p for p in problems)
    assert mr.split_pipe_records(b"\0" * 12)[1] is not None


def test_loss_record_is_reported() -> None:
    loss = struct.pack("<II", U.WATCH_TYPE_META | (U.WATCH_META_LOSS_NOTIFICATION << 24), 8)
    records, _ = mr.split_pipe_records(loss)
    events, problems = decode_all(records)
    assert events == [] and "LOSS" in problems[0]


def test_ring_records_decode_like_pipe_records() -> None:
    pipe = [mount_record(5, 3, 0x1021, 0x1030, 0x1021, 0), removal_record(3, 0x1031),
            mount_record(6, 3, 0x1030, 0x1031, 0x1021, 0x1)]
    ring = Ring(1)
    for _ in range(150):  # wrap the ring a few times
        for rec in pipe:
            ring.post(ring_record_from_pipe(rec))
        result = consume_buffer(ring.image)
        assert result.error is None
        raws = []
        for r in result.records:
            raw, problem = mr.ring_raw_record(r.data)
            assert problem is None
            raws.append(raw)
        ring_events, problems = decode_all(raws)
        assert problems == []
        pipe_events, _ = decode_all(mr.split_pipe_records(b"".join(pipe))[0])
        assert ring_events == pipe_events
        assert raws[0].length == mr.MOUNT_RECORD_SIZE


def test_order_problems() -> None:
    mf = ev("MOVE_FROM", 1, 21, 30, 21, 0)
    mt = ev("MOVE_TO", 1, 21, 30, 21, 0)
    rem = mr.Event(mr.REMOVAL, 1, False, 0, 0, 21, 0)
    assert mr.order_problems([mf, mt, rem]) == []
    assert len(mr.order_problems([mt, mf])) == 1
    assert len(mr.order_problems([rem, mf])) == 1


def test_compare_events_is_a_multiset_compare() -> None:
    a = ev("NEW_MOUNT", 1, 21, 30, 21, 0)
    b = ev("UNMOUNT", 1, 21, 30, 21, 0)
    assert mr.compare_events([a, a, b], [b, a, a]) == ([], [])
    assert mr.compare_events([a, a], [a]) == ([a], [])
    assert mr.compare_events([a], [a, b]) == ([], [b])


# --- operations and output ---------------------------------------------------------


def gen(seed: int, view: mop.ArenaView, n: int = 200) -> list[mop.Op]:
    rng = random.Random(seed)
    arena = mop.Arena("/mnt", "/mnt/w0", "/mnt/o0", "/mnt/a0")
    return [mop.gen_op(rng, view, arena) for _ in range(n)]


VIEW = mop.ArenaView(("/mnt/o0", "/mnt/w0", "/mnt/w0/d0"), ("/mnt/w0/d0",), 3,
                    ("/mnt/w0/d0",))


def test_gen_op_is_deterministic_and_varied() -> None:
    ops = gen(7, VIEW)
    assert ops == gen(7, VIEW)
    assert ops != gen(8, VIEW)
    kinds = {op.kind for op in ops}
    assert kinds >= {"mount", "bind", "move", "setattr", "umount", "umount_lazy", "remount",
                     "remount_bind", "clone", "propagation", "watch", "unwatch"}
    for op in ops:
        if op.kind in ("move", "umount", "umount_lazy", "expire"):
            assert op.path == "/mnt/w0/d0"  # never a root of the arena
        if op.kind == "setattr":
            assert not op.attr_set & op.attr_clr & ~U.MOUNT_ATTR__ATIME


def test_gen_op_shrinks_a_full_arena() -> None:
    big = mop.ArenaView(VIEW.points, ("/mnt/w0/d0", "/mnt/w0/d0/d1"), mop.ARENA_CAP + 1)
    assert all(op.kind == "umount_lazy" and op.path == "/mnt/w0/d0" for op in gen(1, big, 20))


def test_gen_op_without_anything_movable_mounts() -> None:
    bare = mop.ArenaView(("/mnt/o0", "/mnt/w0"), (), 2)
    assert all(op.kind not in ("move", "umount", "umount_lazy", "expire", "unwatch")
               for op in gen(3, bare))


def test_emit_is_ktap() -> None:
    tests = [mo.Subtest("a"), mo.Subtest("b", ok=False, diags=["MISMATCH x"]),
             mo.Subtest("c", skip="no ring")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        mo.emit(tests, 42, 1.0)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["KTAP version 1", "1..3"]
    assert lines[-1] == "# ops=42"
    result = ktap.parse(lines)
    assert [t.status for t in result.leaves()] == [ktap.Status.PASSED, ktap.Status.FAILED,
                                                   ktap.Status.SKIPPED]


def test_every_generated_kind_has_an_action() -> None:
    assert {kind for kind, _ in mop.OP_WEIGHTS} == set(mo.ACTIONS)


def test_perform_reports_errors_and_resolves_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def fake_umount2(target: str, flags: int) -> None:
        calls.append((target, flags))
        if len(calls) == 1:
            raise OSError(errno.EAGAIN, "marked")

    monkeypatch.setattr(mo, "umount2", fake_umount2)
    monkeypatch.setattr(mo, "mount_id_of", lambda path: 77)
    out = mo.perform(mop.Op("expire", "/mnt/w0/d0", flags=mop.MNT_EXPIRE), [-1], 0)
    assert (out.error, out.resolved) == (0, 77)
    assert calls == [("/mnt/w0/d0", mop.MNT_EXPIRE)] * 2

    def refuse(*args: object) -> None:
        raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(mo, "mount", refuse)
    out = mo.perform(mop.Op("bind", "/a", "/b", mop.MS_BIND), [-1], 0)
    assert (out.error, out.resolved) == (errno.EBUSY, -1)


def test_watch_goes_on_every_queue_and_they_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {3: 0, 4: errno.EBUSY, 5: errno.EBUSY}
    calls: list[tuple[str, int, int]] = []

    def fake_watch_mount(path: str, fd: int, watch_id: int) -> None:
        calls.append((path, fd, watch_id))
        if answers[fd]:
            raise OSError(answers[fd], "refused")

    monkeypatch.setattr(mo, "watch_mount", fake_watch_mount)
    monkeypatch.setattr(mo, "mount_id_of", lambda path: 77)
    out = mo.perform(mop.Op("watch", "/mnt/w0/d0"), [3, 4], 2)
    assert calls == [("/mnt/w0/d0", 3, 2), ("/mnt/w0/d0", 4, 2)]
    assert out.error == 0  # the first queue's answer
    assert out.disagreement == "watch_mount() on the queues in turn: ok, EBUSY"
    out = mo.perform(mop.Op("unwatch", "/mnt/w0/d0"), [4, 5], 0)
    assert (out.error, out.disagreement) == (errno.EBUSY, "")
    assert calls[-2:] == [("/mnt/w0/d0", 4, -1), ("/mnt/w0/d0", 5, -1)]


class FakeQueue:
    capacity = 64

    def __init__(self, name: str, fd: int) -> None:
        self.name, self.fd = name, fd
        self.closed = False

    def drain(self) -> tuple[list[mr.RawRecord], list[str]]:
        return [], []

    def close(self) -> None:
        self.closed = True


def test_open_queues_skips_the_ring_without_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mo, "PipeQueue", lambda: FakeQueue("pipe", 3))
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    tests = [mo.Subtest(n) for n in ("pr", "pu", "rr", "ru")]
    queues, pairs = mo.open_queues(tests)
    assert [q.name for q in queues] == ["pipe"]
    assert pairs == [(tests[0], tests[1])]
    assert tests[2].skip == tests[3].skip == f"no {mo.DEVICE} in this kernel"

# --- pivot_root and moves of watched mounts -------------------------------------------

# P = 30 (/mnt/w0/d0, below W = 21) with 32 beside new_root 31 = /mnt/w0/d0/d1.
PIVOT_PRE = BASE + line(32, 30, "/mnt/w0/d0/d0")
# pivot_root("/d1", "/d1/d2") in a chroot at /mnt/w0/d0: 31 takes 30's place
# under 21, and 30 (with 32 still on it) goes under 31 at d2.
PIVOT_POST = (
    "1 1 0:2 / / rw - rootfs rootfs rw\n"
    "20 1 0:30 / /mnt rw,relatime - tmpfs mo_base rw\n"
    "21 20 0:31 / /mnt/w0 rw,relatime - tmpfs mo_root rw\n"
    "22 20 0:32 / /mnt/o0 rw,relatime shared:3 - tmpfs mo_root rw\n"
    "30 31 0:33 / /mnt/w0/d0/d2 rw,nosuid,relatime - tmpfs mo_tmp rw\n"
    "31 21 0:34 / /mnt/w0/d0 ro,noatime - tmpfs mo_tmp ro\n"
    + line(32, 30, "/mnt/w0/d0/d2/d0")
)


def test_pivot_root_diff_moves_both_mounts_only() -> None:
    pre, post = snap(PIVOT_PRE), snap(PIVOT_POST)
    d = mi.diff_mounts(pre, post)
    assert d.moved == (30, 31)  # 32's path changed, its place on 30 did not
    assert (d.appeared, d.disappeared, d.ro_changed, d.other_changed) == ((), (), (), ())


def test_expected_pivot_root() -> None:
    """Each moved mount: MOVE_FROM to its old parent's chain, MOVE_TO to its new
    parent's, both to its own watches without IN_SUBTREE."""
    pre, post = snap(PIVOT_PRE), snap(PIVOT_POST)
    ws = [watch(1, 21), watch(2, 30), watch(3, 31), watch(4, 22), watch(5, 32)]
    got = me.expected_events(pre, post, mi.diff_mounts(pre, post), ws)
    p_attr = U.MOUNT_ATTR_NOSUID
    n_attr = U.MOUNT_ATTR_RDONLY | U.MOUNT_ATTR_NOATIME
    assert sorted(got) == sorted([
        # P (30) leaves W (21) for new_root (31).
        ev("MOVE_FROM", 1, 21, 30, 21, p_attr), ev("MOVE_TO", 1, 31, 30, 21, p_attr),
        ev("MOVE_TO", 3, 31, 30, 31, p_attr),
        mr.Event("MOVE_FROM", 2, False, 21, 30, 30, p_attr),
        mr.Event("MOVE_TO", 2, False, 31, 30, 30, p_attr),
        # new_root (31) leaves P (30) for W (21), P's old parent.
        ev("MOVE_FROM", 1, 30, 31, 21, n_attr), ev("MOVE_FROM", 2, 30, 31, 30, n_attr),
        ev("MOVE_TO", 1, 21, 31, 21, n_attr),
        mr.Event("MOVE_FROM", 3, False, 30, 31, 31, n_attr),
        mr.Event("MOVE_TO", 3, False, 21, 31, 31, n_attr),
    ])
    assert mr.order_problems(got) == []
    assert all(e.watch_id not in (4, 5) for e in got)  # O, and 32 that did not move


def test_pivot_root_op_picks_a_chroot_a_mount_below_and_a_plain_put_old() -> None:
    view = mop.ArenaView(("/mnt/o0", "/mnt/w0", "/mnt/w0/d0", "/mnt/w0/d0/d1",
                          "/mnt/w0/d0/d1/d0"),
                         ("/mnt/w0/d0", "/mnt/w0/d0/d1", "/mnt/w0/d0/d1/d0"), 5)
    rng = random.Random(3)
    ops = [mop.pivot_root_op(rng, view) for _ in range(300)]
    assert all(op is not None for op in ops)
    stacked = 0
    for op in ops:
        assert op is not None and op.kind == "pivot_root"
        assert op.path in ("/mnt/w0/d0", "/mnt/w0/d0/d1")  # has a mount point below
        assert op.dest.startswith(op.path + "/") and op.dest in view.points
        if op.put_old == op.dest:
            stacked += 1
            continue
        assert op.put_old.rsplit("/", 1)[0] == op.dest
        assert op.put_old not in view.points  # nothing mounted on it
    assert 0 < stacked < 60
    assert str(ops[0]).startswith("pivot_root /mnt/w0/d0")
    assert " put_old=" in str(ops[0])
    bare = mop.ArenaView(("/mnt/o0", "/mnt/w0", "/mnt/w0/d0"), ("/mnt/w0/d0",), 3)
    assert mop.pivot_root_op(rng, bare) is None


def test_pivot_root_op_prefers_existing_directories() -> None:
    view = mop.ArenaView(("/mnt/w0", "/mnt/w0/d0", "/mnt/w0/d0/d1"),
                         ("/mnt/w0/d0", "/mnt/w0/d0/d1"), 3)
    rng = random.Random(1)
    for _ in range(50):
        op = mop.pivot_root_op(rng, view, lambda d: d == "/mnt/w0/d0/d1/d2")
        assert op is not None and op.put_old in ("/mnt/w0/d0/d1", "/mnt/w0/d0/d1/d2")
    # A new_root without a directory to put the old root on: stack it instead.
    op = mop.pivot_root_op(rng, view, lambda d: False)
    assert op is not None and op.put_old == op.dest == "/mnt/w0/d0/d1"


def test_gen_op_moves_watched_mounts() -> None:
    ops = gen(11, VIEW, 400)
    kinds = collections.Counter(op.kind for op in ops)
    assert kinds["pivot_root"] == 0  # nothing mounted below the one movable point
    assert kinds["move_watched"] >= 10
    for op in ops:
        if op.kind == "move_watched":
            assert op.path == "/mnt/w0/d0"
            assert not op.dest.startswith("/mnt/w0/d0/")  # never into itself
    # Without a watched mount that can move, the op puts a watch on one...
    unwatched = mop.ArenaView(VIEW.points, VIEW.movable, 3, ("/mnt/o0",))
    rng = random.Random(2)
    arena = mop.Arena("/mnt", "/mnt/w0", "/mnt/o0", "/mnt/a0")
    watches = [op for op in (mop.gen_op(rng, unwatched, arena) for _ in range(400))
               if op.kind == "watch"]
    assert sum(op.path == "/mnt/w0/d0" for op in watches) > len(watches) / 2
    # ... or, with every watch taken, removes one.
    full = mop.ArenaView(VIEW.points, VIEW.movable, 3, ("/mnt/o0", "/mnt/w0", "/mnt/w1"))
    assert all(op.kind != "move_watched" for op in gen(2, full))
    assert all(op.kind != "watch" for op in gen(2, full))


def test_gen_op_pivots_where_a_mount_is_below_another() -> None:
    view = mop.ArenaView(("/mnt/o0", "/mnt/w0", "/mnt/w0/d0", "/mnt/w0/d0/d2"),
                         ("/mnt/w0/d0", "/mnt/w0/d0/d2"), 4)
    pivots = [op for op in gen(5, view, 400) if op.kind == "pivot_root"]
    assert len(pivots) >= 10
    assert {(op.path, op.dest) for op in pivots} == {("/mnt/w0/d0", "/mnt/w0/d0/d2")}


def test_pivot_root_child_chroots_pivots_and_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """PivotChild.serve(), the child's loop, fed through a pipe."""
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(os, "chroot", lambda p: calls.append(("chroot", p)))
    monkeypatch.setattr(os, "chdir", lambda p: calls.append(("chdir", p)))
    monkeypatch.setattr(os, "fchdir", lambda fd: calls.append(("fchdir",)))

    def fake_pivot_root(new_root: str, put_old: str) -> None:
        calls.append(("pivot_root", new_root, put_old))
        if put_old == "/d1":
            raise OSError(errno.EBUSY, "busy")

    monkeypatch.setattr(mo, "pivot_root", fake_pivot_root)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    os.write(req_w, b"/mnt/w0/d0\0/d1\0/d1/d2\n/mnt/o0\0/d1\0/d1\n")
    os.close(req_w)
    try:
        mo.PivotChild.serve(req_r, rep_w)
        answers = struct.unpack("<ii", os.read(rep_r, 8))
    finally:
        os.close(rep_r)
        os.close(rep_w)
    assert answers == (0, errno.EBUSY)
    back = [("fchdir",), ("chroot", ".")]
    assert calls == [("chroot", "/mnt/w0/d0"), ("chdir", "/"), ("pivot_root", "/d1", "/d1/d2"),
                     *back, ("chroot", "/mnt/o0"), ("chdir", "/"),
                     ("pivot_root", "/d1", "/d1"), *back]


class FakePivotChild:
    def __init__(self, code: int) -> None:
        self.code = code
        self.asked: list[tuple[str, str, str]] = []

    def pivot(self, path: str, new_root: str, put_old: str) -> int:
        self.asked.append((path, new_root, put_old))
        return self.code


def test_pivot_root_paths_are_relative_to_the_chroot(monkeypatch: pytest.MonkeyPatch) -> None:
    op = mop.Op("pivot_root", "/mnt/w0/d0", "/mnt/w0/d0/d1", put_old="/mnt/w0/d0/d1/d2")
    child = FakePivotChild(0)
    monkeypatch.setattr(mo, "pivot_child", child)
    assert mo.perform(op, [-1], 0).error == 0
    assert child.asked == [("/mnt/w0/d0", "/d1", "/d1/d2")]
    monkeypatch.setattr(mo, "pivot_child", FakePivotChild(errno.EINVAL))
    assert mo.perform(op, [-1], 0).error == errno.EINVAL
    monkeypatch.setattr(mo, "pivot_child", None)
    with pytest.raises(RuntimeError, match="no pivot_root child"):
        mo.perform(op, [-1], 0)
