"""From a canned results folder to a verdict (harness/verdict.py, printer, report, kcidb)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import kcidb, report, skips, testfilter, verdict
from harness.ktap import Status
from harness.vm import GuestTest

DATA = Path(__file__).parent / "data" / "results"
LISTED = skips.parse("ring_test.ring.loss_counts\tneeds 2 CPUs\n", "f")


@pytest.fixture
def leak(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "leak", tmp_path / "leak")
    return tmp_path / "leak"


def guest_tests_in(results: Path) -> list[GuestTest]:
    return [GuestTest(p.stem, "", 30) for p in sorted((results / "guest").glob("*.rc"))]


def build(results: Path, expected: list[skips.ExpectedSkip] = LISTED,
          only: testfilter.TestFilter | None = None, problem: str = "") -> report.RunReport:
    req = verdict.VerdictRequest(results, guest_tests_in(results), expected,
                                 kunit=verdict.kunit_expected(results), problem=problem,
                                 only=only, meta={"profile": "debug"})
    return verdict.build(req)


def test_a_planted_leak_fails_the_run_once_per_object(leak: Path) -> None:
    rep = build(leak)
    kinds = [(s.kind, s.source) for s in rep.splats]
    # The WARNING is in dmesg and on the console: once.  kmemleak's dmesg line gives way
    # to the objects kmemleak.txt lists, one splat each.
    assert kinds == [("WARNING", "guest/dmesg.txt"), ("kmemleak", "guest/kmemleak.txt"),
                     ("kmemleak", "guest/kmemleak.txt")]
    assert rep.splats[1].where == "guest/kmemleak.txt:1"
    assert any("kmemleak_test_init" in line for line in rep.splats[1].trace)
    assert not rep.ok
    text = report.summary(rep)
    assert ("SPLAT kmemleak (guest/kmemleak.txt:1): unreferenced object 0xffff888005a1c380 "
            "(size 32):") in text
    assert "SPLAT WARNING (guest/dmesg.txt:12)" in text


def test_kunit_is_a_row_when_the_config_enables_it(leak: Path) -> None:
    rep = build(leak)
    assert [s.name for s in rep.suites] == ["plant_leak", "ring_test", "kunit"]
    assert rep.suites[-1].leaves()[0].name == "watch_queue_ring.record_placement_at_every_offset"


def test_kunit_enabled_but_silent_is_a_failure(leak: Path) -> None:
    (leak / "guest" / "dmesg.txt").write_text("[ 0.1] Linux\n")
    (leak / "console.log").write_text("vmtest: guest up\n")
    rep = build(leak)
    row = rep.suites[-1]
    assert row.name == "kunit" and row.reason == "Could not find any KTAP output"
    assert rep.counts().failed >= 1


def test_no_kunit_row_without_kunit_in_the_config(leak: Path) -> None:
    (leak / "kernel.config").write_text("# CONFIG_KUNIT is not set\n")
    assert "kunit" not in [s.name for s in build(leak).suites]


def test_an_unlisted_skip_fails_and_is_named(leak: Path) -> None:
    rep = build(leak, expected=[])
    assert rep.skips.unlisted == [("ring_test.ring.loss_counts", "needs 2 CPUs")]
    assert rep.suites[1].status is Status.FAILED
    assert ("SKIPPED ring_test.ring.loss_counts (needs 2 CPUs): NOT LISTED in "
            "selftests/expected-skips.txt") in report.summary(rep)


def test_a_filter_keeps_the_chosen_programs_and_tests_and_the_planted_row(leak: Path) -> None:
    rep = build(leak, only=testfilter.TestFilter("ring_test.*sizes"))
    assert [s.name for s in rep.suites] == ["plant_leak", "ring_test"]
    assert [leaf.name for leaf in rep.suites[1].leaves()] == ["ring.sizes"]


def test_a_vm_problem_is_a_failed_row(leak: Path) -> None:
    rep = build(leak, problem="kernel panic")
    assert rep.suites[-1].name == "vm" and rep.suites[-1].status is Status.FAILED


def test_results_json_junit_and_kcidb_are_written(leak: Path) -> None:
    rep = build(leak)
    report.write(rep, leak)
    data = json.loads((leak / "results.json").read_text())
    assert data["splats"][1]["file"] == "guest/kmemleak.txt"
    assert data["skips"]["listed"][0]["test"] == "ring_test.ring.loss_counts"
    k = json.loads((leak / kcidb.FILE).read_text())
    assert kcidb.validate(k) == ""
    assert (leak / "junit.xml").exists()
