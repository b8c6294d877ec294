# SPDX-License-Identifier: GPL-2.0
"""The code the checkers share: the KTAP writer and the line pump."""

from __future__ import annotations

import io
import subprocess
import time

import pytest

from harness import ktap
from harness.checkers.ktap_out import KtapWriter, Outcome, result_line, write_outcomes
from harness.checkers.lines import (
    CheckFailed,
    DeadlineExpired,
    LinePump,
    deadline,
    run_step,
)


def test_result_lines() -> None:
    assert result_line(1, "a", True) == "ok 1 a"
    assert result_line(2, "b", False) == "not ok 2 b"
    assert result_line(3, "c", True, "no dev") == "ok 3 c # SKIP no dev"


def test_writer_and_outcomes_parse_back() -> None:
    out = io.StringIO()
    ok = write_outcomes([Outcome("a", ran=True), Outcome("b", ["x\ny"], failed=True, ran=True),
                         Outcome("c", skip="no keyctl"), Outcome("d")], "p_", out)
    lines = out.getvalue().splitlines()
    assert not ok
    assert lines[:2] == ["KTAP version 1", "1..4"]
    assert "# x" in lines and "# y" in lines and "# not run" in lines
    assert [(t.name, t.status) for t in ktap.parse(lines).leaves()] == [
        ("p_a", ktap.Status.PASSED), ("p_b", ktap.Status.FAILED),
        ("p_c", ktap.Status.SKIPPED), ("p_d", ktap.Status.FAILED)]


def test_skip_all_and_bail_out() -> None:
    out = io.StringIO()
    KtapWriter(out).skip_all("prog", "not built")
    assert out.getvalue() == "KTAP version 1\n1..1\nok 1 prog # SKIP not built\n"
    out = io.StringIO()
    KtapWriter(out).bail_out("hung")
    assert out.getvalue() == "Bail out! hung\n"


def pump(script: str) -> LinePump:
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    return LinePump(proc, proc.stdout.fileno(), "sh")


def test_pump_lines_stderr_and_end() -> None:
    p = pump("echo a; echo oops >&2; printf 'b\\r\\nc'")
    p.expect("a")
    p.expect("b")
    assert p.next_line(5) == "c"
    assert p.next_line(5) is None and p.next_line(5) is None
    assert p.wait_exit(5) == 0
    time.sleep(0.1)
    assert p.stderr == ["oops"] and p.stderr_text() == "oops"


def test_pump_mismatch_timeout_and_quiet() -> None:
    p = pump("echo a; sleep 30")
    with pytest.raises(CheckFailed, match=r"sh: expected 'b', got 'a'"):
        p.expect("b")
    with pytest.raises(CheckFailed, match=r"no line within 0\.1s"):
        p.next_line(0.1)
    p.expect_quiet()
    assert p.drain() == []
    p.stop()
    assert p.proc.poll() is not None
    q = pump("echo stray; sleep 30")
    with pytest.raises(CheckFailed, match="unexpected line 'stray'"):
        q.expect_quiet()
    q.stop()


def test_run_step_records_failures_and_resynchronises() -> None:
    p = pump("echo late; sleep 30")
    out = Outcome("x")

    def failing() -> None:
        raise CheckFailed("nope")

    assert not run_step(out, "step one", failing, [p])
    assert out.ran and out.failed and out.diags == ["step one: nope"]
    with pytest.raises(CheckFailed):  # drained: "late" is gone
        p.next_line(0.1)
    assert run_step(Outcome("y"), "fine", lambda: None, [])

    def expired() -> None:
        raise DeadlineExpired("too late")

    with pytest.raises(DeadlineExpired):
        run_step(out, "step two", expired, [])
    assert out.diags[-1] == "step two: too late"
    p.stop()


def test_deadline_interrupts() -> None:
    with pytest.raises(DeadlineExpired, match="deadline of 1s"), deadline(1):
        time.sleep(5)
