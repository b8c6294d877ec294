"""KUnit's results, read from the kernel log like kunit_parser does (pure).

With CONFIG_KUNIT=y the built-in suites (watch_queue_ring) run at boot and
print KTAP into the kernel log, each line behind a "[    1.234567] "
timestamp and interleaved with whatever else the kernel logs.  extract()
finds the document (from the first "KTAP version" line to its last top-level
result), result() turns it into the "kunit" row of the verdict table, one leaf
per case named ``suite.case``.  A kernel configured for KUnit that printed no
KTAP is a failure ("Could not find any KTAP output"), never a missing row.
"""
from __future__ import annotations

import re

from harness import ktap
from harness.ktap import Status, TestResult

PROGRAM = "kunit"
NO_OUTPUT = "Could not find any KTAP output"
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_START = re.compile(r"^(K?TAP) version \d+\s*$")
_TOP_PLAN = re.compile(r"^1\.\.(\d+)")
_TOP_RESULT = re.compile(r"^(not ok|ok)\s+\d+")
# What the kernel prints once the boot-time tests are over (kunit_parser's KTAP_END).
_END = re.compile(r"List of all partitions:|Kernel panic - not syncing: VFS:|reboot: System halted"
                  r"|vmtest: guest up")


def enabled(config: str) -> bool:
    """Whether a .config's text runs KUnit suites at boot."""
    lines = set(config.splitlines())
    off = {f"# CONFIG_KUNIT_{name}_ENABLED is not set" for name in ("DEFAULT", "AUTORUN")}
    return "CONFIG_KUNIT=y" in lines and not lines & off


def extract(lines: list[str]) -> list[str]:
    """The KTAP document in a kernel log, timestamps removed; [] if there is none."""
    out: list[str] = []
    plan: int | None = None
    done = 0
    for raw in lines:
        line = _TS.sub("", raw.rstrip("\r\n"))
        if not out:
            if _START.match(line):
                out.append(line)
            continue
        if _END.search(line):
            break
        out.append(line)
        if plan is None and (m := _TOP_PLAN.match(line)):
            plan = int(m.group(1))
        elif _TOP_RESULT.match(line):
            done += 1
        if plan is not None and done >= plan:
            break
    return out


def _flatten(node: TestResult, prefix: str, into: list[TestResult]) -> None:
    name = f"{prefix}.{node.name}" if prefix else node.name
    if not node.subtests:
        into.append(TestResult(name, node.status, node.reason, node.log))
        return
    for sub in node.subtests:
        _flatten(sub, name, into)


def result(logs: list[list[str]]) -> TestResult:
    """The kunit row from the first log (dmesg, then console) that holds KTAP."""
    for lines in logs:
        doc = extract(lines)
        if doc:
            break
    else:
        return TestResult(PROGRAM, Status.CRASHED, NO_OUTPUT,
                          subtests=[TestResult("(no output)", Status.CRASHED, NO_OUTPUT)])
    parsed = ktap.parse(doc, PROGRAM)
    if not parsed.subtests:
        return parsed
    row = TestResult(PROGRAM, parsed.status, parsed.reason, log=parsed.log)
    for suite in parsed.subtests:
        _flatten(suite, "", row.subtests)
    return row


def filter_arg(test_glob: str) -> str:
    """The kernel command-line option that runs only the KUnit cases a glob names."""
    return f"kunit.filter_glob={test_glob}"
