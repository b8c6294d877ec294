from __future__ import annotations

from harness import suite
from harness.vm import GuestTest


def by_order(tests: list[GuestTest]) -> list[str]:
    return [t.name for t in sorted(tests, key=lambda t: t.order)]


def test_programs_that_must_not_overlap_are_one_group_and_keep_their_order() -> None:
    tests = [GuestTest(n, "", 1) for n in
             ("ring_test", "mount_notify_test", "pipe_keys_test", "keyctl_watch",
              "watch_sample", "mount_oracle", "ring_diff", "statmount_test")]
    out = suite.schedule(tests, "default")
    assert [t.name for t in out] == [t.name for t in tests]  # the list keeps its order
    groups: dict[str, list[str]] = {}
    for t in out:
        groups.setdefault(t.group, []).append(t.name)
    assert groups == {"keys": ["ring_test", "pipe_keys_test", "keyctl_watch", "watch_sample"],
                      "mounts": ["mount_notify_test", "mount_oracle"],
                      "ring_diff": ["ring_diff"], "statmount_test": ["statmount_test"]}
    order = {t.group: t.order for t in out}
    assert all(t.order == order[t.group] for t in out)  # a group has one place in the queue
    assert sorted(order.values()) == [0, 1, 2, 3]


def test_the_longest_group_comes_first() -> None:
    tests = [GuestTest(n, "", 1) for n in
             ("mount_fanotify_test", "listmount_test", "ring_diff", "mount_notify_test",
              "ring_test", "mount_oracle", "watch_sample")]
    # The mounts 36 s, the keys 13.5 s, ring_diff 9 s, then the rest (2.5 s each) in
    # the list's order; a group keeps its own order.
    assert by_order(suite.schedule(tests, "default")) == [
        "mount_notify_test", "mount_oracle", "ring_test", "watch_sample", "ring_diff",
        "mount_fanotify_test", "listmount_test"]


def test_the_debug_profile_orders_by_its_own_times() -> None:
    # Under the debug kernel ring_test slows down most (17x): it passes
    # mount_notify_test (5x) and ring_diff.
    tests = [GuestTest(n, "", 1) for n in ("ring_diff", "ring_wakeup_test", "ring_test",
                                           "mount_notify_test")]
    assert by_order(suite.schedule(tests, "default")) == [
        "mount_notify_test", "ring_diff", "ring_test", "ring_wakeup_test"]
    assert by_order(suite.schedule(tests, "debug")) == [
        "ring_test", "mount_notify_test", "ring_diff", "ring_wakeup_test"]
