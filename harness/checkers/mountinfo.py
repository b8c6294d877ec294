# SPDX-License-Identifier: GPL-2.0
"""/proc/self/mountinfo as the mount oracle sees it: parse, diff, topology. Pure.

A snapshot maps mountinfo ids to MountEntry; diff_mounts() says which mounts
appeared, disappeared, moved or changed attributes between two snapshots,
the independent account every watch_mount() record is checked against.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness import uapi

_U = uapi.current()
MOUNT_ATTR_RDONLY = _U.MOUNT_ATTR_RDONLY

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
    "ro": _U.MOUNT_ATTR_RDONLY, "nosuid": _U.MOUNT_ATTR_NOSUID, "nodev": _U.MOUNT_ATTR_NODEV,
    "noexec": _U.MOUNT_ATTR_NOEXEC, "noatime": _U.MOUNT_ATTR_NOATIME,
    "nodiratime": _U.MOUNT_ATTR_NODIRATIME, "nosymfollow": _U.MOUNT_ATTR_NOSYMFOLLOW,
    "idmapped": _U.MOUNT_ATTR_IDMAP,
}


def attr_from_options(options: Iterable[str]) -> int:
    """MOUNT_ATTR_* as mnt_to_attr_flags() computes them, from mountinfo field 6."""
    opts = set(options)
    attr = 0
    for opt in opts:
        attr |= _OPTION_ATTRS.get(opt, 0)
    if not opts & {"noatime", "relatime"}:
        attr |= _U.MOUNT_ATTR_STRICTATIME
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
