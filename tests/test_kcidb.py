"""The KCIDB v5.3 report (harness/kcidb.py), checked with kcidb-io's schema."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import kcidb, ktap
from harness.ktap import Status
from harness.ktap import TestResult as Result
from harness.report import RunReport
from harness.splat import Splat

META = {"profile": "debug", "base": "linux-source-7.3 7.3.4-1~bpo13+1",
        "base_suite": "trixie-backports", "kernel": "7.3.4", "series": "0123456789abcdef",
        "series_sha256": "ab" * 32, "series_head": "cd" * 20,
        "started": "2026-12-01T16:00:00+00:00", "accel": "tcg"}


def sample(tmp_path: Path) -> dict[str, Any]:
    ring = ktap.parse(["TAP version 13", "1..3", "ok 1 ring.sizes", "not ok 2 ring.wrap",
                       "ok 3 ring.loss # SKIP why"], "ring_test")
    up = Result("statmount_test", Status.SKIPPED, "no statmount")
    crashed = Result("mount_oracle", Status.CRASHED, "timed out after 300s",
                         subtests=[Result("test 1 (a b/c)", Status.CRASHED, "missing")])
    guest = tmp_path / "20261201-160000-vmtest-debug" / "guest"
    guest.mkdir(parents=True)
    (guest / "ring_test.seconds").write_text("12.5\n")
    (guest.parent / "kernel.config").write_text("CONFIG_KUNIT=y\n")
    splat = Splat("Oops", 329, "BUG: kernel NULL pointer dereference", ["RIP: x"],
                  "guest/dmesg.txt", "12.3")
    rep = RunReport([ring, up, crashed], [splat], META)
    return kcidb.build(rep, guest.parent)


def test_the_report_is_valid_kcidb_v5_3(tmp_path: Path) -> None:
    data = sample(tmp_path)
    assert kcidb.validate(data) == ""
    assert data["version"] == {"major": 5, "minor": 3}


def test_checkout_build_and_tests_hold_what_a_consumer_needs(tmp_path: Path) -> None:
    data = sample(tmp_path)
    checkout, build = data["checkouts"][0], data["builds"][0]
    assert checkout["patchset_hash"] == "ab" * 32
    assert checkout["misc"]["base"] == "linux-source-7.3 7.3.4-1~bpo13+1"
    assert build["config_name"] == "debug" and build["config_url"].startswith("file:///")
    tests = {t["path"]: t for t in data["tests"]}
    assert tests["ring_test"]["duration"] == 12.5
    assert tests["ring_test.ring.wrap"]["status"] == "FAIL"
    assert tests["ring_test.ring.loss"]["status"] == "SKIP"
    assert tests["mount_oracle.test_1_a_b_c"]["status"] == "ERROR"
    assert tests["kernel_log.Oops_1"]["log_excerpt"].startswith("BUG: kernel NULL")


def test_a_broken_report_is_refused() -> None:
    assert "is not one of" in kcidb.validate({"version": {"major": 5, "minor": 3},
                                              "tests": [{"id": "a:b", "build_id": "a:c",
                                                         "origin": "a", "status": "OK"}]})


def test_paths_are_kcidb_paths() -> None:
    assert kcidb.path("mount-notify_test", "fanotify.bind (ns)") == \
        "mount-notify_test.fanotify.bind_ns"
