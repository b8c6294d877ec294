# SPDX-License-Identifier: GPL-2.0
"""The mount oracle's operations and their seeded generator. Pure.

An operation is a value (Op); gen_op() picks one from what ArenaView says
of the arena (reachable mount points, movable ones, its size).  Performing
it is the driver's business (mount_oracle.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from harness import uapi
from harness.checkers.mountinfo import Snapshot, subtree_members, visible_mounts

_U = uapi.current()

MS_RDONLY, MS_NOSUID, MS_NODEV = _U.MS_RDONLY, _U.MS_NOSUID, _U.MS_NODEV
MS_NOEXEC, MS_NOATIME, MS_REMOUNT = _U.MS_NOEXEC, _U.MS_NOATIME, _U.MS_REMOUNT
MS_BIND, MS_MOVE, MS_REC = _U.MS_BIND, _U.MS_MOVE, _U.MS_REC
MS_SHARED, MS_PRIVATE, MS_SLAVE, MS_UNBINDABLE = (_U.MS_SHARED, _U.MS_PRIVATE, _U.MS_SLAVE,
                                                  _U.MS_UNBINDABLE)
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID = _U.MOUNT_ATTR_RDONLY, _U.MOUNT_ATTR_NOSUID
MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = _U.MOUNT_ATTR_NODEV, _U.MOUNT_ATTR_NOEXEC
MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME = _U.MOUNT_ATTR__ATIME, _U.MOUNT_ATTR_NOATIME
MOUNT_ATTR_STRICTATIME = _U.MOUNT_ATTR_STRICTATIME
AT_RECURSIVE, OPEN_TREE_CLONE = _U.AT_RECURSIVE, _U.OPEN_TREE_CLONE
# umount2() flags: glibc's <sys/mount.h> (the kernel's are not uapi).
MNT_DETACH = 2
MNT_EXPIRE = 4

ARENA_CAP = 28  # mounts in the arena before the generator only shrinks it
MAX_WATCHES = 4

@dataclass(frozen=True)
class Op:
    kind: str
    path: str
    dest: str = ""
    flags: int = 0
    attr_set: int = 0
    attr_clr: int = 0
    put_old: str = ""  # pivot_root: path is the chroot P, dest the new root

    def __str__(self) -> str:
        text = f"{self.kind} {self.path}"
        if self.dest:
            text += f" -> {self.dest}"
        if self.put_old:
            text += f" put_old={self.put_old}"
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
    ("pivot_root", 5), ("move_watched", 5),
)
PIVOT_STACKED = 0.1  # pivot_roots whose put_old is new_root itself
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


def pivot_root_op(rng: random.Random, view: ArenaView,
                  exists: Callable[[str], bool] = _always) -> Op | None:
    """pivot_root() as a child chrooted into a movable mount point P does it:
    new_root is a reachable mount point below P, put_old an existing directory
    d0..d2 of new_root that nothing is mounted on, or new_root itself (now and
    then, or when it has no such directory), which stacks P's mount on
    new_root's.  None if no mount point has one below it."""
    below = {p: [q for q in view.points if q.startswith(p + "/")] for p in view.movable}
    chroots = [p for p in view.movable if below[p]]
    if not chroots:
        return None
    path = rng.choice(chroots)
    new_root = rng.choice(below[path])
    subdirs = [f"{new_root}/d{k}" for k in range(3)]
    plain = [d for d in subdirs if d not in view.points and exists(d)]
    if not plain or rng.random() < PIVOT_STACKED:
        return Op("pivot_root", path, new_root, put_old=new_root)
    return Op("pivot_root", path, new_root, put_old=rng.choice(plain))


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
    if kind == "pivot_root":
        pivot = pivot_root_op(rng, view, exists)
        if pivot is not None:
            return pivot
        kind = "move"
    if kind == "move_watched":
        # Move a mount that carries a watch; without one, put a watch on a
        # mount that can be moved (or make room for one).
        mine = [p for p in watched_points if p in movable]
        if mine:
            src = rng.choice(mine)
            # Not into itself (ELOOP), and to a directory that exists.
            outside = [d for d in all_dirs if not d.startswith(src + "/")] or all_dirs
            picks = [rng.choice(outside) for _ in range(4)]
            return Op(kind, src, next((d for d in picks if exists(d)), picks[0]),
                      flags=MS_MOVE if rng.random() < 0.5 else 0)
        if movable and len(watched_points) + 1 < MAX_WATCHES:
            return Op("watch", rng.choice(movable))
        kind = "unwatch"
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
