from __future__ import annotations

from pathlib import Path

from harness import ktap
from harness.ktap import Status

DATA = Path(__file__).parent / "data"


def parse(name: str) -> ktap.TestResult:
    return ktap.parse((DATA / name).read_text().splitlines(), name)


def statuses(result: ktap.TestResult) -> list[tuple[str, Status]]:
    return [(leaf.name, leaf.status) for leaf in result.leaves()]


def test_kselftest_harness_output_with_skip() -> None:
    result = parse("kselftest_pass.log")
    assert statuses(result) == [("pipe.update_posts_record", Status.PASSED),
                                ("pipe.filter_drops", Status.PASSED),
                                ("pipe.needs_root", Status.SKIPPED)]
    assert result.leaves()[2].reason == "not root"
    assert result.status is Status.PASSED


def test_console_noise_is_ignored() -> None:
    result = parse("noise.log")
    assert statuses(result) == [("alpha", Status.PASSED), ("beta", Status.FAILED),
                                ("gamma", Status.SKIPPED)]
    assert result.leaves()[1].reason == "expected 3 got 4"
    assert result.status is Status.FAILED


def test_panic_mid_run_reports_missing_tests_as_crashed() -> None:
    result = parse("panic_midrun.log")
    got = statuses(result)
    assert got[0] == ("global.first", Status.PASSED)
    assert [s for _, s in got[1:]] == [Status.CRASHED] * 3
    assert all(leaf.reason == "missing expected subtest!" for leaf in result.leaves()[1:])
    assert result.status is Status.CRASHED


def test_nested_subtests_and_xfail() -> None:
    result = parse("nested.log")
    assert [s.name for s in result.subtests] == ["ring", "keys"]
    assert statuses(result.subtests[0]) == [("ring.sizes", Status.PASSED),
                                            ("ring.wrap", Status.XFAIL),
                                            ("ring.loss", Status.PASSED)]
    assert result.subtests[0].status is Status.PASSED
    assert result.subtests[1].leaves()[1].status is Status.FAILED
    assert result.status is Status.FAILED


def test_truncated_nested_output() -> None:
    result = parse("truncated.log")
    names = [leaf.name for leaf in result.leaves()]
    assert names[:3] == ["one", "two", "three.a"]
    crashed = [leaf for leaf in result.leaves() if leaf.status is Status.CRASHED]
    # three.b..d never printed, and the top plan promised 5 results.
    assert len(crashed) == 3 + 2
    assert result.status is Status.CRASHED


def test_no_ktap_at_all() -> None:
    result = ktap.parse(["bash: foo: command not found"], "foo")
    assert result.status is Status.CRASHED
    assert result.reason == "no KTAP output"


def test_todo_counts_as_skipped_and_xfail_as_passed() -> None:
    result = ktap.parse(["KTAP version 1", "1..2", "not ok 1 a # TODO later",
                         "not ok 2 b # XFAIL known"], "t")
    assert [leaf.status.counts_as for leaf in result.leaves()] == ["skipped", "passed"]
