from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import ktap, report, skips, splat, suite
from harness.errors import HarnessError
from harness.ktap import Status
from harness.layout import Layout
from harness.vm import GuestTest

DATA = Path(__file__).parent / "data"


def guest(tmp_path: Path, name: str, out: str | None, rc: int | None) -> GuestTest:
    if out is not None:
        (tmp_path / f"{name}.out").write_text(out)
    if rc is not None:
        (tmp_path / f"{name}.rc").write_text(f"{rc}\n")
    return GuestTest(name, "cmd", 30)


def test_passing_program(tmp_path: Path) -> None:
    t = guest(tmp_path, "p", (DATA / "kselftest_pass.log").read_text(), 0)
    result = suite.collect_one(tmp_path, t)
    assert result.status is Status.PASSED


def test_timeout_marks_the_program_crashed(tmp_path: Path) -> None:
    t = guest(tmp_path, "slow", "KTAP version 1\n1..2\nok 1 a\n", 124)
    result = suite.collect_one(tmp_path, t)
    assert result.status is Status.CRASHED
    assert "timed out after 30s" in result.leaves()[-1].reason


def test_guest_died_before_the_test(tmp_path: Path) -> None:
    result = suite.collect_one(tmp_path, guest(tmp_path, "never", None, None))
    assert result.status is Status.CRASHED and "never started" in result.reason


def test_command_not_found(tmp_path: Path) -> None:
    t = guest(tmp_path, "nf", "bash: line 1: /x/ring_test: No such file or directory\n", 127)
    result = suite.collect_one(tmp_path, t)
    assert result.status is Status.CRASHED and "command not found" in result.reason


def test_nonzero_exit_with_all_ok_fails(tmp_path: Path) -> None:
    t = guest(tmp_path, "liar", "KTAP version 1\n1..1\nok 1 a\n", 1)
    result = suite.collect_one(tmp_path, t)
    assert result.status is Status.FAILED
    assert result.leaves()[-1].name == "exit status"


def test_non_ktap_failure_keeps_its_last_line(tmp_path: Path) -> None:
    t = guest(tmp_path, "raw", "Traceback...\nValueError: boom\n", 1)
    result = suite.collect_one(tmp_path, t)
    assert result.status is Status.FAILED and "ValueError: boom" in result.reason


def test_vmrun_without_ktap_is_judged_by_its_exit_status(tmp_path: Path) -> None:
    ok = suite.collect_one(tmp_path, guest(tmp_path, suite.VMRUN, "BENCH\tt\tr\tc\t1\n", 0))
    assert ok.status is Status.PASSED
    bad = suite.collect_one(tmp_path, guest(tmp_path, suite.VMRUN, "oops\n", 3))
    assert bad.status is Status.FAILED and bad.reason == "exit 3"


def test_vmrun_of_a_selftest_keeps_its_ktap_verdict(tmp_path: Path) -> None:
    t = guest(tmp_path, suite.VMRUN, "KTAP version 1\n1..1\nnot ok 1 a\n", 1)
    assert suite.collect_one(tmp_path, t).status is Status.FAILED


def test_a_program_without_ktap_that_exits_0_is_not_passed(tmp_path: Path) -> None:
    t = guest(tmp_path, "ring_test", "hello\n", 0)
    assert suite.collect_one(tmp_path, t).status is Status.CRASHED


def test_report_counts_json_junit_and_last_line(tmp_path: Path) -> None:
    good = suite.collect_one(tmp_path, guest(tmp_path, "good",
                                             (DATA / "kselftest_pass.log").read_text(), 0))
    bad = suite.collect_one(tmp_path, guest(tmp_path, "bad",
                                            (DATA / "noise.log").read_text(), 1))
    splats = splat.scan((DATA / "splats.log").read_text().splitlines())[:1]
    rep = report.RunReport([good, bad], splats, {"kernel": "6.12.117"})
    counts = rep.counts()
    assert (counts.passed, counts.failed, counts.skipped) == (3, 2, 2)
    assert not rep.ok
    report.write(rep, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["counts"] == {"passed": 3, "failed": 2, "skipped": 2}
    assert data["splats"][0]["kind"] == "KASAN"
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert sum(int(s.get("failures", "0")) for s in root) == 2
    text = (tmp_path / "summary.txt").read_text().splitlines()
    assert text[-1] == "3 passed, 2 failed, 2 skipped"
    assert any(line.startswith("SPLAT KASAN") for line in text)


def test_only_listed_skips_is_a_passing_run() -> None:
    """No "passed > 0" rule: what decides is whether anything failed, unlisted skips included."""
    result = ktap.parse(["TAP version 13", "1..0 # SKIP no statmount"], "statmount_test")
    entry = skips.parse("statmount_test.*\tno statmount here\n", "f")
    rep = report.RunReport([result], skips=skips.review([result], entry))
    assert rep.ok
    unlisted = ktap.parse(["TAP version 13", "1..0 # SKIP no statmount"], "statmount_test")
    rep = report.RunReport([unlisted], skips=skips.review([unlisted], []))
    assert not rep.ok and rep.counts().failed == 1


def test_bench_lines_become_tables() -> None:
    from harness import bench
    tables = bench.parse(["noise", "BENCH\tring vs pipe\tbatch 1\tring ns/rec\t120",
                          "BENCH\tring vs pipe\tbatch 1\tpipe ns/rec\t480",
                          "BENCH\tring vs pipe\tbatch 16\tring ns/rec\t40", "BENCH\tbad"])
    assert tables == {"ring vs pipe": {"batch 1": {"ring ns/rec": "120", "pipe ns/rec": "480"},
                                       "batch 16": {"ring ns/rec": "40"}}}
    text = bench.render(tables)
    assert "## ring vs pipe" in text and "batch 16" in text and text.count("-") >= 1


def test_collect_replays_host_replay_checkers_on_the_host(tmp_path: Path) -> None:
    """ring_diff records in the guest; collect() replays on the host and keeps the guest's."""
    (tmp_path / "ring_diff.out").write_text("recorded 4 subtests\n")
    (tmp_path / "ring_diff.rc").write_text("0\n")
    [result] = suite.collect(tmp_path, [GuestTest("ring_diff", "cmd", 30)])
    assert (tmp_path / "ring_diff.guest.out").read_text() == "recorded 4 subtests\n"
    assert "no trace to replay" in (tmp_path / "ring_diff.out").read_text()
    assert result.status is Status.FAILED


def test_ring_diff_records_in_the_guest() -> None:
    entry = next(c for c in suite.CHECKERS if c.name == "ring_diff")
    assert entry.args == ("--record",) and entry.host_replay



def test_precompile_leaves_the_bytecode_the_guest_reads(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "m.py").write_text("X = 1\n")
    suite.precompile(Layout(tmp_path))
    tag = sys.implementation.cache_tag
    assert (tmp_path / "harness" / "__pycache__" / f"m.{tag}.pyc").exists()
    (tmp_path / "harness" / "bad.py").write_text("def (:\n")
    with pytest.raises(HarnessError, match="compileall"):
        suite.precompile(Layout(tmp_path))
