# SPDX-License-Identifier: GPL-2.0
"""Mount notification oracle: watch_mount() records against /proc/self/mountinfo.

Runs inside the test VM, as root:

    python3 -m harness.checkers.mount_oracle [--seed S] [--ops N]

In a private mount namespace it builds an arena under a tmpfs: a watched
sandbox mount W and an unwatched sibling O.  It then performs N seeded random
operations there (mount, bind, move, clone-and-attach, remount, mount_setattr,
propagation changes, umount, expiry, pivot_root, adding and removing more
watches, moving watched mounts) and after each one diffs /proc/self/mountinfo
against the previous snapshot.  pivot_root() is made by a forked child that
chroot()s into an arena mount P first: the oracle keeps its own root, while
the mount tree changes as for any pivot_root (new_root takes P's place, P
goes under new_root at put_old).  The diff (mounts that appeared,
disappeared, moved or changed attributes) is the independent oracle: from
it and the active watches the checker computes the exact multiset of
records each watch must get and compares it with what was read from the
queue (subtype, watch id, in-subtree flag, triggered/auxiliary/
watched mount, mnt_attr).  The 64-bit ids in the records are mapped to the
32-bit mountinfo ids with listmount()/statmount(); statmount() must accept
every reported id that still exists.

A second, independent reference runs alongside: a fanotify group with a mark
on the namespace (FAN_REPORT_MNT, FAN_MNT_ATTACH | FAN_MNT_DETACH).  After
each operation the mounts it says were attached, detached and moved, cut down
to the part of the namespace below W, must be the ones W's watch reported
(mount_fanotify.py says how, and what differs by design).

Every operation is watched through a notification pipe and, when
/dev/watch_queue exists, through an mmap()ed ring at the same time: the two
queues hold the same watches, and each must get exactly the expected records.
Output is KTAP, two subtests per queue.

This is the driver, the part that needs the kernel.  The logic is pure and
unit-tested on the host: mountinfo.py (parse, diff, topology),
mount_records.py (record decoding), mount_expect.py (the expected records),
mount_ops.py (the operations and their generator), mount_fanotify.py
(fanotify's events and the comparison); syscalls.py makes the system calls.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import fcntl
import mmap
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from harness import uapi
from harness.checkers.ktap_out import KtapWriter
from harness.checkers.mount_expect import Watch, expected_events
from harness.checkers.mount_fanotify import (
    MOUNT_EVENT_SIZE,
    FanEvent,
    MountSets,
    compare_sets,
    fanotify_sets,
    scoped,
    split_fanotify_events,
    watch_mount_sets,
)
from harness.checkers.mount_ops import (
    MNT_DETACH,
    MNT_EXPIRE,
    MS_MOVE,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    Arena,
    ArenaView,
    Op,
    arena_view,
    gen_op,
)
from harness.checkers.mount_records import (
    Event,
    RawRecord,
    compare_events,
    decode_record,
    order_problems,
    record_uids,
    ring_raw_record,
    split_pipe_records,
)
from harness.checkers.mountinfo import MountinfoParser, Snapshot, diff_mounts
from harness.checkers.syscalls import (
    fanotify_init,
    fanotify_mark,
    listmount,
    mount,
    mount_id_of,
    mount_setattr,
    move_mount_fd,
    notification_pipe,
    open_tree,
    pivot_root,
    statmount,
    umount2,
    unshare,
    watch_mount,
)
from harness.ring_model import consume_buffer

_U = uapi.current()

DEVICE = "/dev/watch_queue"
PIPE_NOTES = 512
RING_PAGES = 16
DEFAULT_OPS = 1000
MAX_DETAILED = 5  # mismatches shown in full per subtest
W_WATCH_ID = 1  # the watch on the arena root W
FANOTIFY_READ = 4096

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
        fcntl.ioctl(self.fd, _U.IOC_WATCH_QUEUE_SET_SIZE, PIPE_NOTES)

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
    capacity = RING_PAGES * mmap.PAGESIZE // _U.sizeof_watch_notification // 6

    def __init__(self, path: str = DEVICE) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(self.fd, _U.IOC_WATCH_QUEUE_NR_PAGES, RING_PAGES)
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


class FanotifyGroup:
    """fanotify's mount events for the caller's mount namespace."""

    def __init__(self) -> None:
        self.fd = fanotify_init(_U.FAN_REPORT_MNT | _U.FAN_NONBLOCK | _U.FAN_CLOEXEC)
        try:
            ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            try:
                fanotify_mark(self.fd, _U.FAN_MARK_ADD | _U.FAN_MARK_MNTNS,
                              _U.FAN_MNT_ATTACH | _U.FAN_MNT_DETACH, ns)
            finally:
                os.close(ns)
        except OSError:
            os.close(self.fd)
            raise

    def drain(self) -> tuple[list[FanEvent], list[str]]:
        """Every event queued.  read() copies whole events while the next one
        fits, so a read that left room for one more emptied the queue."""
        events: list[FanEvent] = []
        problems: list[str] = []
        while True:
            try:
                buf = os.read(self.fd, FANOTIFY_READ)
            except BlockingIOError:
                return events, problems
            if not buf:
                return events, [*problems, "fanotify: EOF"]
            got, bad = split_fanotify_events(buf)
            events += got
            problems += bad
            if len(buf) + MOUNT_EVENT_SIZE <= FANOTIFY_READ:
                return events, problems

    def close(self) -> None:
        os.close(self.fd)



def make_dirs(path: str) -> None:
    for k in range(3):
        with contextlib.suppress(OSError):
            os.mkdir(f"{path}/d{k}")


@dataclass
class Outcome:
    error: int = 0  # errno of the operation, 0 on success
    resolved: int = -1  # mountinfo id the path resolved to (watch, unwatch, expire)
    disagreement: str = ""  # the queues answered watch_mount() differently


class QueuesDisagree(Exception):
    """watch_mount() succeeded on some queues and failed on others."""

    def __init__(self, errors: Sequence[int]) -> None:
        super().__init__(", ".join(errno.errorcode.get(e, str(e)) if e else "ok"
                                   for e in errors))
        self.errors = list(errors)


def _do_watch(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    """The same watch, or its removal, on every queue: they hold the same watches,
    so they must give the same answer."""
    errors = []
    for fd in queue_fds:
        try:
            watch_mount(op.path, fd, watch_id if op.kind == "watch" else -1)
            errors.append(0)
        except OSError as e:
            errors.append(e.errno or errno.EIO)
    if len(set(errors)) > 1:
        raise QueuesDisagree(errors)
    if errors and errors[0]:
        raise OSError(errors[0], os.strerror(errors[0]))


def _do_mount(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    mount("mo_tmp", op.path, "tmpfs", op.flags)
    if not op.flags & MS_RDONLY:
        make_dirs(op.path)


def _do_bind(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    mount(op.path, op.dest, None, op.flags)


MOVES = ("move", "move_watched")


def _do_tree(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    """move and move_watched (mount(MS_MOVE) or open_tree + move_mount), clone,
    clone_discard."""
    if op.kind in MOVES and op.flags:
        mount(op.path, op.dest, None, MS_MOVE)
        return
    fd = open_tree(op.path, _U.OPEN_TREE_CLOEXEC | (op.flags if op.kind not in MOVES else 0))
    try:
        if op.dest:
            move_mount_fd(fd, op.dest)
    finally:
        os.close(fd)


class PivotChild:
    """The child that makes the oracle's pivot_root() calls.

    pivot_root() would re-root the oracle itself, so a child forked once, in
    the arena's namespace and before any queue is open, makes them: for each
    request it chroot()s into the arena mount point P (a mount root),
    chdir("/")s, calls pivot_root(new_root, put_old) with both paths relative
    to P, goes back to the namespace's root through the directory it kept
    open, and answers 0 or the errno.  chroot_fs_refs() re-roots only the
    tasks whose root was P: the child, never the oracle.  One fork in all
    rather than one per operation: under TCG a fork of the oracle, with the
    copy-on-write faults that follow it, costs 30 to 60 ms."""

    def __init__(self) -> None:
        req_r, self.req = os.pipe()
        self.rep, rep_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                keep = {req_r, rep_w, 0, 1, 2}
                for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
                    if fd not in keep:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                self.serve(req_r, rep_w)
                code = 0
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)

    @staticmethod
    def serve(req: int, rep: int) -> None:
        """The child's loop, until the oracle closes the request pipe."""
        top = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        with os.fdopen(req, "rb") as requests:
            for line in requests:
                path, new_root, put_old = os.fsdecode(line.rstrip(b"\n")).split("\0")
                code = 0
                try:
                    os.chroot(path)
                    os.chdir("/")
                    pivot_root(new_root, put_old)
                except OSError as e:
                    code = e.errno or errno.EIO
                finally:  # back to the namespace's root, or die
                    os.fchdir(top)
                    os.chroot(".")
                os.write(rep, struct.pack("<i", code))

    def pivot(self, path: str, new_root: str, put_old: str) -> int:
        """pivot_root(new_root, put_old) chrooted at path; 0 or the errno."""
        os.write(self.req, os.fsencode("\0".join((path, new_root, put_old))) + b"\n")
        answer = os.read(self.rep, 4)
        if len(answer) != 4:
            raise RuntimeError("the pivot_root child died")
        return int(struct.unpack("<i", answer)[0])

    def close(self) -> None:
        os.close(self.req)
        os.close(self.rep)
        os.waitpid(self.pid, 0)


pivot_child: PivotChild | None = None  # main() starts it after unshare()


def _do_pivot_root(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    """pivot_root(dest, put_old) by the child, chrooted at path."""
    if pivot_child is None:
        raise RuntimeError("no pivot_root child")
    code = pivot_child.pivot(op.path, op.dest[len(op.path):], op.put_old[len(op.path):])
    if code:
        raise OSError(code, f"pivot_root {op.dest} {op.put_old} in a chroot at {op.path}: "
                      f"{os.strerror(code)}")


def _do_remount(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    mount(None, op.path, None, op.flags)


def _do_setattr(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    mount_setattr(op.path, op.flags, op.attr_set, op.attr_clr)


def _do_expire(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    """The first MNT_EXPIRE marks the mount (EAGAIN), the second expires it."""
    try:
        umount2(op.path, MNT_EXPIRE)
    except OSError as e:
        if e.errno != errno.EAGAIN:
            raise
    umount2(op.path, MNT_EXPIRE)


def _do_umount(op: Op, queue_fds: Sequence[int], watch_id: int) -> None:
    umount2(op.path, op.flags)


ACTIONS: dict[str, Callable[[Op, Sequence[int], int], None]] = {
    "watch": _do_watch, "unwatch": _do_watch, "mount": _do_mount, "bind": _do_bind,
    "move": _do_tree, "move_watched": _do_tree, "clone": _do_tree, "clone_discard": _do_tree,
    "remount_bind": _do_remount, "remount": _do_remount, "propagation": _do_remount,
    "setattr": _do_setattr, "expire": _do_expire, "umount": _do_umount,
    "umount_lazy": _do_umount, "pivot_root": _do_pivot_root,
}
RESOLVE_FIRST = ("watch", "unwatch", "expire")  # ops whose target mount matters


def perform(op: Op, queue_fds: Sequence[int], watch_id: int) -> Outcome:
    """Run one operation; errors are results, not exceptions."""
    action = ACTIONS[op.kind]
    out = Outcome()
    try:
        if op.kind in RESOLVE_FIRST:
            out.resolved = mount_id_of(op.path)
        action(op, queue_fds, watch_id)
    except OSError as e:
        out.error = e.errno or errno.EIO
    except QueuesDisagree as e:  # the first queue's answer stands
        out.error = e.errors[0]
        out.disagreement = f"watch_mount() on the queues in turn: {e}"
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
class OpTally:
    """What the operations did: the same for every queue."""

    ops: int = 0
    failed_ops: int = 0  # operations the kernel refused (no events expected)
    by_op: collections.Counter[str] = field(default_factory=collections.Counter)
    pivots: int = 0  # pivot_root attempts
    pivots_ok: int = 0
    watched_moves: int = 0  # mounts that carried a watch and moved
    fan_ops: int = 0  # operations compared with fanotify
    fan_changed: int = 0  # ... of which fanotify saw a change below W
    fan_events: int = 0


@dataclass
class Tally:
    """What one queue received."""

    records: int = 0
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    mismatches: list[Mismatch] = field(default_factory=list)
    bad_by_op: collections.Counter[str] = field(default_factory=collections.Counter)
    fan_tucked: int = 0  # moves only watch_mount reports, accepted as tucks


class Session:
    """Queues watching the arena; every step is checked against mountinfo.

    The queues hold the same watches and see the same operations; each has its
    own tally, so a record one of them lost or garbled fails that queue's test."""

    def __init__(self, queues: Sequence[Queue], arena: Arena, seed: int,
                 fan: FanotifyGroup | None = None) -> None:
        self.queues = list(queues)
        self.fan = fan
        self.arena = arena
        self.seed = seed
        self.new_tallies()
        self.parser = MountinfoParser(arena.base)
        self.ids = IdMap(self.parser)
        self.snap = self.parser.read()
        self.ids.refresh(self.snap)
        self.root_ids = [mount_id_of(p) for p in arena.roots]
        self.watches: list[Watch] = []
        self.changed = True  # mountinfo changed in the last step
        self.add_watch(arena.watched, 1)

    def new_tallies(self) -> None:
        self.op_tally = OpTally()
        self.tallies = [Tally() for _ in self.queues]

    def add_watch(self, path: str, watch_id: int) -> None:
        mnt = mount_id_of(path)
        for queue in self.queues:
            watch_mount(path, queue.fd, watch_id)
        uid = self.ids.uid_of(mnt)
        if uid is None:
            raise OSError(errno.ENOENT, f"no 64-bit id for mount {mnt}")
        self.watches.append(Watch(watch_id, mnt, uid))

    def free_watch_id(self) -> int:
        used = {w.watch_id for w in self.watches}
        return min(i for i in range(2, 256) if i not in used)

    def step(self, index: int, op: Op) -> None:
        watch_id = self.free_watch_id() if op.kind == "watch" else 0
        outcome = perform(op, [q.fd for q in self.queues], watch_id)
        pre, post = self.snap, self.parser.read()
        diff = diff_mounts(pre, post)
        # What is wrong with the operation itself counts against every queue.
        if diff.appeared or diff.disappeared or not self.ids.live:
            shared = self.ids.refresh(post)
        else:
            shared = []
            self.ids.fresh = set()
        if outcome.disagreement:
            shared.append(outcome.disagreement)
        if outcome.error and not diff.empty:
            shared.append(f"operation failed ({errno.errorcode.get(outcome.error)}) "
                          f"but mountinfo changed")
        # Only the mount umount2(MNT_EXPIRE) named expires; what propagation
        # takes with it is plainly unmounted.
        expired = [outcome.resolved] if op.kind == "expire" and not outcome.error else []
        unwatched = [w for w in self.watches if op.kind == "unwatch" and not outcome.error
                     and w.mnt == outcome.resolved]
        expected = expected_events(pre, post, diff, self.watches, expired, unwatched)
        fan_events, fan_problems = self.fan.drain() if self.fan is not None else ([], [])
        # fanotify's view of the step, below W, for every queue's W watch to match.
        fan_below_w = MountSets()
        if fan_events:
            fan_sets, bad = fanotify_sets(fan_events, self.ids.lookup)
            fan_below_w = scoped(fan_sets, pre, post, self.root_ids[0])
            fan_problems += bad

        o = self.op_tally
        o.ops += 1
        o.failed_ops += bool(outcome.error)
        err = errno.errorcode.get(outcome.error, str(outcome.error))
        o.by_op[op.kind if not outcome.error else f"{op.kind}!{err}"] += 1
        o.pivots += op.kind == "pivot_root"
        o.pivots_ok += op.kind == "pivot_root" and not outcome.error
        watched = {w.mnt for w in self.watches}
        o.watched_moves += sum(m in watched for m in diff.moved)
        if self.fan is not None:
            o.fan_ops += 1
            o.fan_events += len(fan_events)
            o.fan_changed += not fan_below_w.empty

        for queue, t in zip(self.queues, self.tallies, strict=True):
            raws, problems = queue.drain()
            problems = shared + problems
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
            if self.fan is not None:
                problems += fan_problems + self.compare_fanotify(t, fan_events, fan_below_w,
                                                                 pre, post, received)
            missing, extra = compare_events(expected, received)
            if len(expected) > queue.capacity:
                problems.append(f"{len(expected)} records expected: more than the "
                                f"{queue.name} holds")
            t.records += len(received)
            t.by_kind.update(e.kind for e in received)
            if missing or extra or problems:
                t.bad_by_op[op.kind] += 1
                t.mismatches.append(Mismatch(index, op, outcome.error,
                                             diff.describe(pre, post), missing, extra,
                                             problems))

        gone = set(diff.disappeared)
        self.watches = [w for w in self.watches if w.mnt not in gone and w not in unwatched]
        if op.kind == "watch" and not outcome.error:
            uid = self.ids.uid_of(outcome.resolved)
            self.watches.append(Watch(watch_id, outcome.resolved, uid or 0))
        self.snap = post
        self.changed = not diff.empty

    @staticmethod
    def compare_fanotify(t: Tally, events: Sequence[FanEvent], fan_below_w: MountSets,
                         pre: Snapshot, post: Snapshot, received: Sequence[Event]
                         ) -> list[str]:
        """fanotify's view of the step, below W, against W's watch on one queue."""
        wm = watch_mount_sets(received, W_WATCH_ID)
        if not events and wm.empty:  # most operations: nothing on either side
            return []
        agreement = compare_sets(fan_below_w, wm, pre, post)
        t.fan_tucked += agreement.tucked
        return agreement.problems

    def random_ops(self, count: int, rng: random.Random) -> None:
        view: ArenaView | None = None
        for i in range(count):
            watched = tuple(sorted(self.snap[w.mnt].mount_point for w in self.watches
                                   if w.watch_id != 1 and w.mnt in self.snap))
            if view is None or self.changed or view.watched != watched:
                view = arena_view(self.snap, self.arena, self.root_ids, watched)
            self.step(i, gen_op(rng, view, self.arena, os.path.isdir))

    def report(self, n: int, emit: Callable[[str], None], what: str,
               detailed: int = MAX_DETAILED) -> bool:
        """Queue n's tally; True if it got every record it should have."""
        o, t = self.op_tally, self.tallies[n]
        emit(f"{self.queues[n].name} {what}: seed={self.seed} ops={o.ops} refused={o.failed_ops} "
             f"records={t.records} mismatched_ops={len(t.mismatches)} "
             f"pivot_root={o.pivots_ok}/{o.pivots} watched_moves={o.watched_moves} "
             f"fanotify_compared={o.fan_ops if self.fan else 'off'}")
        if self.fan is not None:
            emit(f"  fanotify: events={o.fan_events} ops_with_changes_below_W={o.fan_changed} "
                 f"tucks={t.fan_tucked}")
        if t.by_kind:
            emit("  records: " + " ".join(f"{k}={n}" for k, n in sorted(t.by_kind.items())))
        if o.by_op:
            emit("  ops (!errno = refused): " + " ".join(f"{k}={n}" for k, n in
                                                    sorted(o.by_op.items())))
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
    unshare(_U.CLONE_NEWNS)
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


def open_fanotify() -> FanotifyGroup:
    try:
        return FanotifyGroup()
    except OSError as e:
        raise OSError(e.errno, f"fanotify FAN_REPORT_MNT group with a namespace mark, the "
                      f"second oracle (--no-fanotify runs without): {e.strerror}") from None


def run_queues(queues: Sequence[Queue], arena: Arena, seed: int, ops: int,
               tests: Sequence[tuple[Subtest, Subtest]], detailed: int = MAX_DETAILED,
               fanotify: bool = True) -> int:
    """ops random operations, then the unmount of the watched mount, seen by every
    queue; tests[n] are queue n's (random ops, unmount of the watched) subtests.
    Returns the operations made."""
    fan: FanotifyGroup | None = None
    try:
        fan = open_fanotify() if fanotify else None
        session = Session(queues, arena, seed, fan)
        session.random_ops(ops, random.Random(seed))
        for n, (random_test, _) in enumerate(tests):
            random_test.ok = session.report(n, random_test.diags.append, "random ops",
                                            detailed)
        done = session.op_tally.ops
        # The watched mount goes away: UNMOUNT for everything below it, then
        # the removal of every watch there; then the rest of the arena.
        session.new_tallies()
        index = 0
        for path in arena.roots:  # whatever propagation stacked on top goes first
            while session.root_ids[arena.roots.index(path)] in session.snap and index < 50:
                session.step(index, Op("umount_lazy", path, flags=MNT_DETACH))
                index += 1
        session.step(index, Op("mount", arena.after))
        for n, (_, removal_test) in enumerate(tests):
            removal_test.ok = session.report(n, removal_test.diags.append,
                                             "unmount of the watched")
            if any(wt.watch_id == 1 for wt in session.watches):
                removal_test.ok = False
                removal_test.diags.append("watch 1 survived the unmount of its mount")
        return done + session.op_tally.ops
    finally:
        if fan is not None:
            fan.close()


def open_queues(tests: Sequence[Subtest]) -> tuple[list[Queue], list[tuple[Subtest, Subtest]]]:
    """The pipe, and the ring if this kernel has one; each with its two subtests
    (tests: pipe random, pipe unmount, ring random, ring unmount).  A queue that
    cannot be made fails or skips its subtests."""
    queues: list[Queue] = []
    pairs: list[tuple[Subtest, Subtest]] = []
    makers: list[Callable[[], Queue]] = [PipeQueue, RingQueue]
    for k, make_queue in enumerate(makers):
        pair = (tests[2 * k], tests[2 * k + 1])
        if make_queue is RingQueue and not os.path.exists(DEVICE):
            for t in pair:
                t.skip = f"no {DEVICE} in this kernel"
            continue
        try:
            queues.append(make_queue())
            pairs.append(pair)
        except OSError as e:
            for t in pair:
                t.ok = False
                t.diags.append(f"{make_queue.__name__}: {e}")
    return queues, pairs


def main(argv: Sequence[str] | None = None) -> int:
    global pivot_child
    parser = argparse.ArgumentParser(description="watch_mount() records against mountinfo")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ops", type=int, default=DEFAULT_OPS,
                        help="random operations, each seen by every queue")
    parser.add_argument("--base", default="/mnt", help="directory to build the arena on")
    parser.add_argument("--detailed", type=int, default=MAX_DETAILED,
                        help="mismatching operations to show in full")
    parser.add_argument("--no-fanotify", dest="fanotify", action="store_false",
                        help="without fanotify as the second oracle")
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
        try:
            setup_namespace(args.base)
            pivot_child = PivotChild()  # before any queue is open
        except OSError as e:
            for t in tests:
                t.ok = False
                t.diags.append(f"setup: {e}")
        else:
            queues, pairs = open_queues(tests)
            try:
                if queues:
                    arena = new_arena(args.base, 0)
                    total_ops = run_queues(queues, arena, args.seed, args.ops, pairs,
                                           args.detailed, args.fanotify)
            except OSError as e:
                for pair in pairs:
                    for t in pair:
                        t.ok = False
                        t.diags.append(f"{type(e).__name__}: {e}")
            finally:
                for queue in queues:
                    queue.close()
        if pivot_child is not None:
            pivot_child.close()
            pivot_child = None
    emit(tests, total_ops, time.monotonic() - started)
    return 0 if all(t.ok or t.skip for t in tests) else 1


def emit(tests: Sequence[Subtest], total_ops: int, seconds: float) -> None:
    ktap = KtapWriter()
    ktap.header(len(tests))
    for n, t in enumerate(tests, 1):
        for d in t.diags:
            ktap.diag(d)
        ktap.result(n, f"mount_oracle_{t.name}", t.ok, t.skip or None)
    ktap.diag(f"time={seconds:.1f}s")
    ktap.diag(f"ops={total_ops}")


if __name__ == "__main__":
    sys.exit(main())
