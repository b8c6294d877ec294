"""The expected-skips list (harness/skips.py): every skip listed, or the run fails."""
from __future__ import annotations

import pytest

from harness import ktap, report, skips
from harness.errors import HarnessError
from harness.ktap import Status
from harness.layout import REPO

LIST = ("# comment\n\nstatmount_test.test 3\tneeds a second superblock type\n"
        "mount-notify_test_ns.*\tno user namespaces\n"
        "ring_test.slow.*\ttoo slow under TCG\n")


def program(name: str, lines: str) -> ktap.TestResult:
    return ktap.parse(["TAP version 13", *lines.splitlines()], name)


def test_parse() -> None:
    entries = skips.parse(LIST, "f")
    assert [e.key for e in entries] == ["statmount_test.test 3", "mount-notify_test_ns.*",
                                        "ring_test.slow.*"]
    assert (entries[0].program, entries[0].test, entries[0].reason, entries[0].origin) == (
        "statmount_test", "test 3", "needs a second superblock type", "f:3")


@pytest.mark.parametrize(("line", "why"), [
    ("statmount_test.test 3 no tab", "expected program.test<TAB>reason"),
    ("statmount_test.test 3\t ", "expected program.test<TAB>reason"),
    ("statmount_test\treason", "is not program.test"),
    (".x\treason", "is not program.test"),
    ("a.b\tone\na.b\ttwo", r"a\.b is listed twice \(first at f:1\)"),
])
def test_bad_lines_are_refused(line: str, why: str) -> None:
    with pytest.raises(HarnessError, match=why):
        skips.parse(line + "\n", "f")


def test_every_program_kind_is_reviewed_and_unlisted_skips_fail() -> None:
    suites = [program("statmount_test", "1..3\nok 1 a\nok 2 # SKIP x\nok 3 # SKIP y"),
              program("mount-notify_test_ns", "1..0 # SKIP no userns"),
              program("listmount_test", "1..1\nok 1 fwd"),
              program("ring_test", "1..2\nok 1 slow.churn # SKIP tcg\n"
                                   "ok 2 ring.dev_open # SKIP no /dev/watch_queue"),
              program("kunit", "1..1\nok 1 watch_queue_ring.wrap # SKIP why")]
    entries = skips.parse(LIST + "listmount_test.fwd\tflaky\n", "f")
    review = skips.review(suites, entries)
    assert [key for key, _, _ in review.listed] == [
        "statmount_test.test 3", "mount-notify_test_ns.*", "ring_test.slow.churn"]
    assert review.unlisted == [("statmount_test.test 2", "x"),
                               ("ring_test.ring.dev_open", "no /dev/watch_queue"),
                               ("kunit.watch_queue_ring.wrap", "why")]
    assert [e.key for e in review.stale] == ["listmount_test.fwd"]
    # A missing feature is a failure: the unlisted skips count as failed, and their rows fail.
    rep = report.RunReport(suites, skips=review)
    counts = rep.counts()
    assert (counts.passed, counts.failed, counts.skipped) == (2, 3, 3)
    assert not rep.ok
    assert suites[3].status is Status.FAILED and suites[1].status is Status.SKIPPED
    text = report.summary(rep)
    assert ("SKIPPED ring_test.ring.dev_open (no /dev/watch_queue): NOT LISTED in "
            "selftests/expected-skips.txt") in text
    assert "note: listmount_test.fwd is listed in selftests/expected-skips.txt (f:6)" in text
    assert "FAILED ring_test" not in text  # named once, as a SKIPPED ... NOT LISTED line


def test_an_unlisted_whole_program_skip_fails() -> None:
    suites = [program("watch_sample", "1..0 # SKIP no sample")]
    review = skips.review(suites, [])
    assert review.unlisted == [("watch_sample.*", "no sample")]
    assert not report.RunReport(suites, skips=review).ok


def test_entries_of_programs_that_did_not_run_are_not_stale() -> None:
    review = skips.review([program("ring_test", "1..1\nok 1 a")],
                          skips.parse("statmount_test.*\tno\n", "f"))
    assert review.stale == []


def test_the_repository_list_parses() -> None:
    assert isinstance(skips.load(REPO), list)


def test_a_missing_list_is_an_error() -> None:
    with pytest.raises(HarnessError, match=r"expected-skips\.txt is missing"):
        skips.load(REPO / "nonexistent")
