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


def test_every_object_kmemleak_lists_is_a_splat_per_cpu_ones_too() -> None:
    # As the guest's kmemleak.txt had them after a planted leak (7.3, debug profile).
    lines = ["unreferenced object 0xff1100000c8b2000 (size 4096):",
             '  comm "python3", pid 107, jiffies 4294929114',
             "  backtrace (crc 846a9f7f):",
             "    kmemleak_test_init+0x2d1/0x6c0 [kmemleak_test]",
             "unreferenced object (percpu) 0xffffffff83179dd4 (size 64):",
             '  comm "python3", pid 107, jiffies 4294929118',
             "  hex dump (first 32 bytes on cpu 1):",
             "  backtrace (crc 0):",
             "    pcpu_alloc_noprof+0x6d2/0xee0",
             "    kmemleak_test_init+0x405/0x6c0 [kmemleak_test]"]
    found = splat.scan(lines, source="guest/kmemleak.txt")
    assert [(s.kind, s.where) for s in found] == [("kmemleak", "guest/kmemleak.txt:1"),
                                                  ("kmemleak", "guest/kmemleak.txt:5")]
    assert found[1].title.startswith("unreferenced object (percpu) 0xffffffff83179dd4")
    assert any("pcpu_alloc_noprof" in line for line in found[1].trace)


def test_one_crash_is_one_splat() -> None:
    """BUG (NULL dereference), Oops and the panic it causes: one Oops, not three."""
    found = splat.scan((DATA / "panic_midrun.log").read_text().splitlines(),
                       source="guest/dmesg.txt")
    assert [(s.kind, s.where) for s in found] == [("Oops", "guest/dmesg.txt:8")]
    assert any("Kernel panic - not syncing: Fatal exception" in ln for ln in found[0].trace)


def test_kernel_bug_then_oops_is_one_splat() -> None:
    lines = ["[ 5.0] ------------[ cut here ]------------",
             "[ 5.1] kernel BUG at kernel/watch_queue.c:99!",
             "[ 5.2] Oops: invalid opcode: 0000 [#1] SMP", "[ 5.3] Call Trace:", "[ 5.4] </TASK>",
             "[ 5.5] ---[ end trace 0000000000000000 ]---",
             "[ 5.6] Kernel panic - not syncing: Fatal exception"]
    assert [s.kind for s in splat.scan(lines)] == ["BUG"]


def test_an_unrelated_panic_later_is_its_own_splat() -> None:
    lines = ["[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2", "[ 1.1] ---[ end trace 0 ]---",
             *[f"[ 2.{i}] noise {i}" for i in range(40)],
             "[ 9.0] Kernel panic - not syncing: Fatal exception"]
    assert [s.kind for s in splat.scan(lines)] == ["WARNING", "panic"]


def test_a_report_in_dmesg_and_on_the_console_counts_once() -> None:
    lines = (DATA / "splats.log").read_text().splitlines()
    dmesg = splat.scan(lines[:5], source="guest/dmesg.txt")
    console = splat.scan(["virtme-ng", *lines], source="console.log")
    merged = splat.merge(dmesg, console)
    assert [s.where for s in merged][:2] == ["guest/dmesg.txt:2", "console.log:11"]
    assert len(merged) == len(console)
