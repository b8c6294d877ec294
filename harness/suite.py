"""What runs inside the guest, and how its files become results."""
from __future__ import annotations

import compileall
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from harness import ktap, testfilter, upstream
from harness.build import selftest_programs
from harness.checkers import ring_diff
from harness.errors import HarnessError
from harness.ktap import Status, TestResult
from harness.layout import Layout
from harness.testfilter import TestFilter
from harness.vm import GuestTest

SELFTEST_TIMEOUT = 300
# A program's limit covers its longest test's own limit (TEST_F_TIMEOUT) plus this much.
TIMEOUT_MARGIN = 60
KSFT_SKIP = 4  # kselftest.h: the exit status of a program that skipped
_TEST_TIMEOUT = re.compile(r"^\s*TEST(?:_F)?_TIMEOUT\s*\([^,]+,\s*(?:[^,]+,\s*)?(\d+)\s*\)",
                           re.MULTILINE)


@dataclass(frozen=True)
class Checker:
    name: str
    module: str
    timeout: int
    args: tuple[str, ...] = ()
    host_replay: bool = False  # the host replays what the guest recorded (collect())
    debug_args: tuple[str, ...] = ()  # the debug profile's smaller run


# The debug profile's stress sizes, a fifth of the default ones: KASAN, lockdep and
# kmemleak find their bugs on the paths, not in the repetitions, and make the guest
# three to six times slower.
DEBUG_STRESS_CYCLES = 2000  # mount_notify_test's 10,000 mount/umount cycles


CHECKERS = [
    Checker("keyctl_watch", "harness.checkers.keyctl_watch", 120),
    Checker("watch_sample", "harness.checkers.watch_sample", 120),
    Checker("ring_diff", "harness.checkers.ring_diff", 600, ("--record",), host_replay=True,
            debug_args=("--ops", "20000")),
    Checker("mount_oracle", "harness.checkers.mount_oracle", 300, debug_args=("--ops", "200")),
]


# The suite runs in vm.CPUS lanes side by side.  Programs that must not run side by
# side are one group, whose programs run one after the other in one lane:
# - the key programs all use root's keyrings, and pipe_keys_test sets the global key
#   gc_delay to 0 while some of its tests run, which changes when the others' revoked
#   keys go;
# - mount_notify_test and mount_oracle each make thousands of mount changes, which
#   the kernel serializes on its global namespace_sem, and every umount waits for an
#   expedited RCU grace period, which interrupts every CPU.  Side by side each slows
#   the other: mount_oracle took 16.6 s alone and 32 s beside mount_notify_test.
SHARED_LANE = {"pipe_keys_test": "keys", "ring_test": "keys", "keyctl_watch": "keys",
               "watch_sample": "keys", "mount_notify_test": "mounts", "mount_oracle": "mounts"}
# Seconds a program takes under TCG (measured), per profile; they only order the
# groups, longest first, so that the lanes (which take the next group when they are
# free) end close together.  The debug profile slows programs unevenly (ring_test 17x,
# mount_notify_test 5x, ring_wakeup_test 14x, mount_oracle 1.2x: its debug run is
# smaller).
EXPECTED_SECONDS = {
    "default": {"mount_notify_test": 19.0, "mount_oracle": 17.0, "ring_diff": 9.0,
                "keyctl_watch": 7.7, "watch_sample": 7.2, "ring_test": 6.3,
                "pipe_keys_test": 3.2},
    "debug": {"ring_test": 108.0, "mount_notify_test": 92.0, "pipe_keys_test": 34.0,
              "ring_diff": 30.0, "ring_wakeup_test": 24.0, "keyctl_watch": 23.0,
              "mount_oracle": 20.0, "mount-notify_test_ns": 14.0, "watch_sample": 13.0,
              "mount-notify_test": 13.0, "statmount_test_ns": 11.0, "listmount_test": 10.5,
              "statmount_test": 10.0, "mount_fanotify_test": 4.0},
}
DEFAULT_SECONDS = {"default": 2.5, "debug": 12.0}  # the rest


def schedule(tests: list[GuestTest], profile: str = "default") -> list[GuestTest]:
    """The tests with their groups, and the order the lanes take the groups in.

    A group is the programs of one SHARED_LANE name, or one program.  The longest
    group (by EXPECTED_SECONDS) comes first; ties keep the list's order, and so do
    the tests within a group and the list itself.
    """
    expected = EXPECTED_SECONDS.get(profile, EXPECTED_SECONDS["default"])
    rest = DEFAULT_SECONDS.get(profile, DEFAULT_SECONDS["default"])
    cost: dict[str, float] = {}
    for test in tests:
        group = _group(test.name)
        cost[group] = cost.get(group, 0.0) + expected.get(test.name, rest)
    order = {group: n for n, group in enumerate(sorted(cost, key=lambda g: -cost[g]))}
    return [replace(test, group=_group(test.name), order=order[_group(test.name)])
            for test in tests]


def _group(name: str) -> str:
    return SHARED_LANE.get(name, name)


def program_timeout(source_text: str, floor: int = SELFTEST_TIMEOUT) -> int:
    """A program's limit: never shorter than one of its own tests' TEST_F_TIMEOUT."""
    longest = max((int(m.group(1)) for m in _TEST_TIMEOUT.finditer(source_text)), default=0)
    return max(floor, longest + TIMEOUT_MARGIN)


def _filtered(command: str, source: Path, binary: Path, only: TestFilter | None) -> str | None:
    """The command with ``-r`` options for the chosen tests; None to leave it out."""
    if only is None or only.test == "*" or not testfilter.is_harness_program(source):
        return command
    names = testfilter.list_harness(binary)
    if names is None:
        return command  # cannot list it here: run it whole, filter its results
    args = testfilter.harness_args(names, only)
    if args is None:
        return None
    return " ".join([command, *(shlex.quote(a) for a in args)])


def guest_tests(layout: Layout, python: Path, only: TestFilter | None = None) -> list[GuestTest]:
    # KASAN, lockdep and kmemleak make the guest about three times slower.
    debug = layout.profile == "debug"
    scale = 3 if debug else 1
    stress = f"WATCH_QUEUE_STRESS_CYCLES={DEBUG_STRESS_CYCLES} " if debug else ""
    tests: list[GuestTest] = []
    # Never dropped: a program that did not build fails as "command not found".
    for p in selftest_programs(layout):
        source = layout.selftests / f"{p.name}.c"
        text = source.read_text(errors="replace") if source.exists() else ""
        tests.append(GuestTest(p.name, stress + shlex.quote(str(p)),
                               program_timeout(text) * scale))
    for up in upstream.programs(layout):
        source = upstream.selftests_dir(layout) / up.suite / f"{up.name}.c"
        text = source.read_text(errors="replace") if source.exists() else ""
        tests.append(GuestTest(up.name, upstream.guest_command(layout, up),
                               program_timeout(text, upstream.TIMEOUT) * scale))
    env = (f"cd {shlex.quote(str(layout.repo))} && PYTHONPATH={shlex.quote(str(layout.repo))} "
           f"VMTEST_SELFTESTS={shlex.quote(str(layout.selftests_out))}")
    for checker in CHECKERS:
        module_file = layout.repo / (checker.module.replace(".", "/") + ".py")
        if not module_file.exists():
            continue
        args = " ".join(shlex.quote(a) for a in
                        (*checker.args, *(checker.debug_args if debug else ())))
        # -S: no site-packages (the checkers use only the standard library), which
        # spares the guest the .pth files' imports.
        tests.append(GuestTest(checker.name, f"{env} {shlex.quote(str(python))} -S -m "
                               f"{checker.module} {args}".rstrip(), checker.timeout * scale))
    return schedule(tests if only is None else _focus(layout, tests, only), layout.profile)


def precompile(layout: Layout) -> None:
    """Byte-compile the harness on the host.  The guest sees the repository
    read-only, so it would compile every module it imports, on every run; under
    TCG that is seconds per checker.  The guest runs the same interpreter."""
    if not compileall.compile_dir(str(layout.repo / "harness"), quiet=1):
        raise HarnessError(f"python -m compileall {layout.repo / 'harness'} failed")


def _focus(layout: Layout, tests: list[GuestTest], only: TestFilter) -> list[GuestTest]:
    sources = {p.name: (layout.selftests / f"{p.name}.c", p)
               for p in selftest_programs(layout)}
    sources.update({u.name: (upstream.selftests_dir(layout) / u.suite / f"{u.name}.c", u.path)
                    for u in upstream.programs(layout)})
    out = []
    for test in tests:
        if not only.wants(test.name):
            continue
        source, binary = sources.get(test.name, (Path("/nonexistent"), Path("/nonexistent")))
        command = _filtered(test.command, source, binary, only)
        if command is not None:
            out.append(GuestTest(test.name, command, test.timeout))
    return out


# make vmrun's row: a command that prints no KTAP is judged by its exit status.
VMRUN = "vmrun"


def collect(results: Path, tests: list[GuestTest]) -> list[TestResult]:
    """Turn each test's NAME.out / NAME.rc into a result tree."""
    names = {test.name for test in tests}
    for checker in CHECKERS:
        # Once: a results folder parsed again keeps the guest's output (NAME.guest.out).
        if (checker.host_replay and checker.name in names
                and not (results / f"{checker.name}.guest.out").exists()):
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
        if test.name == VMRUN:  # any command: its exit status is its verdict
            result.status = Status.PASSED if rc == 0 else Status.FAILED
            result.reason = f"exit {rc}" if rc else ""
            return result
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
