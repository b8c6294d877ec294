# SPDX-License-Identifier: GPL-2.0
"""watch_mount() records: split what a pipe or a ring returned, decode each
record into an Event in mountinfo ids, and check orderings. Pure."""

from __future__ import annotations

import collections
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness import uapi
from harness.ring_model import (
    SLOT_SIZE,
    WATCH_INFO_ID,
    WATCH_INFO_LENGTH,
    WATCH_INFO_NR_SLOTS,
    WATCH_META_LOSS_NOTIFICATION,
    WATCH_META_REMOVAL_NOTIFICATION,
    WATCH_TYPE_META,
)

_U = uapi.current()
MOUNT_RECORD_SIZE = _U.sizeof_mount_notification
REMOVAL_RECORD_SIZE = _U.sizeof_watch_notification_removal

# Subtype number -> the name the oracle uses (enum mount_notification_subtype).
SUBTYPES = {
    _U.NOTIFY_MOUNT_NEW_MOUNT: "NEW_MOUNT", _U.NOTIFY_MOUNT_UNMOUNT: "UNMOUNT",
    _U.NOTIFY_MOUNT_EXPIRY: "EXPIRY", _U.NOTIFY_MOUNT_READONLY: "READONLY",
    _U.NOTIFY_MOUNT_SETATTR: "SETATTR", _U.NOTIFY_MOUNT_MOVE_FROM: "MOVE_FROM",
    _U.NOTIFY_MOUNT_MOVE_TO: "MOVE_TO",
}
REMOVAL = "REMOVAL"

@dataclass(frozen=True, order=True)
class Event:
    """A record in terms of mountinfo ids.  REMOVAL records use watched only."""

    kind: str
    watch_id: int
    in_subtree: bool
    trigger: int
    aux: int
    watched: int
    attr: int

    def __str__(self) -> str:
        if self.kind == REMOVAL:
            return f"{REMOVAL}(w{self.watch_id} of {self.watched})"
        sub = " sub" if self.in_subtree else ""
        return (f"{self.kind}(w{self.watch_id}{sub} on={self.trigger} aux={self.aux} "
                f"watched={self.watched} attr={self.attr:#x})")



@dataclass(frozen=True)
class RawRecord:
    """One record as read: header fields, its length in bytes, the whole record."""

    type: int
    subtype: int
    info: int  # the length field cleared
    length: int
    data: bytes


def split_pipe_records(buf: bytes) -> tuple[list[RawRecord], str | None]:
    """Split what read() returned from a notification pipe into records."""
    out: list[RawRecord] = []
    off = 0
    while off < len(buf):
        if len(buf) - off < 8:
            return out, f"{len(buf) - off} stray bytes"
        word, info = struct.unpack_from("<II", buf, off)
        length = info & WATCH_INFO_LENGTH
        if length < 8 or off + length > len(buf):
            return out, f"bad pipe record length {length}"
        out.append(RawRecord(word & 0xFFFFFF, word >> 24, info & ~WATCH_INFO_LENGTH, length,
                             buf[off:off + length]))
        off += length
    return out, None


def ring_raw_record(data: bytes) -> tuple[RawRecord, str | None]:
    """A record consumed from the ring (length in slots, bits 6..7 zero)."""
    word, info = struct.unpack_from("<II", data, 0)
    problem = f"ring record info {info:#x} has bits 6..7 set" if info & 0xC0 else None
    return (RawRecord(word & 0xFFFFFF, word >> 24, info & ~WATCH_INFO_LENGTH,
                      (info & WATCH_INFO_NR_SLOTS) * SLOT_SIZE, data), problem)


IdLookup = Callable[[int], int | None]


def decode_record(rec: RawRecord, lookup: IdLookup) -> tuple[Event | None, list[str]]:
    """Turn a record into an Event (ids mapped by lookup); list what is malformed."""
    problems: list[str] = []

    def mapped(uid: int) -> int:
        mnt = lookup(uid)
        if mnt is None:
            problems.append(f"unknown 64-bit mount id {uid:#x}")
            return -1
        return mnt

    watch_id = (rec.info & WATCH_INFO_ID) >> 8
    if rec.type == WATCH_TYPE_META and rec.subtype == WATCH_META_REMOVAL_NOTIFICATION:
        if rec.length != REMOVAL_RECORD_SIZE:
            problems.append(f"removal record of {rec.length} bytes")
            return Event(REMOVAL, watch_id, False, 0, 0, -1, 0), problems
        uid = struct.unpack_from("<Q", rec.data, 8)[0]
        return Event(REMOVAL, watch_id, False, 0, 0, mapped(uid), 0), problems
    if rec.type != _U.WATCH_TYPE_MOUNT_NOTIFY or rec.subtype not in SUBTYPES:
        what = "LOSS" if (rec.type, rec.subtype) == (WATCH_TYPE_META,
                                                     WATCH_META_LOSS_NOTIFICATION) else ""
        problems.append(f"unexpected record type {rec.type} subtype {rec.subtype} {what}")
        return None, problems
    if rec.length < MOUNT_RECORD_SIZE:
        problems.append(f"mount record of {rec.length} bytes")
        return None, problems
    trig, aux, watched, attr = struct.unpack_from("<QQQQ", rec.data, 8)
    flags = rec.info & _U.WATCH_INFO_TYPE_INFO
    known = _U.NOTIFY_MOUNT_IN_SUBTREE | _U.NOTIFY_MOUNT_IS_NOW_RO | _U.NOTIFY_MOUNT_IS_SUBMOUNT
    if flags & ~known:
        problems.append(f"unknown info flags {flags:#x}")
    if bool(flags & _U.NOTIFY_MOUNT_IS_NOW_RO) != bool(attr & _U.MOUNT_ATTR_RDONLY):
        problems.append(f"IS_NOW_RO flag disagrees with mnt_attr {attr:#x}")
    if flags & _U.NOTIFY_MOUNT_IS_SUBMOUNT:
        problems.append("IS_SUBMOUNT on a tmpfs mount")
    # Clear when the event happened at the watched mount or to it (a move).
    if bool(flags & _U.NOTIFY_MOUNT_IN_SUBTREE) != (watched not in (trig, aux)):
        problems.append("IN_SUBTREE flag disagrees with triggered_on/auxiliary_mount "
                        "!= watched_mount")
    if rec.length != MOUNT_RECORD_SIZE:
        problems.append(f"mount record of {rec.length} bytes, not {MOUNT_RECORD_SIZE}")
    event = Event(SUBTYPES[rec.subtype], watch_id, bool(flags & _U.NOTIFY_MOUNT_IN_SUBTREE),
                  mapped(trig), mapped(aux), mapped(watched), attr)
    return event, problems


def record_uids(rec: RawRecord) -> list[int]:
    if rec.type == WATCH_TYPE_META and rec.length >= REMOVAL_RECORD_SIZE:
        return [struct.unpack_from("<Q", rec.data, 8)[0]]
    if rec.type == _U.WATCH_TYPE_MOUNT_NOTIFY and rec.length >= MOUNT_RECORD_SIZE:
        return list(struct.unpack_from("<QQQ", rec.data, 8))
    return []


def order_problems(events: Sequence[Event]) -> list[str]:
    """Orderings the kernel promises within one operation, per watch."""
    problems: list[str] = []
    pos: dict[tuple[str, int, int], int] = {}
    for i, e in enumerate(events):
        pos.setdefault((e.kind, e.watch_id, e.aux), i)
    for (first, then) in (("MOVE_FROM", "MOVE_TO"), ("READONLY", "SETATTR"),
                          ("EXPIRY", "UNMOUNT")):
        for (kind, wid, aux), i in pos.items():
            j = pos.get((then, wid, aux))
            if kind == first and j is not None and j < i:
                problems.append(f"{then} before {first} for mount {aux} (watch {wid})")
    last: dict[int, int] = {}
    for i, e in enumerate(events):
        if e.kind == REMOVAL:
            last.setdefault(e.watch_id, i)
        elif e.watch_id in last:
            problems.append(f"{e} after the removal of watch {e.watch_id}")
    return problems


def compare_events(expected: Sequence[Event], received: Sequence[Event]
                   ) -> tuple[list[Event], list[Event]]:
    """(missing, extra) as multisets."""
    want = collections.Counter(expected)
    got = collections.Counter(received)
    return sorted((want - got).elements()), sorted((got - want).elements())
