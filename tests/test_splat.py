from __future__ import annotations

from pathlib import Path

from harness import splat

DATA = Path(__file__).parent / "data"


def test_every_splat_kind_is_found_once() -> None:
    found = splat.scan((DATA / "splats.log").read_text().splitlines())
    assert [s.kind for s in found] == ["KASAN", "WARNING", "lockdep", "soft lockup",
                                       "hung task", "RCU stall", "UBSAN", "kmemleak"]
    assert "filter_watch_notification" in found[0].title
    assert any("Read of size 8" in line for line in found[0].trace)


def test_panic_log_reports_oops_and_panic() -> None:
    found = splat.scan((DATA / "panic_midrun.log").read_text().splitlines())
    kinds = [s.kind for s in found]
    assert kinds[0] == "BUG" or kinds[0] == "Oops"
    assert "panic" in kinds or any("Kernel panic" in ln for s in found for ln in s.trace)


def test_clean_log_has_no_splats() -> None:
    lines = ["[    0.1] Linux version 6.12.117", "vmtest: start pipe_keys_test",
             "a WARNING that is not a kernel one", "BUGS fixed: none"]
    assert splat.scan(lines) == []
