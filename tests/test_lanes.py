from __future__ import annotations

from harness import suite
from harness.vm import GuestTest


def names(tests: list[GuestTest], lane: int) -> list[str]:
    return [t.name for t in tests if t.lane == lane]


def test_the_key_programs_share_a_lane_and_keep_their_order() -> None:
    tests = [GuestTest(n, "", 1) for n in
             ("ring_test", "mount_notify_test", "pipe_keys_test", "keyctl_watch",
              "watch_sample", "mount_oracle", "ring_diff", "statmount_test")]
    out = suite.spread(tests, "default", 2)
    keys = {t.lane for t in out if t.name in suite.SHARED_LANE}
    assert len(keys) == 1
    lane = keys.pop()
    assert [n for n in names(out, lane) if n in suite.SHARED_LANE] == [
        "ring_test", "pipe_keys_test", "keyctl_watch", "watch_sample"]
    assert [t.name for t in out] == [t.name for t in tests]  # the list keeps its order


def test_lanes_are_balanced_longest_first() -> None:
    tests = [GuestTest(n, "", 1) for n in
             ("mount_fanotify_test", "mount_notify_test", "ring_wakeup_test", "mount_oracle",
              "listmount_test", "ring_diff")]
    out = suite.spread(tests, "default", 2)
    lane_of = {t.name: t.lane for t in out}
    assert lane_of["mount_oracle"] != lane_of["mount_notify_test"]  # the two longest
    expected = suite.EXPECTED_SECONDS["default"]
    load = [sum(expected.get(t.name, suite.DEFAULT_SECONDS["default"]) for t in out
                if t.lane == lane) for lane in (0, 1)]
    assert abs(load[0] - load[1]) <= expected["ring_diff"]


def test_the_debug_profile_balances_by_its_own_times() -> None:
    # In the debug profile ring_wakeup_test is long: not beside mount_notify_test.
    tests = [GuestTest(n, "", 1) for n in ("mount_notify_test", "ring_wakeup_test",
                                           "mount_oracle")]
    lane_of = {t.name: t.lane for t in suite.spread(tests, "debug", 2)}
    assert lane_of["ring_wakeup_test"] != lane_of["mount_notify_test"]
    assert lane_of["mount_oracle"] == lane_of["ring_wakeup_test"]


def test_one_lane_keeps_everything_in_order() -> None:
    tests = [GuestTest(n, "", 1) for n in ("b", "a", "mount_oracle")]
    assert [(t.name, t.lane) for t in suite.spread(tests, "default", 1)] == [
        ("b", 0), ("a", 0), ("mount_oracle", 0)]
