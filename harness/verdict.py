"""From a results folder to a RunReport: collect each program's results, read KUnit
from the kernel log, review the skips, scan the logs for splats.

Reads files and nothing else; cli.py decides what to run and printer.py prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import kunit, plant, skips, splat, suite
from harness.ktap import Status, TestResult
from harness.report import RunReport
from harness.testfilter import TestFilter
from harness.vm import GuestTest

# The logs of one boot, scanned in this order (a report found in both counts once).
DMESG = Path("guest") / "dmesg.txt"
CONSOLE = Path("console.log")
KMEMLEAK = Path("guest") / "kmemleak.txt"
KERNEL_CONFIG = "kernel.config"  # the .config the kernel under test was built with


@dataclass
class VerdictRequest:
    results: Path
    tests: list[GuestTest]
    expected: list[skips.ExpectedSkip]
    kunit: bool = False  # the kernel runs KUnit suites at boot
    problem: str = ""  # why the VM run went wrong (vm.diagnose), "" if it did not
    only: TestFilter | None = None
    meta: dict[str, str] = field(default_factory=dict)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def scan_logs(results: Path) -> list[splat.Splat]:
    """Every splat of the boot, once: dmesg first, console.log for what dmesg lacks
    (early lines lost from the ring buffer, a guest that died before dmesg was taken).
    kmemleak's objects come from kmemleak.txt when the guest wrote it."""
    found = splat.scan(_lines(results / DMESG), source=str(DMESG))
    found = splat.merge(found, splat.scan(_lines(results / CONSOLE), source=str(CONSOLE)))
    leaks = results / KMEMLEAK
    if leaks.exists():
        found = [s for s in found if s.kind != "kmemleak"]
        found += splat.scan(_lines(leaks), source=str(KMEMLEAK))
    return found


def kunit_expected(results: Path) -> bool:
    config = results / KERNEL_CONFIG
    return config.exists() and kunit.enabled(config.read_text(errors="replace"))


def vm_failure(problem: str) -> TestResult:
    return TestResult("vm", Status.FAILED, problem,
                      subtests=[TestResult("guest ran to completion", Status.FAILED, problem)])


def build(req: VerdictRequest) -> RunReport:
    guest = req.results / "guest"
    suites = suite.collect(guest, req.tests)
    notes: list[str] = []
    if req.kunit and (req.only is None or req.only.wants(kunit.PROGRAM)):
        suites.append(kunit.result([_lines(req.results / DMESG),
                                    _lines(req.results / CONSOLE)]))
    if req.only is not None:
        planted = [s for s in suites if s.name == plant.PROGRAM]
        chosen, dropped = req.only.apply([s for s in suites if s.name != plant.PROGRAM])
        suites = planted + chosen
        notes += [f"{name}: no test matches {req.only.glob}" for name in dropped]
    review = skips.review(suites, req.expected)
    if req.problem:
        suites.append(vm_failure(req.problem))
    return RunReport(suites, scan_logs(req.results), dict(req.meta), review, notes)
