# SPDX-License-Identifier: GPL-2.0
"""Host tests of fanotify as the mount oracle's second reference
(harness/checkers/mount_fanotify.py) and of the driver's fanotify reader:
event decoding, the attached/detached/moved sets of both references, the
scope of W's watch, and the comparison with its one designed difference
(tucked mounts)."""

from __future__ import annotations

import os
import socket
import struct

from harness import uapi
from harness.checkers import mount_fanotify as mf
from harness.checkers import mount_oracle as mo
from harness.checkers import mount_records as mr
from harness.checkers import mountinfo as mi

U = uapi.current()
ATTACH, DETACH = U.FAN_MNT_ATTACH, U.FAN_MNT_DETACH

# /mnt (20) holds W (21) and O (22); 30 and 31 are below W, 40 below O.
BASE = (
    "20 1 0:30 / /mnt rw,relatime - tmpfs mo_base rw\n"
    "21 20 0:31 / /mnt/w0 rw,relatime - tmpfs mo_root rw\n"
    "22 20 0:32 / /mnt/o0 rw,relatime - tmpfs mo_root rw\n"
    "30 21 0:33 / /mnt/w0/d0 rw,relatime - tmpfs mo_tmp rw\n"
    "31 30 0:34 / /mnt/w0/d0/d1 rw,relatime - tmpfs mo_tmp rw\n"
    "40 22 0:35 / /mnt/o0/d0 rw,relatime - tmpfs mo_tmp rw\n"
)
W = 21


def snap(text: str = BASE) -> dict[int, mi.MountEntry]:
    return mi.parse_mountinfo(text)


def fan_event(mask: int, uid: int, *, vers: int = -1, info_type: int = -1) -> bytes:
    """One event as a FAN_REPORT_MNT group's read() returns it."""
    meta = bytearray(U.sizeof_fanotify_event_metadata)
    struct.pack_into("<I", meta, U.offsetof_fanotify_event_metadata_event_len,
                     mf.MOUNT_EVENT_SIZE)
    meta[U.offsetof_fanotify_event_metadata_vers] = (U.FANOTIFY_METADATA_VERSION if vers < 0
                                                     else vers)
    struct.pack_into("<H", meta, U.offsetof_fanotify_event_metadata_metadata_len,
                     U.sizeof_fanotify_event_metadata)
    struct.pack_into("<Q", meta, U.offsetof_fanotify_event_metadata_mask, mask)
    info = bytearray(U.sizeof_fanotify_event_info_mnt)
    info[U.offsetof_fanotify_event_info_header_info_type] = (
        U.FAN_EVENT_INFO_TYPE_MNT if info_type < 0 else info_type)
    struct.pack_into("<H", info, U.offsetof_fanotify_event_info_header_len,
                     U.sizeof_fanotify_event_info_mnt)
    struct.pack_into("<Q", info, U.offsetof_fanotify_event_info_mnt_mnt_id, uid)
    return bytes(meta + info)


def overflow_event() -> bytes:
    meta = bytearray(U.sizeof_fanotify_event_metadata)
    struct.pack_into("<IBBHQii", meta, 0, len(meta), U.FANOTIFY_METADATA_VERSION, 0,
                     len(meta), U.FAN_Q_OVERFLOW, -1, 0)
    return bytes(meta)


# --- decoding --------------------------------------------------------------------


def test_the_uapi_layout_is_fanotifys() -> None:
    """<linux/fanotify.h> as of 6.15: 24-byte metadata, a 16-byte mount info."""
    assert (mf.META_SIZE, mf.MNT_INFO_SIZE) == (24, 16)
    assert (ATTACH, DETACH, U.FAN_REPORT_MNT, U.FAN_MARK_MNTNS) == (
        0x01000000, 0x02000000, 0x4000, 0x110)
    assert (U.NR_fanotify_init, U.NR_fanotify_mark) == (300, 301)


def test_split_events() -> None:
    buf = fan_event(ATTACH, 0x1001) + fan_event(DETACH, 0x1002) + fan_event(ATTACH | DETACH,
                                                                            0x1003)
    events, problems = mf.split_fanotify_events(buf)
    assert problems == []
    assert events == [mf.FanEvent(ATTACH, 0x1001), mf.FanEvent(DETACH, 0x1002),
                      mf.FanEvent(ATTACH | DETACH, 0x1003)]


def test_split_events_problems() -> None:
    events, problems = mf.split_fanotify_events(overflow_event() + fan_event(ATTACH, 7))
    assert events == [mf.FanEvent(ATTACH, 7)]
    assert problems == ["fanotify: queue overflow (FAN_Q_OVERFLOW)"]
    _, problems = mf.split_fanotify_events(fan_event(ATTACH, 7, info_type=1))
    assert "info type 1" in problems[0]
    _, problems = mf.split_fanotify_events(fan_event(ATTACH, 7, vers=2))
    assert "metadata version 2" in problems[0]
    _, problems = mf.split_fanotify_events(fan_event(0x1, 7))
    assert "event mask 0x1" in problems[0]
    _, problems = mf.split_fanotify_events(fan_event(ATTACH, 7)[:30])
    assert "bad event_len" in problems[0]
    short = bytearray(fan_event(ATTACH, 7)[:mf.META_SIZE])
    struct.pack_into("<I", short, U.offsetof_fanotify_event_metadata_event_len, mf.META_SIZE)
    events, problems = mf.split_fanotify_events(bytes(short) + fan_event(DETACH, 8))
    assert events == [mf.FanEvent(DETACH, 8)]
    assert problems == [f"fanotify: mount event of 24 bytes, not {mf.MOUNT_EVENT_SIZE}"]
    _, problems = mf.split_fanotify_events(b"\0" * 10)
    assert "10 stray bytes" in problems[0]


def test_driver_drains_until_eagain() -> None:
    r, w = os.pipe2(os.O_NONBLOCK)
    group = object.__new__(mo.FanotifyGroup)
    group.fd = r
    try:
        os.write(w, fan_event(ATTACH, 5) + fan_event(DETACH, 6))
        events, problems = group.drain()
        assert (events, problems) == ([mf.FanEvent(ATTACH, 5), mf.FanEvent(DETACH, 6)], [])
        assert group.drain() == ([], [])
    finally:
        group.close()
        os.close(w)


def test_driver_reads_again_after_a_full_read() -> None:
    """A read that left no room for another event may not have emptied the
    queue.  A SOCK_SEQPACKET pair gives reads of whole events, as fanotify."""
    r, w = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r.setblocking(False)
    group = object.__new__(mo.FanotifyGroup)
    group.fd = r.detach()
    try:
        full = mo.FANOTIFY_READ // mf.MOUNT_EVENT_SIZE
        w.send(b"".join(fan_event(ATTACH, n) for n in range(full)))
        w.send(b"".join(fan_event(DETACH, n) for n in range(3)))
        events, problems = group.drain()
        assert problems == [] and len(events) == full + 3
        assert events[-1] == mf.FanEvent(DETACH, 2)
    finally:
        group.close()
        w.close()


# --- the sets of each reference ----------------------------------------------------


def test_fanotify_sets_classify_by_mask() -> None:
    ids = {0x1030: 30, 0x1031: 31, 0x1040: 40}
    events = [mf.FanEvent(ATTACH, 0x1030), mf.FanEvent(DETACH, 0x1031),
              mf.FanEvent(ATTACH | DETACH, 0x1040), mf.FanEvent(ATTACH, 0x9999)]
    sets, problems = mf.fanotify_sets(events, ids.get)
    assert (sets.attached, sets.detached, sets.moved) == ({30}, {31}, {40})
    assert problems == ["fanotify: unknown 64-bit mount id 0x9999"]


def ev(kind: str, wid: int, trig: int, aux: int, watched: int) -> mr.Event:
    return mr.Event(kind, wid, trig != watched, trig, aux, watched, 0)


def test_watch_mount_sets_take_one_watch() -> None:
    events = [ev("NEW_MOUNT", 1, 30, 31, 21), ev("NEW_MOUNT", 2, 30, 32, 30),
              ev("UNMOUNT", 1, 21, 33, 21), ev("EXPIRY", 1, 21, 33, 21),
              ev("MOVE_FROM", 1, 21, 34, 21), ev("MOVE_TO", 1, 30, 34, 21),
              ev("SETATTR", 1, 30, 30, 21), mr.Event(mr.REMOVAL, 1, False, 0, 0, 21, 0)]
    sets = mf.watch_mount_sets(events, 1)
    assert (sets.attached, sets.detached, sets.moved) == ({31}, {33}, {34})


def test_scope_is_below_w_before_or_after() -> None:
    pre = snap()
    # 40 moves from O into W; 31 is unmounted; 41 appears under O; W itself
    # is never in scope.
    post = snap(BASE.replace("40 22 0:35 / /mnt/o0/d0", "40 30 0:35 / /mnt/w0/d0/d2")
                .replace("31 30 0:34 / /mnt/w0/d0/d1 rw,relatime - tmpfs mo_tmp rw\n", "")
                + "41 22 0:36 / /mnt/o0/d1 rw - tmpfs mo_tmp rw\n")
    sets = mf.MountSets({41}, {31, W}, {40})
    got = mf.scoped(sets, pre, post, W)
    assert (got.attached, got.detached, got.moved) == (set(), {31}, {40})
    assert mf.below(pre, 31, W) and not mf.below(pre, W, W) and not mf.below(pre, 40, W)


# --- the comparison --------------------------------------------------------------


def test_agreement() -> None:
    s = snap()
    a = mf.compare_sets(mf.MountSets({30}, {31}, {40}), mf.MountSets({30}, {31}, {40}), s, s)
    assert a == mf.Agreement([], 0)


def test_disagreement_names_the_mounts() -> None:
    s = snap()
    a = mf.compare_sets(mf.MountSets({30, 31}, set(), {40}), mf.MountSets({30}, {22}, set()),
                        s, s)
    assert a.problems == [
        "fanotify and watch_mount disagree on the mounts attached: only fanotify "
        "31@/mnt/w0/d0/d1, only watch_mount -",
        "fanotify and watch_mount disagree on the mounts detached: only fanotify -, "
        "only watch_mount 22@/mnt/o0",
        "moved per fanotify, not per watch_mount: 40@/mnt/o0/d0",
    ]


def test_a_tucked_mount_is_the_one_move_only_watch_mount_reports() -> None:
    """A propagated copy 50 lands on /mnt/w0/d0 beneath 30, which now sits on
    50: watch_mount reports the move of 30, fanotify only the attach of 50."""
    pre = snap()
    post = snap(BASE.replace("30 21 0:33 / /mnt/w0/d0", "30 50 0:33 / /mnt/w0/d0")
                + "50 21 0:40 / /mnt/w0/d0 rw,relatime - tmpfs mo_tmp rw\n")
    a = mf.compare_sets(mf.MountSets({50}, set(), set()), mf.MountSets({50}, set(), {30}),
                        pre, post)
    assert a == mf.Agreement([], 1)
    # A move only watch_mount reports whose new parent is not new is wrong.
    moved = snap(BASE.replace("40 22 0:35 / /mnt/o0/d0", "40 30 0:35 / /mnt/w0/d0/d2"))
    a = mf.compare_sets(mf.MountSets(), mf.MountSets(set(), set(), {40}), pre, moved)
    assert a.tucked == 0
    assert a.problems == ["moved per watch_mount, not per fanotify, and not a tuck beneath a "
                          "mount attached by this operation: 40@/mnt/w0/d0/d2 (new parent "
                          "30@/mnt/w0/d0)"]
