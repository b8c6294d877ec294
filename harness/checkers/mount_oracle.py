# SPDX-License-Identifier: GPL-2.0
"""Mount notification oracle: watch_mount() records against /proc/self/mountinfo.

Runs inside the test VM, as root:

    python3 -m harness.checkers.mount_oracle [--seed S] [--ops N]

In a private mount namespace it builds an arena under a tmpfs: a watched
sandbox mount W and an unwatched sibling O.  It then performs N seeded random
operations there (mount, bind, move, clone-and-attach, remount, mount_setattr,
propagation changes, umount, expiry, adding and removing more watches) and
after each one diffs /proc/self/mountinfo against the previous snapshot.  The
diff (mounts that appeared, disappeared, moved or changed attributes) is the
independent oracle: from it and the active watches the checker computes the
exact multiset of records each watch must get and compares it with what was
read from the queue (subtype, watch id, in-subtree flag, triggered/auxiliary/
watched mount, mnt_attr).  The 64-bit ids in the records are mapped to the
32-bit mountinfo ids with listmount()/statmount(); statmount() must accept
every reported id that still exists.

The same run is done through a notification pipe and, when /dev/watch_queue
exists, through an mmap()ed ring.  Output is KTAP.  Only the standard library
(ctypes) and harness.ring_model (the ring consumer protocol) are used.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import mmap
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from harness.ring_model import IOC_WATCH_QUEUE_NR_PAGES, consume_buffer

# --- ABI -----------------------------------------------------------------------

NR_OPEN_TREE = 428
NR_MOVE_MOUNT = 429
NR_MOUNT_SETATTR = 442
NR_STATMOUNT = 457
NR_LISTMOUNT = 458
NR_WATCH_MOUNT = 473

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
CLONE_NEWNS = 0x00020000
O_NOTIFICATION_PIPE = os.O_EXCL

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2
MNT_EXPIRE = 4

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

IOC_WATCH_QUEUE_SET_SIZE = 0x5760  # _IO('W', 0x60)
WATCH_TYPE_META = 0
WATCH_TYPE_MOUNT_NOTIFY = 2
WATCH_META_REMOVAL_NOTIFICATION = 0
WATCH_META_LOSS_NOTIFICATION = 1
WATCH_INFO_LENGTH = 0x7F
WATCH_INFO_NR_SLOTS = 0x3F
WATCH_INFO_ID = 0xFF00
NOTIFY_MOUNT_IN_SUBTREE = 0x10000
NOTIFY_MOUNT_IS_NOW_RO = 0x20000
NOTIFY_MOUNT_IS_SUBMOUNT = 0x40000
MOUNT_RECORD_SIZE = 40  # struct mount_notification
REMOVAL_RECORD_SIZE = 16  # struct watch_notification_removal

SUBTYPES = ("NEW_MOUNT", "UNMOUNT", "EXPIRY", "READONLY", "SETATTR", "MOVE_FROM", "MOVE_TO")
REMOVAL = "REMOVAL"

LSMT_ROOT = 0xFFFFFFFFFFFFFFFF
MNT_ID_REQ_SIZE_VER0 = 24
STATMOUNT_MNT_BASIC = 0x2
STATMOUNT_MNT_POINT = 0x10
STATMOUNT_BUF = 4096
STATMOUNT_STR = 512  # offsetof(struct statmount, str)

DEVICE = "/dev/watch_queue"
PIPE_NOTES = 512
RING_PAGES = 16
ARENA_CAP = 28  # mounts in the arena before the generator only shrinks it
MAX_WATCHES = 4
DEFAULT_OPS = 2000
MAX_DETAILED = 5  # mismatches shown in full per subtest

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def sys_call(nr: int, *args: object) -> int:
    """syscall(2); raises OSError.  Integers are passed as longs, the rest
    (bytes, None, ctypes buffers and arrays) as pointers."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(int(_libc.syscall(ctypes.c_long(nr), *conv)), f"syscall {nr}")


def _path(p: str | None) -> bytes | None:
    return None if p is None else os.fsencode(p)


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype), ctypes.c_ulong(flags),
                       None), f"mount {target}")


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_path(target), ctypes.c_int(flags)), f"umount2 {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def notification_pipe() -> tuple[int, int]:
    fds = (ctypes.c_int * 2)()
    _check(_libc.pipe2(fds, ctypes.c_int(O_NOTIFICATION_PIPE | os.O_NONBLOCK | os.O_CLOEXEC)),
           "pipe2(O_NOTIFICATION_PIPE)")
    return fds[0], fds[1]


def watch_mount(path: str, queue_fd: int, watch_id: int) -> None:
    sys_call(NR_WATCH_MOUNT, AT_FDCWD, _path(path), 0, queue_fd, watch_id)


def mount_setattr(path: str, flags: int, attr_set: int, attr_clr: int,
                  propagation: int = 0) -> None:
    attr = ctypes.create_string_buffer(struct.pack("<QQQQ", attr_set, attr_clr, propagation, 0))
    sys_call(NR_MOUNT_SETATTR, AT_FDCWD, _path(path), flags, attr, 32)


def open_tree(path: str, flags: int) -> int:
    return sys_call(NR_OPEN_TREE, AT_FDCWD, _path(path), flags)


def move_mount_fd(fd: int, to_path: str) -> None:
    sys_call(NR_MOVE_MOUNT, fd, b"", AT_FDCWD, _path(to_path), MOVE_MOUNT_F_EMPTY_PATH)


@dataclass(frozen=True)
class StatMount:
    mnt_id: int  # 64-bit
    parent_id: int
    id_old: int  # the mountinfo id
    attr: int
    mount_point: str


def statmount(mnt_id: int) -> StatMount:
    req = ctypes.create_string_buffer(struct.pack("<IIQQ", MNT_ID_REQ_SIZE_VER0, 0, mnt_id,
                                                  STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT))
    buf = ctypes.create_string_buffer(STATMOUNT_BUF)
    sys_call(NR_STATMOUNT, req, buf, STATMOUNT_BUF, 0)
    raw = buf.raw
    uid, parent, old = struct.unpack_from("<QQI", raw, 40)
    attr = struct.unpack_from("<Q", raw, 64)[0]
    point_off = struct.unpack_from("<I", raw, 108)[0]
    end = raw.index(b"\0", STATMOUNT_STR + point_off)
    point = os.fsdecode(raw[STATMOUNT_STR + point_off:end])
    return StatMount(uid, parent, old, attr, point)


def listmount() -> list[int]:
    """The 64-bit ids of every mount in this namespace, ascending."""
    ids: list[int] = []
    last = 0
    chunk = 256
    arr = (ctypes.c_uint64 * chunk)()
    while True:
        req = ctypes.create_string_buffer(struct.pack("<IIQQ", MNT_ID_REQ_SIZE_VER0, 0,
                                                      LSMT_ROOT, last))
        n = sys_call(NR_LISTMOUNT, req, arr, chunk, 0)
        ids.extend(arr[i] for i in range(n))
        if n < chunk:
            return ids
        last = ids[-1]


def mount_id_of(path: str) -> int:
    """The mountinfo id of the mount that path resolves to (fdinfo mnt_id)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    finally:
        os.close(fd)
    raise OSError(errno.EINVAL, f"no mnt_id in fdinfo of {path}")


# --- mountinfo: the oracle ------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    mnt_id: int
    parent: int
    root: str
    mount_point: str
    options: frozenset[str]
    propagation: str  # the optional fields (shared:N, master:N, ...)
    fstype: str
    source: str
    attr: int  # MOUNT_ATTR_* from options


Snapshot = Mapping[int, MountEntry]


def unescape(field: str) -> str:
    """Undo the octal escapes (\\040 etc.) of mountinfo's path fields."""
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 4 <= len(raw) and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def parse_line(line: str) -> MountEntry | None:
    fields = line.split(" ")
    if len(fields) < 10 or "-" not in fields[6:]:
        return None
    sep = fields.index("-", 6)
    options = frozenset(fields[5].split(","))
    return MountEntry(int(fields[0]), int(fields[1]), unescape(fields[3]), unescape(fields[4]),
                      options, " ".join(fields[6:sep]), fields[sep + 1],
                      unescape(fields[sep + 2]), attr_from_options(options))


class MountinfoParser:
    """parse_mountinfo() with a cache: a mount whose line did not change is the
    same MountEntry object in both snapshots, which the diff exploits."""

    def __init__(self, under: str | None = None) -> None:
        self.under = under  # keep only mounts at or below this path
        self.cache: dict[str, MountEntry | None] = {}

    def keep(self, line: str) -> bool:
        if self.under is None:
            return True
        point = line.split(" ", 5)[4]
        return point == self.under or point.startswith(self.under + "/")

    def parse(self, text: str) -> dict[int, MountEntry]:
        if len(self.cache) > 20000:
            self.cache.clear()
        mounts: dict[int, MountEntry] = {}
        cache = self.cache
        for line in text.splitlines():
            if line in cache:
                entry = cache[line]
            else:
                entry = parse_line(line) if self.keep(line) else None
                cache[line] = entry
            if entry is not None:
                mounts[entry.mnt_id] = entry
        return mounts

    def read(self) -> dict[int, MountEntry]:
        with open("/proc/self/mountinfo") as f:
            return self.parse(f.read())


def parse_mountinfo(text: str) -> dict[int, MountEntry]:
    return MountinfoParser().parse(text)


_OPTION_ATTRS = {
    "ro": MOUNT_ATTR_RDONLY, "nosuid": MOUNT_ATTR_NOSUID, "nodev": MOUNT_ATTR_NODEV,
    "noexec": MOUNT_ATTR_NOEXEC, "noatime": MOUNT_ATTR_NOATIME,
    "nodiratime": MOUNT_ATTR_NODIRATIME, "nosymfollow": MOUNT_ATTR_NOSYMFOLLOW,
    "idmapped": MOUNT_ATTR_IDMAP,
}


def attr_from_options(options: Iterable[str]) -> int:
    """MOUNT_ATTR_* as mnt_to_attr_flags() computes them, from mountinfo field 6."""
    opts = set(options)
    attr = 0
    for opt in opts:
        attr |= _OPTION_ATTRS.get(opt, 0)
    if not opts & {"noatime", "relatime"}:
        attr |= MOUNT_ATTR_STRICTATIME
    return attr


def is_within(snap: Snapshot, mnt_id: int, ancestor: int) -> bool:
    """mnt_id is ancestor or lies below it in snap's parent chains."""
    seen = 0
    while mnt_id in snap and seen <= len(snap):
        if mnt_id == ancestor:
            return True
        parent = snap[mnt_id].parent
        if parent == mnt_id:
            return False
        mnt_id = parent
        seen += 1
    return False


def relative_point(snap: Snapshot, entry: MountEntry) -> str:
    """Where entry is mounted inside its parent (mount point minus the parent's)."""
    parent = snap.get(entry.parent)
    if parent is None or parent.mount_point == "/":
        return entry.mount_point
    return entry.mount_point[len(parent.mount_point):]


@dataclass(frozen=True)
class MountDiff:
    appeared: tuple[int, ...]
    disappeared: tuple[int, ...]
    moved: tuple[int, ...]  # parent or place in the parent changed
    ro_changed: tuple[int, ...]
    other_changed: tuple[int, ...]  # attributes other than ro changed

    @property
    def empty(self) -> bool:
        return not (self.appeared or self.disappeared or self.moved or self.ro_changed
                    or self.other_changed)

    def describe(self, pre: Snapshot, post: Snapshot) -> str:
        parts = []
        for name, ids, snap in (("new", self.appeared, post), ("gone", self.disappeared, pre),
                                ("moved", self.moved, post), ("ro", self.ro_changed, post),
                                ("attr", self.other_changed, post)):
            if ids:
                parts.append(f"{name}=" + ",".join(f"{i}@{snap[i].mount_point}" for i in ids))
        return " ".join(parts) or "no change"


def diff_mounts(pre: Snapshot, post: Snapshot) -> MountDiff:
    appeared = tuple(sorted(post.keys() - pre.keys()))
    disappeared = tuple(sorted(pre.keys() - post.keys()))
    moved: list[int] = []
    ro: list[int] = []
    other: list[int] = []
    for m in sorted(pre.keys() & post.keys()):
        a, b = pre[m], post[m]
        if a is b:  # the same mountinfo line: neither moved nor changed
            continue
        if a.parent != b.parent or relative_point(pre, a) != relative_point(post, b):
            moved.append(m)
        changed = a.attr ^ b.attr
        if changed & MOUNT_ATTR_RDONLY:
            ro.append(m)
        if changed & ~MOUNT_ATTR_RDONLY:
            other.append(m)
    return MountDiff(appeared, disappeared, tuple(moved), tuple(ro), tuple(other))


# --- records --------------------------------------------------------------------


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
class Watch:
    watch_id: int
    mnt: int  # mountinfo id
    uid: int  # 64-bit id


def expected_events(pre: Snapshot, post: Snapshot, diff: MountDiff, watches: Sequence[Watch],
                    expired: Iterable[int] = (), unwatched: Iterable[Watch] = ()) -> list[Event]:
    """Every record one operation must produce, from the mountinfo diff.

    Topology events are posted at the parent (trigger) to the watchers of the
    parent and its ancestors: pre-operation chains for UNMOUNT, EXPIRY and
    MOVE_FROM, post-operation chains for NEW_MOUNT and MOVE_TO; the watches
    on a moved mount itself get both MOVE records.  Attribute events trigger
    on the mount itself.  A watch whose mount went away, or
    that was removed explicitly, gets a removal record last."""
    out: list[Event] = []

    def deliver(kind: str, trigger: int, aux: int, attr: int, snap: Snapshot) -> None:
        for w in watches:
            if is_within(snap, trigger, w.mnt):
                out.append(Event(kind, w.watch_id, trigger != w.mnt, trigger, aux, w.mnt, attr))

    expired = set(expired)
    for m in diff.disappeared:
        if m in expired:
            deliver("EXPIRY", pre[m].parent, m, pre[m].attr, pre)
        deliver("UNMOUNT", pre[m].parent, m, pre[m].attr, pre)
    for m in diff.moved:
        deliver("MOVE_FROM", pre[m].parent, m, post[m].attr, pre)
        deliver("MOVE_TO", post[m].parent, m, post[m].attr, post)
        # The moved mount's own watches hear of both ends.
        for w in watches:
            if w.mnt == m:
                out.append(Event("MOVE_FROM", w.watch_id, False, pre[m].parent, m, m,
                                 post[m].attr))
                out.append(Event("MOVE_TO", w.watch_id, False, post[m].parent, m, m,
                                 post[m].attr))
    for m in diff.appeared:
        deliver("NEW_MOUNT", post[m].parent, m, post[m].attr, post)
    for m in diff.ro_changed:
        deliver("READONLY", m, m, post[m].attr, post)
    for m in diff.other_changed:
        deliver("SETATTR", m, m, post[m].attr, post)
    gone = set(diff.disappeared)
    removed = {w.watch_id for w in unwatched}
    for w in watches:
        if w.mnt in gone or w.watch_id in removed:
            out.append(Event(REMOVAL, w.watch_id, False, 0, 0, w.mnt, 0))
    return out


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
                      (info & WATCH_INFO_NR_SLOTS) * 8, data), problem)


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
    if rec.type != WATCH_TYPE_MOUNT_NOTIFY or rec.subtype >= len(SUBTYPES):
        what = "LOSS" if (rec.type, rec.subtype) == (WATCH_TYPE_META,
                                                     WATCH_META_LOSS_NOTIFICATION) else ""
        problems.append(f"unexpected record type {rec.type} subtype {rec.subtype} {what}")
        return None, problems
    if rec.length < MOUNT_RECORD_SIZE:
        problems.append(f"mount record of {rec.length} bytes")
        return None, problems
    trig, aux, watched, attr = struct.unpack_from("<QQQQ", rec.data, 8)
    flags = rec.info & 0xFFFF0000
    if flags & ~(NOTIFY_MOUNT_IN_SUBTREE | NOTIFY_MOUNT_IS_NOW_RO | NOTIFY_MOUNT_IS_SUBMOUNT):
        problems.append(f"unknown info flags {flags:#x}")
    if bool(flags & NOTIFY_MOUNT_IS_NOW_RO) != bool(attr & MOUNT_ATTR_RDONLY):
        problems.append(f"IS_NOW_RO flag disagrees with mnt_attr {attr:#x}")
    if flags & NOTIFY_MOUNT_IS_SUBMOUNT:
        problems.append("IS_SUBMOUNT on a tmpfs mount")
    # Clear when the event happened at the watched mount or to it (a move).
    if bool(flags & NOTIFY_MOUNT_IN_SUBTREE) != (watched not in (trig, aux)):
        problems.append("IN_SUBTREE flag disagrees with triggered_on/auxiliary_mount "
                        "!= watched_mount")
    if rec.length != MOUNT_RECORD_SIZE:
        problems.append(f"mount record of {rec.length} bytes, not {MOUNT_RECORD_SIZE}")
    event = Event(SUBTYPES[rec.subtype], watch_id, bool(flags & NOTIFY_MOUNT_IN_SUBTREE),
                  mapped(trig), mapped(aux), mapped(watched), attr)
    return event, problems


def record_uids(rec: RawRecord) -> list[int]:
    if rec.type == WATCH_TYPE_META and rec.length >= REMOVAL_RECORD_SIZE:
        return [struct.unpack_from("<Q", rec.data, 8)[0]]
    if rec.type == WATCH_TYPE_MOUNT_NOTIFY and rec.length >= MOUNT_RECORD_SIZE:
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


# --- queues ---------------------------------------------------------------------


class Queue(Protocol):
    name: str
    fd: int
    capacity: int  # records it can hold

    def drain(self) -> tuple[list[RawRecord], list[str]]: ...

    def close(self) -> None: ...


class PipeQueue:
    name = "pipe"
    capacity = PIPE_NOTES

    def __init__(self) -> None:
        self.fd, self.wfd = notification_pipe()
        fcntl.ioctl(self.fd, IOC_WATCH_QUEUE_SET_SIZE, PIPE_NOTES)

    def drain(self) -> tuple[list[RawRecord], list[str]]:
        records: list[RawRecord] = []
        problems: list[str] = []
        while True:
            try:
                buf = os.read(self.fd, 4096)
            except BlockingIOError:
                return records, problems
            if not buf:
                return records, [*problems, "pipe EOF"]
            got, problem = split_pipe_records(buf)
            records += got
            if problem:
                problems.append(problem)

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.wfd)


class RingQueue:
    name = "ring"
    capacity = RING_PAGES * mmap.PAGESIZE // 8 // 6

    def __init__(self, path: str = DEVICE) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(self.fd, IOC_WATCH_QUEUE_NR_PAGES, RING_PAGES)
            self.map = mmap.mmap(self.fd, RING_PAGES * mmap.PAGESIZE, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.close(self.fd)
            raise

    def drain(self) -> tuple[list[RawRecord], list[str]]:
        result = consume_buffer(self.map)
        records: list[RawRecord] = []
        problems = [result.error] if result.error else []
        for r in result.records:
            raw, problem = ring_raw_record(r.data)
            records.append(raw)
            if problem:
                problems.append(problem)
        return records, problems

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


# --- operations -----------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    kind: str
    path: str
    dest: str = ""
    flags: int = 0
    attr_set: int = 0
    attr_clr: int = 0

    def __str__(self) -> str:
        text = f"{self.kind} {self.path}"
        if self.dest:
            text += f" -> {self.dest}"
        if self.flags:
            text += f" flags={self.flags:#x}"
        if self.attr_set or self.attr_clr:
            text += f" set={self.attr_set:#x} clr={self.attr_clr:#x}"
        return text


@dataclass(frozen=True)
class Arena:
    base: str
    watched: str  # W: always watched (watch id 1)
    outside: str  # O: never watched unless a random "watch" op picks it
    after: str  # an empty directory beside them

    @property
    def roots(self) -> tuple[str, str]:
        return self.watched, self.outside


def subtree_members(snap: Snapshot, roots: Iterable[int]) -> set[int]:
    """Every mount at or below one of roots."""
    inside = set(roots) & snap.keys()
    outside: set[int] = set()
    for m in snap:
        chain: list[int] = []
        cur = m
        while cur not in inside and cur not in outside:
            chain.append(cur)
            entry = snap.get(cur)
            if entry is None or entry.parent == cur or len(chain) > len(snap):
                outside.update(chain)
                break
            cur = entry.parent
        else:
            (inside if cur in inside else outside).update(chain)
    return inside


def visible_mounts(snap: Snapshot, members: Iterable[int]) -> set[int]:
    """The members whose mount point path resolves to them.

    A mount's place is reachable when its parent's is and no sibling is
    mounted on a directory above it (a mount stacked on the parent's root
    counts as such a sibling); it is visible when, in addition, nothing is
    stacked on its own root."""
    children: dict[int, list[MountEntry]] = collections.defaultdict(list)
    for e in snap.values():
        if e.parent != e.mnt_id:
            children[e.parent].append(e)
    memo: dict[int, bool] = {}

    def reachable(m: int, depth: int = 0) -> bool:
        if m in memo:
            return memo[m]
        e = snap[m]
        if e.parent not in snap or e.parent == m or depth > len(snap):
            ok = True
        else:
            ok = reachable(e.parent, depth + 1) and not any(
                c is not e and e.mount_point.startswith(c.mount_point + "/")
                for c in children[e.parent])
        memo[m] = ok
        return ok

    return {m for m in members if reachable(m)
            and not any(c.mount_point == snap[m].mount_point for c in children[m])}


@dataclass(frozen=True)
class ArenaView:
    """What the operation generator needs to know of the arena."""

    points: tuple[str, ...]  # reachable mount points, the roots' paths included
    movable: tuple[str, ...]  # reachable mount points that may be unmounted/moved
    size: int  # mounts in the arena, reachable or not
    watched: tuple[str, ...] = ()  # mount points of the removable watches


def arena_view(snap: Snapshot, arena: Arena, root_ids: Sequence[int],
               watched: Iterable[str] = ()) -> ArenaView:
    """The roots' own paths are movable only while something covers the root
    (propagation can stack a mount on it): unmounting the path then removes
    the cover, never the root."""
    members = subtree_members(snap, root_ids)
    visible = visible_mounts(snap, members)
    points = {snap[m].mount_point for m in visible}
    movable = points - set(arena.roots)
    for path, r in zip(arena.roots, root_ids, strict=True):
        if r in snap and r not in visible:
            movable.add(path)
    return ArenaView(tuple(sorted(points | set(arena.roots))), tuple(sorted(movable)),
                     len(members), tuple(sorted(watched)))


OP_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("mount", 14), ("bind", 8), ("move", 8), ("clone", 5), ("clone_discard", 2),
    ("remount_bind", 6), ("remount", 4), ("setattr", 9), ("umount", 8), ("umount_lazy", 6),
    ("expire", 3), ("propagation", 2), ("watch", 3), ("unwatch", 2),
)
_MS_ATTRS = (MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOATIME)
_ATTRS = (MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC)


def _flags(rng: random.Random, bits: Sequence[int], p: float) -> int:
    out = 0
    for b in bits:
        if rng.random() < p:
            out |= b
    return out


def _always(_: str) -> bool:
    return True


def gen_op(rng: random.Random, view: ArenaView, arena: Arena,
           exists: Callable[[str], bool] = _always) -> Op:
    """One random operation on the arena.

    Directories to mount on are P/d0..d2 below a mount point P; exists() is
    asked about a few random ones so that most operations have a target.  An
    arena grown past ARENA_CAP mounts is cut back by lazy unmounts near its
    roots."""
    points, movable, watched_points = view.points, view.movable, view.watched
    all_dirs = [f"{p}/d{k}" for p in points for k in range(3)]
    picks = [rng.choice(all_dirs) for _ in range(4)]
    dirs = [next((d for d in picks if exists(d)), picks[0])]
    if view.size > ARENA_CAP and movable:
        near = [p for p in movable if p in arena.roots or any(
            p.startswith(f"{r}/d") and p.count("/") == r.count("/") + 1 for r in arena.roots)]
        return Op("umount_lazy", rng.choice(near or movable), flags=MNT_DETACH)
    kinds, weights = zip(*OP_WEIGHTS, strict=True)
    kind = rng.choices(kinds, weights)[0]
    if not movable and kind in ("move", "umount", "umount_lazy", "expire"):
        kind = "mount"
    if kind == "unwatch" and not watched_points:
        kind = "watch"
    if kind == "watch" and len(watched_points) + 1 >= MAX_WATCHES:
        kind = "unwatch"
    src_any = rng.choice([*points, *dirs])
    if kind == "mount":
        return Op(kind, rng.choice(dirs),
                  flags=_flags(rng, _MS_ATTRS, 0.25) | (MS_RDONLY if rng.random() < 0.15 else 0))
    if kind == "bind":
        return Op(kind, src_any, rng.choice(dirs), MS_BIND | (MS_REC if rng.random() < 0.5 else 0))
    if kind == "move":
        return Op(kind, rng.choice(movable), rng.choice(dirs),
                  flags=MS_MOVE if rng.random() < 0.5 else 0)
    if kind in ("clone", "clone_discard"):
        return Op(kind, src_any, rng.choice(dirs) if kind == "clone" else "",
                  OPEN_TREE_CLONE | (AT_RECURSIVE if rng.random() < 0.5 else 0))
    if kind == "remount_bind":
        return Op(kind, rng.choice(points),
                  flags=MS_REMOUNT | MS_BIND | _flags(rng, (MS_RDONLY, *_MS_ATTRS), 0.3))
    if kind == "remount":
        return Op(kind, rng.choice(points),
                  flags=MS_REMOUNT | _flags(rng, (MS_RDONLY, *_MS_ATTRS), 0.3))
    if kind == "setattr":
        attr_set = _flags(rng, _ATTRS, 0.3)
        attr_clr = _flags(rng, _ATTRS, 0.3) & ~attr_set
        if rng.random() < 0.2:
            attr_clr |= MOUNT_ATTR__ATIME
            attr_set |= rng.choice((MOUNT_ATTR_NOATIME, MOUNT_ATTR_STRICTATIME, 0))
        return Op(kind, rng.choice(points), flags=AT_RECURSIVE if rng.random() < 0.3 else 0,
                  attr_set=attr_set, attr_clr=attr_clr)
    if kind in ("umount", "umount_lazy", "expire"):
        flags = {"umount": 0, "umount_lazy": MNT_DETACH, "expire": MNT_EXPIRE}[kind]
        return Op(kind, rng.choice(movable), flags=flags)
    if kind == "propagation":
        prop = rng.choice((MS_SHARED, MS_PRIVATE, MS_PRIVATE, MS_SLAVE, MS_PRIVATE,
                           MS_UNBINDABLE))
        return Op(kind, rng.choice(points), flags=prop | (MS_REC if rng.random() < 0.3 else 0))
    if kind == "watch":
        return Op(kind, rng.choice(points))
    return Op("unwatch", rng.choice(sorted(watched_points)))


def make_dirs(path: str) -> None:
    for k in range(3):
        with contextlib.suppress(OSError):
            os.mkdir(f"{path}/d{k}")


@dataclass
class Outcome:
    error: int = 0  # errno of the operation, 0 on success
    resolved: int = -1  # mountinfo id the path resolved to (watch, unwatch, expire)


def _do_watch(op: Op, queue_fd: int, watch_id: int) -> None:
    watch_mount(op.path, queue_fd, watch_id if op.kind == "watch" else -1)


def _do_mount(op: Op, queue_fd: int, watch_id: int) -> None:
    mount("mo_tmp", op.path, "tmpfs", op.flags)
    if not op.flags & MS_RDONLY:
        make_dirs(op.path)


def _do_bind(op: Op, queue_fd: int, watch_id: int) -> None:
    mount(op.path, op.dest, None, op.flags)


def _do_tree(op: Op, queue_fd: int, watch_id: int) -> None:
    """move (mount(MS_MOVE) or open_tree + move_mount), clone, clone_discard."""
    if op.kind == "move" and op.flags:
        mount(op.path, op.dest, None, MS_MOVE)
        return
    fd = open_tree(op.path, OPEN_TREE_CLOEXEC | (op.flags if op.kind != "move" else 0))
    try:
        if op.dest:
            move_mount_fd(fd, op.dest)
    finally:
        os.close(fd)


def _do_remount(op: Op, queue_fd: int, watch_id: int) -> None:
    mount(None, op.path, None, op.flags)


def _do_setattr(op: Op, queue_fd: int, watch_id: int) -> None:
    mount_setattr(op.path, op.flags, op.attr_set, op.attr_clr)


def _do_expire(op: Op, queue_fd: int, watch_id: int) -> None:
    """The first MNT_EXPIRE marks the mount (EAGAIN), the second expires it."""
    try:
        umount2(op.path, MNT_EXPIRE)
    except OSError as e:
        if e.errno != errno.EAGAIN:
            raise
    umount2(op.path, MNT_EXPIRE)


def _do_umount(op: Op, queue_fd: int, watch_id: int) -> None:
    umount2(op.path, op.flags)


ACTIONS: dict[str, Callable[[Op, int, int], None]] = {
    "watch": _do_watch, "unwatch": _do_watch, "mount": _do_mount, "bind": _do_bind,
    "move": _do_tree, "clone": _do_tree, "clone_discard": _do_tree,
    "remount_bind": _do_remount, "remount": _do_remount, "propagation": _do_remount,
    "setattr": _do_setattr, "expire": _do_expire, "umount": _do_umount,
    "umount_lazy": _do_umount,
}
RESOLVE_FIRST = ("watch", "unwatch", "expire")  # ops whose target mount matters


def perform(op: Op, queue_fd: int, watch_id: int) -> Outcome:
    """Run one operation; errors are results, not exceptions."""
    action = ACTIONS[op.kind]
    out = Outcome()
    try:
        if op.kind in RESOLVE_FIRST:
            out.resolved = mount_id_of(op.path)
        action(op, queue_fd, watch_id)
    except OSError as e:
        out.error = e.errno or errno.EIO
    return out


# --- the checker ----------------------------------------------------------------


class IdMap:
    """64-bit mount ids -> mountinfo ids, learnt with listmount()/statmount()."""

    def __init__(self, parser: MountinfoParser) -> None:
        self.parser = parser
        self.old: dict[int, int] = {}
        self.point: dict[int, str] = {}
        self.live: set[int] = set()
        self.fresh: set[int] = set()  # learnt (and checked) by the last refresh()

    def refresh(self, snap: Snapshot) -> list[str]:
        """Learn the ids of new mounts; returns the ids statmount() checked."""
        problems: list[str] = []
        self.live = set(listmount())
        self.fresh = set()
        for uid in sorted(self.live - self.old.keys()):
            try:
                sm = statmount(uid)
            except OSError as e:
                problems.append(f"statmount({uid:#x}) listed by listmount: {e}")
                continue
            self.old[uid] = sm.id_old
            self.point[uid] = sm.mount_point
            self.fresh.add(uid)
            entry = snap.get(sm.id_old)
            if not self.parser.keep(f"0 0 0:0 / {sm.mount_point} "):
                continue
            if entry is None or entry.mount_point != sm.mount_point:
                problems.append(f"statmount({uid:#x}) = {sm.id_old}@{sm.mount_point}, "
                                f"mountinfo has {entry.mount_point if entry else 'nothing'}")
        return problems

    def lookup(self, uid: int) -> int | None:
        return self.old.get(uid)

    def uid_of(self, mnt: int) -> int | None:
        found = [u for u in self.live if self.old.get(u) == mnt]
        return found[0] if len(found) == 1 else None

    def check_reported(self, uids: Iterable[int], post: Snapshot) -> list[str]:
        """statmount() accepts every reported id that still exists, with the
        id and mount point mountinfo shows, and rejects the others."""
        problems: list[str] = []
        for uid in sorted(set(uids) - self.fresh):
            try:
                sm = statmount(uid)
            except OSError as e:
                if uid in self.live:
                    problems.append(f"statmount({uid:#x}) of a live mount: {e}")
                elif e.errno != errno.ENOENT:
                    problems.append(f"statmount({uid:#x}) of a gone mount: {e}, not ENOENT")
                continue
            entry = post.get(sm.id_old)
            if uid not in self.live:
                problems.append(f"statmount({uid:#x}) succeeds but listmount lacks it")
            elif sm.id_old != self.old.get(uid) or entry is None \
                    or entry.mount_point != sm.mount_point:
                problems.append(f"statmount({uid:#x}) = {sm.id_old}@{sm.mount_point} "
                                f"disagrees with mountinfo")
        return problems


@dataclass
class Mismatch:
    index: int
    op: Op
    error: int
    diff: str
    missing: list[Event]
    extra: list[Event]
    problems: list[str]


@dataclass
class Tally:
    ops: int = 0
    failed_ops: int = 0  # operations the kernel refused (no events expected)
    records: int = 0
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    by_op: collections.Counter[str] = field(default_factory=collections.Counter)
    mismatches: list[Mismatch] = field(default_factory=list)
    bad_by_op: collections.Counter[str] = field(default_factory=collections.Counter)


class Session:
    """One queue watching the arena; every step is checked against mountinfo."""

    def __init__(self, queue: Queue, arena: Arena, seed: int) -> None:
        self.queue = queue
        self.arena = arena
        self.seed = seed
        self.tally = Tally()
        self.parser = MountinfoParser(arena.base)
        self.ids = IdMap(self.parser)
        self.snap = self.parser.read()
        self.ids.refresh(self.snap)
        self.root_ids = [mount_id_of(p) for p in arena.roots]
        self.watches: list[Watch] = []
        self.changed = True  # mountinfo changed in the last step
        self.add_watch(arena.watched, 1)

    def add_watch(self, path: str, watch_id: int) -> None:
        mnt = mount_id_of(path)
        watch_mount(path, self.queue.fd, watch_id)
        uid = self.ids.uid_of(mnt)
        if uid is None:
            raise OSError(errno.ENOENT, f"no 64-bit id for mount {mnt}")
        self.watches.append(Watch(watch_id, mnt, uid))

    def free_watch_id(self) -> int:
        used = {w.watch_id for w in self.watches}
        return min(i for i in range(2, 256) if i not in used)

    def step(self, index: int, op: Op) -> None:
        watch_id = self.free_watch_id() if op.kind == "watch" else 0
        outcome = perform(op, self.queue.fd, watch_id)
        pre, post = self.snap, self.parser.read()
        diff = diff_mounts(pre, post)
        if diff.appeared or diff.disappeared or not self.ids.live:
            problems = self.ids.refresh(post)
        else:
            problems = []
            self.ids.fresh = set()
        raws, queue_problems = self.queue.drain()
        problems += queue_problems
        # Only the mount umount2(MNT_EXPIRE) named expires; what propagation
        # takes with it is plainly unmounted.
        expired = [outcome.resolved] if op.kind == "expire" and not outcome.error else []
        unwatched = [w for w in self.watches if op.kind == "unwatch" and not outcome.error
                     and w.mnt == outcome.resolved]
        expected = expected_events(pre, post, diff, self.watches, expired, unwatched)
        received: list[Event] = []
        uids: list[int] = []
        for raw in raws:
            event, bad = decode_record(raw, self.ids.lookup)
            problems += bad
            if event is not None:
                received.append(event)
            uids += record_uids(raw)
        problems += self.ids.check_reported(uids, post)
        problems += order_problems(received)
        missing, extra = compare_events(expected, received)
        if outcome.error and not diff.empty:
            problems.append(f"operation failed ({errno.errorcode.get(outcome.error)}) "
                            f"but mountinfo changed")
        if len(expected) > self.queue.capacity:
            problems.append(f"{len(expected)} records expected: more than the queue holds")

        t = self.tally
        t.ops += 1
        t.failed_ops += bool(outcome.error)
        t.records += len(received)
        t.by_kind.update(e.kind for e in received)
        err = errno.errorcode.get(outcome.error, str(outcome.error))
        t.by_op[op.kind if not outcome.error else f"{op.kind}!{err}"] += 1
        if missing or extra or problems:
            t.bad_by_op[op.kind] += 1
            t.mismatches.append(Mismatch(index, op, outcome.error, diff.describe(pre, post),
                                         missing, extra, problems))

        gone = set(diff.disappeared)
        self.watches = [w for w in self.watches if w.mnt not in gone and w not in unwatched]
        if op.kind == "watch" and not outcome.error:
            uid = self.ids.uid_of(outcome.resolved)
            self.watches.append(Watch(watch_id, outcome.resolved, uid or 0))
        self.snap = post
        self.changed = not diff.empty

    def random_ops(self, count: int, rng: random.Random) -> None:
        view: ArenaView | None = None
        for i in range(count):
            watched = tuple(sorted(self.snap[w.mnt].mount_point for w in self.watches
                                   if w.watch_id != 1 and w.mnt in self.snap))
            if view is None or self.changed or view.watched != watched:
                view = arena_view(self.snap, self.arena, self.root_ids, watched)
            self.step(i, gen_op(rng, view, self.arena, os.path.isdir))

    def report(self, emit: Callable[[str], None], what: str, detailed: int = MAX_DETAILED
               ) -> bool:
        t = self.tally
        emit(f"{self.queue.name} {what}: seed={self.seed} ops={t.ops} refused={t.failed_ops} "
             f"records={t.records} mismatched_ops={len(t.mismatches)}")
        if t.by_kind:
            emit("  records: " + " ".join(f"{k}={n}" for k, n in sorted(t.by_kind.items())))
        if t.by_op:
            emit("  ops (!errno = refused): " + " ".join(f"{k}={n}" for k, n in
                                                    sorted(t.by_op.items())))
        if t.bad_by_op:
            emit("  mismatched by op: " + " ".join(f"{k}={n}" for k, n in
                                                   sorted(t.bad_by_op.items())))
        for m in t.mismatches[:detailed]:
            err = errno.errorcode.get(m.error, str(m.error)) if m.error else "ok"
            emit(f"  MISMATCH seed={self.seed} op#{m.index} [{m.op}] -> {err}; mountinfo: {m.diff}")
            for e in m.missing:
                emit(f"    expected, not received: {e}")
            for e in m.extra:
                emit(f"    received, not expected: {e}")
            for p in m.problems:
                emit(f"    problem: {p}")
        return not t.mismatches


# --- setup and KTAP ---------------------------------------------------------------


def setup_namespace(base: str) -> None:
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("mo_base", base, "tmpfs", 0)


def new_arena(base: str, generation: int) -> Arena:
    arena = Arena(base, f"{base}/w{generation}", f"{base}/o{generation}",
                  f"{base}/a{generation}")
    for path in arena.roots:
        os.mkdir(path)
        mount("mo_root", path, "tmpfs", 0)
        make_dirs(path)
    os.mkdir(arena.after)
    return arena


@dataclass
class Subtest:
    name: str
    ok: bool = True
    skip: str = ""
    diags: list[str] = field(default_factory=list)


def probe_watch_mount() -> str | None:
    """None if watch_mount() exists, else the reason to skip."""
    try:
        watch_mount("/", -1, 1)
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return "watch_mount() is not implemented (ENOSYS)"
        return None
    return None


def run_transport(make_queue: Callable[[], Queue], arena: Arena, seed: int, ops: int,
                  random_test: Subtest, removal_test: Subtest,
                  detailed: int = MAX_DETAILED) -> int:
    queue = make_queue()
    try:
        session = Session(queue, arena, seed)
        session.random_ops(ops, random.Random(seed))
        random_test.ok = session.report(random_test.diags.append, "random ops", detailed)
        done = session.tally.ops
        # The watched mount goes away: UNMOUNT for everything below it, then
        # the removal of every watch there; then the rest of the arena.
        session.tally = Tally()
        index = 0
        for path in arena.roots:  # whatever propagation stacked on top goes first
            while session.root_ids[arena.roots.index(path)] in session.snap and index < 50:
                session.step(index, Op("umount_lazy", path, flags=MNT_DETACH))
                index += 1
        session.step(index, Op("mount", arena.after))
        removal_test.ok = session.report(removal_test.diags.append, "unmount of the watched")
        if any(wt.watch_id == 1 for wt in session.watches):
            removal_test.ok = False
            removal_test.diags.append("watch 1 survived the unmount of its mount")
        return done + session.tally.ops
    finally:
        queue.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="watch_mount() records against mountinfo")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ops", type=int, default=DEFAULT_OPS,
                        help="random operations in all, shared by the transports")
    parser.add_argument("--base", default="/mnt", help="directory to build the arena on")
    parser.add_argument("--detailed", type=int, default=MAX_DETAILED,
                        help="mismatching operations to show in full")
    args = parser.parse_args(argv)

    tests = [Subtest("pipe_random_ops"), Subtest("pipe_unmount_watched"),
             Subtest("ring_random_ops"), Subtest("ring_unmount_watched")]
    started = time.monotonic()
    total_ops = 0
    reason = probe_watch_mount()
    if reason is not None:
        for t in tests:
            t.skip = reason
    else:
        transports: list[tuple[Callable[[], Queue], int]] = [(PipeQueue, 0)]
        if not os.path.exists(DEVICE):
            tests[2].skip = tests[3].skip = f"no {DEVICE} in this kernel"
        else:
            transports.append((RingQueue, 2))
        try:
            setup_namespace(args.base)
        except OSError as e:
            for t in tests:
                t.ok = False
                t.diags.append(f"setup: {e}")
            transports = []
        for generation, (make_queue, first) in enumerate(transports):
            try:
                arena = new_arena(args.base, generation)
                share = args.ops // len(transports) + (generation < args.ops % len(transports))
                total_ops += run_transport(make_queue, arena, args.seed, share,
                                           tests[first], tests[first + 1], args.detailed)
            except OSError as e:
                for t in tests[first:first + 2]:
                    t.ok = False
                    t.diags.append(f"{make_queue.__name__}: {e}")
    emit(tests, total_ops, time.monotonic() - started)
    return 0 if all(t.ok or t.skip for t in tests) else 1


def emit(tests: Sequence[Subtest], total_ops: int, seconds: float) -> None:
    print("KTAP version 1")
    print(f"1..{len(tests)}")
    for n, t in enumerate(tests, 1):
        for d in t.diags:
            print(f"# {d}")
        if t.skip:
            print(f"ok {n} mount_oracle_{t.name} # SKIP {t.skip}")
        else:
            print(f"{'ok' if t.ok else 'not ok'} {n} mount_oracle_{t.name}")
    print(f"# time={seconds:.1f}s")
    print(f"# ops={total_ops}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
