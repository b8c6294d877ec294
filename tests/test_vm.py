from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from harness import vm
from harness.errors import HarnessError


def request(tmp_path: Path, script: str, boot_timeout: int = 20,
            tests: list[vm.GuestTest] | None = None) -> vm.VmRequest:
    fake = tmp_path / "fake-vng"
    fake.write_text("#!/bin/bash\n" + script)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    kernel = tmp_path / "bzImage"
    kernel.write_text("")
    return vm.VmRequest(kernel, tmp_path / "guest", tests or [vm.GuestTest("t", "true", 5)],
                        "tcg", vng=str(fake), boot_timeout=boot_timeout)


def test_command_line_uses_tcg_and_shares_results(tmp_path: Path) -> None:
    req = vm.VmRequest(Path("/k/bzImage"), Path("/r"), [], "tcg")
    cmd = vm.vng_command(req)
    assert cmd[:3] == ["vng", "--run", "/k/bzImage"]
    assert "--disable-kvm" in cmd
    assert "--rwdir=/r=/r" in cmd
    assert "--force-9p" in cmd  # no 6 s of waiting for virtiofsd first
    assert "--skip-modules" in cmd  # no depmod needed on the host
    assert cmd[-2] == "--exec" and cmd[-1].endswith("run-tests.sh /r")
    # The read-only root cached in the guest, after (so instead of) vng's rootflags=.
    assert cmd[cmd.index(vm.CACHED_ROOT) - 1] == "--append"
    assert vm.CACHED_ROOT.startswith("rootflags=") and vm.CACHED_ROOT.endswith(",cache=loose")
    assert "--disable-kvm" not in vm.vng_command(vm.VmRequest(Path("/k"), Path("/r"), [], "kvm"))


def test_manifest_rejects_tabs(tmp_path: Path) -> None:
    req = vm.VmRequest(Path("/k"), tmp_path, [vm.GuestTest("x", "a\tb", 1)], "tcg")
    with pytest.raises(HarnessError, match="tab or newline"):
        vm.write_manifest(req)


def test_deadline_covers_every_test() -> None:
    req = vm.VmRequest(Path("/k"), Path("/r"), [vm.GuestTest("a", "", 100),
                                                vm.GuestTest("b", "", 50)], "tcg",
                       boot_timeout=60)
    assert vm.deadline(req) == 60 + 110 + 60 + 30


def test_clean_run_records_boot_time_and_tests(tmp_path: Path) -> None:
    req = request(tmp_path, "echo 'vmtest: guest up 6.12'\necho 'vmtest: start t'\n"
                            "echo 'vmtest: done t rc=0'\necho 'vmtest: guest done'\n")
    out = vm.run(req, tmp_path / "console.log")
    assert out.returncode == 0 and out.started == ["t"] and out.finished == ["t"]
    assert out.boot_seconds is not None
    assert vm.diagnose(out) == ""
    assert "vmtest: guest done" in (tmp_path / "console.log").read_text()


def test_boot_hang_is_killed_with_a_diagnosis(tmp_path: Path) -> None:
    req = request(tmp_path, "echo booting; sleep 600 & sleep 600\n", boot_timeout=2)
    start = time.monotonic()
    out = vm.run(req, tmp_path / "console.log")
    assert time.monotonic() - start < 15
    assert vm.diagnose(out).startswith("boot hang")


def test_panic_is_reported(tmp_path: Path) -> None:
    req = request(tmp_path, "echo 'vmtest: guest up'\necho 'vmtest: start t'\n"
                            "echo '[ 3.0] Kernel panic - not syncing: Fatal exception'\nexit 255\n")
    out = vm.run(req, tmp_path / "console.log")
    assert out.panic and vm.diagnose(out) == "kernel panic"


def test_no_ports_reads_as_udev_hint(tmp_path: Path) -> None:
    out = vm.run(request(tmp_path, "exit 255\n"), tmp_path / "console.log")
    assert "udev" in vm.diagnose(out)


def test_missing_kernel_is_a_clear_error(tmp_path: Path) -> None:
    req = request(tmp_path, "exit 0\n")
    req.kernel.unlink()
    with pytest.raises(HarnessError, match="no kernel image"):
        vm.run(req, tmp_path / "console.log")


def test_the_log_buffer_is_large(tmp_path: Path) -> None:
    cmd = vm.vng_command(vm.VmRequest(Path("/k"), Path("/r"), [], "tcg"))
    assert vm.LOG_BUF in cmd and vm.LOG_BUF.startswith("log_buf_len=")


def test_marks_split_across_writes_are_read_whole(tmp_path: Path) -> None:
    req = request(tmp_path, "echo 'vmtest: guest up'\nprintf 'vmtest: start ring_'\nsleep 0.3\n"
                            "printf 'test\\n'\necho 'vmtest: done ring_test rc=0'\n",
                  tests=[vm.GuestTest("ring_test", "true", 5)])
    out = vm.run(req, tmp_path / "console.log")
    assert out.started == ["ring_test"] and out.finished == ["ring_test"]
    assert "\r" not in (tmp_path / "console.log").read_text()


def test_a_test_past_its_limit_is_killed_with_its_name(tmp_path: Path) -> None:
    req = request(tmp_path, "echo 'vmtest: guest up'\necho 'vmtest: start slow'\nsleep 600\n",
                  tests=[vm.GuestTest("slow", "sleep 600", 1)])
    start = time.monotonic()
    out = vm.run(req, tmp_path / "console.log")
    assert time.monotonic() - start < vm.GUEST_KILL_GRACE + 15
    assert vm.diagnose(out).startswith("slow ran past its limit")


def test_a_panicked_vm_that_does_not_stop_is_killed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm, "PANIC_GRACE", 1)
    req = request(tmp_path, "echo 'vmtest: guest up'\n"
                            "echo '[ 3.0] Kernel panic - not syncing: Fatal exception'\n"
                            "sleep 600\n")
    out = vm.run(req, tmp_path / "console.log")
    assert out.panic and vm.diagnose(out) == "kernel panic (VM did not exit by itself)"


def test_vmshell_puts_the_tests_and_checkers_on_path(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import vmshell
    from harness.layout import Layout

    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    layout = Layout(tmp_path)
    shell = vmshell.write_bin(layout, Path("/venv/bin/python"))
    text = shell.read_text()
    assert f"{layout.obj}/vmshell/bin:{layout.selftests_out}:" in text
    assert text.rstrip().endswith("exec bash --norc -i")
    wrapper = (layout.obj / "vmshell" / "bin" / "ring_diff").read_text()
    assert "/venv/bin/python -m harness.checkers.ring_diff" in wrapper
    req = vm.VmRequest(Path("/k"), tmp_path / "r", [], "tcg")
    cmd = vmshell.command(req, shell)
    assert "--exec" not in cmd and cmd[-2:] == ["--shell", str(shell)]
    assert vm.CACHED_ROOT not in cmd  # what is edited on the host shows in the guest


def test_manifest_lists_groups_in_the_order_the_lanes_take_them(tmp_path: Path) -> None:
    req = vm.VmRequest(Path("/k"), tmp_path, [vm.GuestTest("a", "true", 5, order=1),
                                              vm.GuestTest("b", "false", 7, "keys", 0),
                                              vm.GuestTest("c", ":", 9, "keys", 0)], "tcg")
    vm.write_manifest(req)
    assert (tmp_path / "tests.list").read_text() == (
        "keys\tb\t7\tfalse\nkeys\tc\t9\t:\na\ta\t5\ttrue\n")


def test_manifest_refuses_a_group_the_guest_cannot_take(tmp_path: Path) -> None:
    req = vm.VmRequest(Path("/k"), tmp_path, [vm.GuestTest("a", "true", 5, "../x")], "tcg")
    with pytest.raises(HarnessError, match=r"group '\.\./x'"):
        vm.write_manifest(req)


def test_each_running_test_keeps_its_own_limit(tmp_path: Path) -> None:
    # Two lanes: the long test is still running when the short one overruns.
    req = request(tmp_path, "echo 'vmtest: guest up'\necho 'vmtest: start long'\n"
                            "echo 'vmtest: start short'\nsleep 600\n",
                  tests=[vm.GuestTest("long", "sleep 600", 300),
                         vm.GuestTest("short", "sleep 600", 1)])
    start = time.monotonic()
    out = vm.run(req, tmp_path / "console.log")
    assert time.monotonic() - start < vm.GUEST_KILL_GRACE + 15
    assert vm.diagnose(out).startswith("short ran past its limit")


def test_guest_script_lanes_take_the_next_group_when_free(tmp_path: Path) -> None:
    # The guest's own script, run here with two lanes: one takes "long"; the other
    # takes "keys" (a, then b), then s1 and s2 while "long" still runs.
    stamp = "date +%s.%N >" + str(tmp_path)
    (tmp_path / "tests.list").write_text(
        f"long\tlong\t30\t{stamp}/long.start; sleep 3; {stamp}/long.end\n"
        f"keys\ta\t30\t{stamp}/a.start; sleep 1; {stamp}/a.end\n"
        f"s1\ts1\t30\t{stamp}/s1.start\n"
        f"keys\tb\t30\t{stamp}/b.start; {stamp}/b.end; exit 3\n"
        f"s2\ts2\t30\t{stamp}/s2.start\n")
    # As root, in a mount namespace of its own: the script may mount debugfs.
    private = ["unshare", "--mount", "--propagation", "private"] if os.geteuid() == 0 else []
    proc = subprocess.run([*private, "bash", str(vm.GUEST_SCRIPT), str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "VMTEST_LANES": "2"})
    assert proc.returncode == 0, proc.stderr

    def at(name: str) -> float:
        return float((tmp_path / name).read_text())

    assert at("a.start") < at("long.end") and at("long.start") < at("a.end")  # side by side
    assert at("a.end") <= at("b.start") <= at("s1.start")  # a group runs whole, in order
    assert at("s2.start") < at("long.end")  # the free lane went on; the busy one did not
    for t in ("long", "a", "b", "s1", "s2"):
        assert proc.stdout.count(f"vmtest: start {t}\n") == 1  # each test ran once
        assert f"vmtest: done {t}" in proc.stdout
    assert [(tmp_path / f"{t}.rc").read_text() for t in ("a", "b", "s1")] == [
        "0\n", "3\n", "0\n"]
    # How long each ran, in seconds with two decimals (measured without date or awk).
    assert re.fullmatch(r"1\.\d\d\n", (tmp_path / "a.seconds").read_text())
    assert re.fullmatch(r"0\.\d\d\n", (tmp_path / "b.seconds").read_text())
    assert proc.stdout.rstrip().endswith("vmtest: guest done")
