"""T='program.test' focused reruns (harness/testfilter.py, suite.guest_tests)."""
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from harness import ktap, suite, testfilter, upstream
from harness.layout import Layout

LIST = """# FIXTURE            VARIANT                   TEST
ring                                           sizes
                                               loss_counts_exact
--------------------------------------------------------------------------------
keys                 pipe                      posts
                     ring                      removal
"""


def test_the_glob_splits_into_program_and_test() -> None:
    flt = testfilter.TestFilter("ring_test.*loss*")
    assert (flt.program, flt.test) == ("ring_test", "*loss*")
    assert flt.wants("ring_test") and not flt.wants("ring_diff")
    assert testfilter.TestFilter("ring_*").test == "*"


def test_kselftest_harness_lists_become_ktap_names() -> None:
    assert testfilter.parse_list(LIST) == ["ring.sizes", "ring.loss_counts_exact",
                                           "keys.pipe.posts", "keys.ring.posts",
                                           "keys.pipe.removal", "keys.ring.removal"]


def test_chosen_tests_become_r_options() -> None:
    names = testfilter.parse_list(LIST)
    flt = testfilter.TestFilter("ring_test.*loss*")
    assert testfilter.harness_args(names, flt) == ["-r", "ring.loss_counts_exact"]
    assert testfilter.harness_args(names, testfilter.TestFilter("x.nothing")) is None


def test_results_are_filtered_for_programs_without_a_filter() -> None:
    result = ktap.parse(["TAP version 13", "1..2", "ok 1 ring_1page", "ok 2 ring_hostile"],
                        "ring_diff")
    other = ktap.parse(["TAP version 13", "1..1", "ok 1 a"], "ring_test")
    kept, dropped = testfilter.TestFilter("ring_*.*hostile*").apply([result, other])
    assert [s.name for s in kept] == ["ring_diff"] and dropped == ["ring_test"]
    assert [leaf.name for leaf in kept[0].leaves()] == ["ring_hostile"]


def fake_program(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n[ \"$1\" = -l ] || exit 99\ncat >&2 <<'X'\n" + LIST + "X\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_guest_tests_only_run_the_matching_programs_and_tests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout(tmp_path)
    (tmp_path / "selftests").mkdir()
    for name in ("ring_test", "pipe_keys_test"):
        (tmp_path / "selftests" / f"{name}.c").write_text(
            '#include "kselftest_harness.h"\nTEST_F_TIMEOUT(ring, x, 600)\n')
        fake_program(layout.selftests_out / name)
    monkeypatch.setattr(upstream, "programs", lambda _layout: [])
    tests = suite.guest_tests(layout, Path("/py"), testfilter.TestFilter("ring_test.*loss*"))
    assert [t.name for t in tests] == ["ring_test"]
    assert tests[0].command.endswith("ring_test -r ring.loss_counts_exact")
    assert tests[0].timeout == 660  # the program's limit covers its 600 s test


def test_a_program_limit_covers_its_longest_test() -> None:
    assert suite.program_timeout("TEST_F(a, b) {}") == suite.SELFTEST_TIMEOUT
    assert suite.program_timeout("TEST_F_TIMEOUT(wakeup, epollet, 600)\n") == 660
    assert suite.program_timeout("  TEST_F_TIMEOUT(ring, x, 120)\n", floor=300) == 300


def test_no_program_limit_is_shorter_than_its_tests_in_the_repository() -> None:
    from harness.layout import REPO
    for source in (REPO / "selftests").glob("*.c"):
        text = source.read_text()
        longest = [int(n) for n in re.findall(r"TEST_F_TIMEOUT\([^)]*?(\d+)\)", text)]
        assert suite.program_timeout(text) > max(longest, default=0), source.name


def test_the_debug_profile_runs_the_stress_tests_smaller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "programs", lambda _layout: [])
    for profile in ("default", "debug"):
        layout = Layout(tmp_path, profile)
        (tmp_path / "selftests").mkdir(exist_ok=True)
        (tmp_path / "selftests" / "mount_notify_test.c").write_text("TEST_F(a, b) {}\n")
        fake_program(layout.selftests_out / "mount_notify_test")
        checkers = tmp_path / "harness" / "checkers"
        checkers.mkdir(parents=True, exist_ok=True)
        for name in ("ring_diff", "mount_oracle"):
            (checkers / f"{name}.py").write_text("")
        tests = {t.name: t for t in suite.guest_tests(layout, Path("/py"))}
        smaller = profile == "debug"
        assert tests["mount_notify_test"].command.startswith(
            f"WATCH_QUEUE_STRESS_CYCLES={suite.DEBUG_STRESS_CYCLES} ") is smaller
        assert tests["ring_diff"].command.endswith("--record --ops 20000" if smaller
                                                   else "--record")
        assert tests["mount_oracle"].command.endswith("--ops 200") is smaller
