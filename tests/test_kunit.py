"""KUnit's KTAP read from the kernel log (harness/kunit.py), like kunit_parser."""
from __future__ import annotations

from pathlib import Path

from harness import kunit
from harness.ktap import Status

DATA = Path(__file__).parent / "data" / "kunit"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_timestamps_and_interleaved_noise_are_tolerated() -> None:
    row = kunit.result([lines("dmesg_pass.txt")])
    assert row.name == "kunit" and row.status is Status.PASSED
    assert [(leaf.name, leaf.status) for leaf in row.leaves()] == [
        ("watch_queue_ring.record_placement_at_every_offset", Status.PASSED),
        ("watch_queue_ring.skip_record_at_the_end", Status.PASSED),
        ("watch_queue_ring.loss_record_counts", Status.PASSED),
        ("watch_queue_ring.tail_ahead_of_head_is_rejected", Status.PASSED),
        ("watch_queue_ring.tail_in_the_meta_slot_is_rejected", Status.PASSED),
        ("watch_queue_ring.tail_validation_near_wrap", Status.SKIPPED)]
    assert row.leaves()[-1].reason == "needs 2 pages"


def test_the_document_ends_with_its_last_top_level_result() -> None:
    doc = kunit.extract(lines("dmesg_pass.txt"))
    assert doc[0] == "KTAP version 1" and doc[-1] == "ok 1 watch_queue_ring"


def test_a_crash_mid_suite_reports_the_missing_cases() -> None:
    row = kunit.result([lines("console_crash.txt")])
    statuses = [leaf.status for leaf in row.leaves()]
    assert statuses[:2] == [Status.PASSED, Status.FAILED]
    assert statuses[2:] == [Status.CRASHED] * 4
    assert row.status is Status.CRASHED


def test_no_ktap_is_a_failure_not_silence() -> None:
    row = kunit.result([["[    0.1] Linux version 7.3.4"], []])
    assert row.status is Status.CRASHED and row.reason == kunit.NO_OUTPUT
    assert row.leaves()[0].status.counts_as == "failed"


def test_the_console_is_read_when_dmesg_lost_the_start() -> None:
    row = kunit.result([["[    9.0] dmesg began late"], lines("dmesg_pass.txt")])
    assert len(row.leaves()) == 6


def test_enabled_reads_the_config() -> None:
    assert kunit.enabled("CONFIG_KUNIT=y\nCONFIG_WATCH_QUEUE_KUNIT_TEST=y\n")
    assert not kunit.enabled("# CONFIG_KUNIT is not set\n")
    assert not kunit.enabled("CONFIG_KUNIT=y\n# CONFIG_KUNIT_DEFAULT_ENABLED is not set\n")
    assert not kunit.enabled("CONFIG_KUNIT=y\n# CONFIG_KUNIT_AUTORUN_ENABLED is not set\n")
    assert kunit.filter_arg("watch_queue_ring.*loss*") == \
        "kunit.filter_glob=watch_queue_ring.*loss*"
