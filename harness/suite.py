"""What runs inside the guest, and how its files become results."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from harness import ktap, upstream
from harness.build import selftest_programs
from harness.checkers import ring_diff
from harness.ktap import Status, TestResult
from harness.layout import Layout
from harness.vm import GuestTest

SELFTEST_TIMEOUT = 300
KSFT_SKIP = 4  # kselftest.h: the exit status of a program that skipped


@dataclass(frozen=True)
class Checker:
    name: str
    module: str
    timeout: int
    args: tuple[str, ...] = ()
    host_replay: bool = False  # the host replays what the guest recorded (collect())


CHECKERS = [
    Checker("keyctl_watch", "harness.checkers.keyctl_watch", 120),
    Checker("watch_sample", "harness.checkers.watch_sample", 120),
    Checker("ring_diff", "harness.checkers.ring_diff", 600, ("--record",), host_replay=True),
    Checker("mount_oracle", "harness.checkers.mount_oracle", 300),
]


def guest_tests(layout: Layout, python: Path) -> list[GuestTest]:
    # KASAN, lockdep and kmemleak make the guest about three times slower.
    scale = 3 if layout.profile == "debug" else 1
    # Never dropped: a program that did not build fails as "command not found".
    tests = [GuestTest(p.name, shlex.quote(str(p)), SELFTEST_TIMEOUT * scale)
             for p in selftest_programs(layout)]
    tests += [GuestTest(p.name, upstream.guest_command(layout, p), upstream.TIMEOUT * scale)
              for p in upstream.programs(layout)]
    env = (f"cd {shlex.quote(str(layout.repo))} && PYTHONPATH={shlex.quote(str(layout.repo))} "
           f"VMTEST_SELFTESTS={shlex.quote(str(layout.selftests_out))}")
    for checker in CHECKERS:
        module_file = layout.repo / (checker.module.replace(".", "/") + ".py")
        if not module_file.exists():
            continue
        args = " ".join(shlex.quote(a) for a in checker.args)
        tests.append(GuestTest(checker.name, f"{env} {shlex.quote(str(python))} -m "
                               f"{checker.module} {args}".rstrip(), checker.timeout * scale))
    return tests


def collect(results: Path, tests: list[GuestTest]) -> list[TestResult]:
    """Turn each test's NAME.out / NAME.rc into a result tree."""
    names = {test.name for test in tests}
    for checker in CHECKERS:
        if checker.host_replay and checker.name in names:
            ring_diff.replay_results(results, checker.name)
    return [collect_one(results, test) for test in tests]


def collect_one(results: Path, test: GuestTest) -> TestResult:
    out = results / f"{test.name}.out"
    rc_file = results / f"{test.name}.rc"
    lines = out.read_text(errors="replace").splitlines() if out.exists() else []
    result = ktap.parse(lines, test.name)
    if not rc_file.exists():
        why = ("never started: the guest died before it" if not out.exists()
               else "no exit status: the guest died while it ran")
        return _crashed(result, why)
    rc = int(rc_file.read_text().strip() or "-1")
    if rc in (124, 137):
        return _crashed(result, f"timed out after {test.timeout}s")
    if rc == 127:
        return _crashed(result, "command not found: " + (lines[-1] if lines else test.command))
    if result.status is Status.CRASHED and not result.subtests:
        last = lines[-1] if lines else "no output"
        result.reason = f"exit {rc}, no KTAP output: {last}"
        result.status = Status.FAILED if rc != 0 else Status.CRASHED
        return result
    if rc == KSFT_SKIP and result.status in (Status.PASSED, Status.SKIPPED):
        return result  # kselftest's "skipped" exit; the skips are in the KTAP
    if rc != 0 and result.status in (Status.PASSED, Status.SKIPPED):
        result.subtests.append(TestResult("exit status", Status.FAILED,
                                          f"exited {rc} although every result was ok"))
        result.status = Status.FAILED
    return result


def _crashed(result: TestResult, why: str) -> TestResult:
    result.reason = why
    result.status = Status.CRASHED
    for sub in result.subtests:
        if sub.status is Status.CRASHED:
            sub.reason = f"{sub.reason} ({why})"
    if not any(sub.status is Status.CRASHED for sub in result.subtests):
        result.subtests.append(TestResult("(incomplete)", Status.CRASHED, why))
    return result
