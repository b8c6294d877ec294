"""A pure KTAP/TAP parser: lines in, a tree of results out.

Accepts kselftest_harness "TAP version 13" output and KTAP version 1 with
nested subtests.  Console noise (timestamps, lines that are not TAP) is
ignored; a plan that promises more results than arrive yields CRASHED
entries for the missing ones, as kunit_tool does.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class Status(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    XFAIL = "xfail"
    CRASHED = "crashed"
    UNLISTED = "skipped, not listed"  # a skip selftests/expected-skips.txt does not list

    @property
    def counts_as(self) -> str:
        """The bucket of the final "N passed, N failed, N skipped" line."""
        if self in (Status.PASSED, Status.XFAIL):
            return "passed"
        if self is Status.SKIPPED:
            return "skipped"
        return "failed"


@dataclass
class TestResult:
    name: str
    status: Status = Status.PASSED
    reason: str = ""
    log: list[str] = field(default_factory=list)
    subtests: list[TestResult] = field(default_factory=list)

    def leaves(self) -> list[TestResult]:
        if not self.subtests:
            return [self]
        out: list[TestResult] = []
        for sub in self.subtests:
            out.extend(sub.leaves())
        return out


_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_VERSION = re.compile(r"^\s*(K?TAP) version \d+\s*$")
_PLAN = re.compile(r"^\s*1\.\.(\d+)")
_RESULT = re.compile(r"^(\s*)(not ok|ok)\s+(\d+)\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(.*))?$")
_SUBTEST = re.compile(r"^\s*#\s*Subtest:\s*(.*)$")
_SKIP_ALL = re.compile(r"^\s*1\.\.0\s*#\s*SKIP\b\s*(.*)$", re.IGNORECASE)


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _status(ok: bool, directive: str) -> tuple[Status, str]:
    word, _, rest = directive.strip().partition(" ")
    word = word.upper()
    if word == "SKIP":
        return Status.SKIPPED, rest.strip()
    if word in ("XFAIL", "TODO"):
        return (Status.XFAIL if word == "XFAIL" else Status.SKIPPED), rest.strip()
    return (Status.PASSED if ok else Status.FAILED), directive.strip()


@dataclass
class _Block:
    indent: int
    plan: int | None = None
    results: list[TestResult] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    pending_children: list[TestResult] = field(default_factory=list)
    pending_plan: int | None = None


def parse(lines: list[str], name: str = "main") -> TestResult:
    """Parse one KTAP document into a result named ``name``.

    A document with no TAP at all is CRASHED with the reason "no KTAP output";
    "1..0 # SKIP why" makes the whole document one skipped result.
    """
    clean = [_strip(line) for line in lines]
    start = next((i for i, line in enumerate(clean) if _VERSION.match(line)), None)
    if start is None:
        start = next((i for i, line in enumerate(clean)
                      if _PLAN.match(line) or _RESULT.match(line)), None)
    if start is None:
        return TestResult(name, Status.CRASHED, "no KTAP output", log=clean)
    top = _parse_block(clean[start:], _indent(clean[start]))
    root = TestResult(name, log=clean)
    if top.plan == 0 and not top.results:
        # "1..0 # SKIP why": the whole program skipped (kselftest's ksft_exit_skip).
        skip = next((m for line in clean[start:] if (m := _SKIP_ALL.match(line))), None)
        if skip:
            root.status, root.reason = Status.SKIPPED, skip.group(1).strip()
            return root
    root.subtests = top.results
    _fill_missing(root, top.plan)
    root.status = _aggregate(root.subtests)
    return root


def _parse_block(lines: list[str], base: int) -> _Block:
    stack = [_Block(base)]
    for line in lines:
        if not line.strip():
            continue
        ind = _indent(line)
        if _VERSION.match(line):
            if ind > stack[-1].indent:
                stack.append(_Block(ind))
            continue
        sub = _SUBTEST.match(line)
        if sub and ind > stack[-1].indent:
            stack.append(_Block(ind))
            continue
        plan = _PLAN.match(line)
        if plan:
            if ind > stack[-1].indent:
                stack.append(_Block(ind))
            stack[-1].plan = int(plan.group(1))
            continue
        res = _RESULT.match(line)
        if res:
            while len(stack) > 1 and ind < stack[-1].indent:
                child = stack.pop()
                stack[-1].pending_children = child.results
                stack[-1].pending_plan = child.plan
                stack[-1].pending.extend(child.pending)
            blk = stack[-1]
            status, reason = _status(res.group(2) == "ok", res.group(5) or "")
            result = TestResult(res.group(4).strip() or f"test {res.group(3)}",
                                status, reason, log=blk.pending)
            if blk.pending_children:
                result.subtests = blk.pending_children
                _fill_missing(result, blk.pending_plan)
                if result.status is Status.PASSED:
                    result.status = _aggregate(result.subtests)
            blk.pending, blk.pending_children, blk.pending_plan = [], [], None
            blk.results.append(result)
            continue
        stack[-1].pending.append(line.strip())
    while len(stack) > 1:
        child = stack.pop()
        orphan = TestResult("unfinished subtest", Status.CRASHED,
                            "subtest output ended without a result line")
        orphan.subtests = child.results
        _fill_missing(orphan, child.plan)
        stack[-1].results.append(orphan)
    return stack[0]


def _fill_missing(result: TestResult, plan: int | None) -> None:
    if plan is None:
        return
    for n in range(len(result.subtests) + 1, plan + 1):
        result.subtests.append(TestResult(f"test {n}", Status.CRASHED,
                                          "missing expected subtest!"))


def _aggregate(children: list[TestResult]) -> Status:
    if not children:
        return Status.CRASHED
    statuses = {c.status for c in children}
    if Status.CRASHED in statuses:
        return Status.CRASHED
    if Status.FAILED in statuses:
        return Status.FAILED
    if statuses == {Status.SKIPPED}:
        return Status.SKIPPED
    return Status.PASSED
