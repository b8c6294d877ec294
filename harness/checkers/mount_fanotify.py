# SPDX-License-Identifier: GPL-2.0
"""fanotify's mount events as the mount oracle's second reference. Pure.

A fanotify group with FAN_REPORT_MNT and a mark on the mount namespace
(FAN_MARK_MNTNS, FAN_MNT_ATTACH | FAN_MNT_DETACH) reports, after each
operation, which mounts of the namespace were attached (ATTACH alone),
detached (DETACH alone) and moved (both bits), by 64-bit mount id.  The
kernel's own upstream mechanism must agree with watch_mount() on those three
sets, once fanotify's namespace-wide view is cut down to what the watch on
the arena root W can see: the mounts below W, before or after the operation.
The watch_mount() side is W's watch: NEW_MOUNT is an attach, UNMOUNT a
detach, MOVE_FROM and MOVE_TO a move.

One difference is by design (Documentation/core-api/watch_queue.rst): when a
mount is tucked beneath a new one (a propagated copy lands where a mount
already is), watch_mount() reports the tucked mount's move to its new parent,
which fanotify leaves out.  Such a move is accepted only if the new parent
was attached by the same operation.  selftests/mount_fanotify_test.c makes
the same comparison in C for upstream's scenarios.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness import uapi
from harness.checkers.mount_records import Event
from harness.checkers.mountinfo import Snapshot, is_within

_U = uapi.current()

FAN_MNT_ATTACH, FAN_MNT_DETACH = _U.FAN_MNT_ATTACH, _U.FAN_MNT_DETACH
META_SIZE = _U.sizeof_fanotify_event_metadata
MNT_INFO_SIZE = _U.sizeof_fanotify_event_info_mnt
MOUNT_EVENT_SIZE = META_SIZE + MNT_INFO_SIZE
_EVENT_LEN = _U.offsetof_fanotify_event_metadata_event_len
_VERS = _U.offsetof_fanotify_event_metadata_vers
_META_LEN = _U.offsetof_fanotify_event_metadata_metadata_len
_MASK = _U.offsetof_fanotify_event_metadata_mask
_INFO_TYPE = _U.offsetof_fanotify_event_info_header_info_type
_INFO_LEN = _U.offsetof_fanotify_event_info_header_len
_MNT_ID = _U.offsetof_fanotify_event_info_mnt_mnt_id


@dataclass(frozen=True)
class FanEvent:
    mask: int
    mnt_uid: int  # the 64-bit mount id


def split_fanotify_events(buf: bytes) -> tuple[list[FanEvent], list[str]]:
    """The mount events in what read() returned from a FAN_REPORT_MNT group;
    anything else in it (an overflow, a malformed event) is a problem."""
    events: list[FanEvent] = []
    problems: list[str] = []
    off = 0
    while off < len(buf):
        if len(buf) - off < META_SIZE:
            return events, [*problems, f"fanotify: {len(buf) - off} stray bytes"]
        event_len = struct.unpack_from("<I", buf, off + _EVENT_LEN)[0]
        vers = buf[off + _VERS]
        meta_len = struct.unpack_from("<H", buf, off + _META_LEN)[0]
        mask = struct.unpack_from("<Q", buf, off + _MASK)[0]
        if event_len < META_SIZE or off + event_len > len(buf):
            return events, [*problems, f"fanotify: bad event_len {event_len}"]
        event = buf[off:off + event_len]
        off += event_len
        if vers != _U.FANOTIFY_METADATA_VERSION or meta_len != META_SIZE:
            problems.append(f"fanotify: metadata version {vers}, length {meta_len}")
            continue
        if mask & _U.FAN_Q_OVERFLOW:
            problems.append("fanotify: queue overflow (FAN_Q_OVERFLOW)")
            continue
        if not mask & (FAN_MNT_ATTACH | FAN_MNT_DETACH) or mask & ~(FAN_MNT_ATTACH
                                                                  | FAN_MNT_DETACH):
            problems.append(f"fanotify: event mask {mask:#x}")
            continue
        if event_len != MOUNT_EVENT_SIZE:
            problems.append(f"fanotify: mount event of {event_len} bytes, not "
                            f"{MOUNT_EVENT_SIZE}")
            continue
        info_type = event[META_SIZE + _INFO_TYPE]
        info_len = struct.unpack_from("<H", event, META_SIZE + _INFO_LEN)[0]
        if info_type != _U.FAN_EVENT_INFO_TYPE_MNT or info_len != MNT_INFO_SIZE:
            problems.append(f"fanotify: mount event with info type {info_type} of "
                            f"{info_len} bytes")
            continue
        uid = struct.unpack_from("<Q", event, META_SIZE + _MNT_ID)[0]
        events.append(FanEvent(mask, uid))
    return events, problems


@dataclass
class MountSets:
    """The mounts (mountinfo ids) one reference says an operation attached,
    detached and moved."""

    attached: set[int] = field(default_factory=set)
    detached: set[int] = field(default_factory=set)
    moved: set[int] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (self.attached or self.detached or self.moved)


def fanotify_sets(events: Iterable[FanEvent], lookup: Callable[[int], int | None]
                  ) -> tuple[MountSets, list[str]]:
    """fanotify's events in mountinfo ids; an id listmount() never showed is a
    problem."""
    sets = MountSets()
    problems: list[str] = []
    for e in events:
        mnt = lookup(e.mnt_uid)
        if mnt is None:
            problems.append(f"fanotify: unknown 64-bit mount id {e.mnt_uid:#x}")
            continue
        both = FAN_MNT_ATTACH | FAN_MNT_DETACH
        if e.mask & both == both:
            sets.moved.add(mnt)
        elif e.mask & FAN_MNT_ATTACH:
            sets.attached.add(mnt)
        else:
            sets.detached.add(mnt)
    return sets, problems


def watch_mount_sets(events: Iterable[Event], watch_id: int) -> MountSets:
    """What one watch's records say was attached, detached and moved."""
    sets = MountSets()
    for e in events:
        if e.watch_id != watch_id:
            continue
        if e.kind == "NEW_MOUNT":
            sets.attached.add(e.aux)
        elif e.kind == "UNMOUNT":
            sets.detached.add(e.aux)
        elif e.kind in ("MOVE_FROM", "MOVE_TO"):
            sets.moved.add(e.aux)
    return sets


def below(snap: Snapshot, mnt: int, root: int) -> bool:
    """mnt lies strictly below root in snap."""
    return mnt != root and mnt in snap and is_within(snap, mnt, root)


def scoped(sets: MountSets, pre: Snapshot, post: Snapshot, root: int) -> MountSets:
    """The part of sets a watch on root can see: mounts below it before or
    after the operation (root itself is its watch's removal, not an event)."""
    def keep(ids: set[int]) -> set[int]:
        return {m for m in ids if below(pre, m, root) or below(post, m, root)}

    return MountSets(keep(sets.attached), keep(sets.detached), keep(sets.moved))


@dataclass(frozen=True)
class Agreement:
    problems: list[str]
    tucked: int  # watch_mount-only moves accepted as tucks


def compare_sets(fan: MountSets, wm: MountSets, pre: Snapshot, post: Snapshot
                 ) -> Agreement:
    """fanotify (already scoped) against watch_mount: attached and detached
    must be equal, every move fanotify reports must be one of watch_mount's,
    and a move only watch_mount reports must be a tuck: the mount's new
    parent (in post) was attached by the same operation."""
    def name(m: int) -> str:
        entry = post.get(m) or pre.get(m)
        return f"{m}@{entry.mount_point}" if entry else str(m)

    def names(ids: Iterable[int]) -> str:
        return ",".join(name(m) for m in sorted(ids)) or "-"

    problems: list[str] = []
    for what, a, b in (("attached", fan.attached, wm.attached),
                       ("detached", fan.detached, wm.detached)):
        if a != b:
            problems.append(f"fanotify and watch_mount disagree on the mounts {what}: "
                            f"only fanotify {names(a - b)}, only watch_mount {names(b - a)}")
    if fan.moved - wm.moved:
        problems.append(f"moved per fanotify, not per watch_mount: {names(fan.moved - wm.moved)}")
    attached = fan.attached | wm.attached
    tucked = 0
    for m in sorted(wm.moved - fan.moved):
        parent = post[m].parent if m in post else None
        if parent in attached:
            tucked += 1
        else:
            where = f"new parent {name(parent)}" if parent is not None else "gone after"
            problems.append(f"moved per watch_mount, not per fanotify, and not a tuck "
                            f"beneath a mount attached by this operation: {name(m)} "
                            f"({where})")
    return Agreement(problems, tucked)
