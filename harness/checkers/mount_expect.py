# SPDX-License-Identifier: GPL-2.0
"""The mount oracle's expectations: from a mountinfo diff and the active
watches, every record one operation must produce. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.checkers.mount_records import REMOVAL, Event
from harness.checkers.mountinfo import MountDiff, Snapshot, is_within


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
    on a moved mount itself get both MOVE records, without IN_SUBTREE.

    pivot_root() is two such moves in one operation: new_root leaves its
    parent for the place of the old root P under P's parent, and P leaves
    its parent for new_root (at put_old).  Each end is read in its own
    snapshot, so P's watches hear new_root leave (pre chain) but not arrive
    (post chain), and new_root's watches hear P arrive.  triggered_on 0, for
    the end of a move where the mount is a namespace root, cannot occur in
    the arena: P always has a parent there.

    Attribute events trigger on the mount itself.  A watch whose mount went
    away, or that was removed explicitly, gets a removal record last."""
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
