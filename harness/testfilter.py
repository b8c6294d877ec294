"""A focused rerun: ``T='ring_test.*loss*'``, a glob over program and test names.

Like kunit.py's filter_glob: the part before the first dot chooses the
programs (only those run), the rest the tests inside them.  A kselftest_harness
program is listed on the host (``prog -l`` only lists) and gets one ``-r NAME``
per matching test; KUnit gets ``kunit.filter_glob=``; any other program runs
whole and its results are filtered afterwards.  Pure but for list_harness().
"""
from __future__ import annotations

import fnmatch
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.ktap import TestResult


@dataclass(frozen=True)
class TestFilter:
    glob: str

    @property
    def program(self) -> str:
        return self.glob.partition(".")[0] or "*"

    @property
    def test(self) -> str:
        """The glob over test names ("*" when the filter names programs only)."""
        return self.glob.partition(".")[2] or "*"

    def wants(self, program: str) -> bool:
        return fnmatch.fnmatchcase(program, self.program)

    def wants_test(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.test)

    def apply(self, suites: list[TestResult]) -> tuple[list[TestResult], list[str]]:
        """Keep the chosen programs and, in them, the chosen tests; name the programs
        left with no test."""
        kept: list[TestResult] = []
        dropped: list[str] = []
        for suite in suites:
            if not self.wants(suite.name):
                continue
            if self.test == "*" or not suite.subtests:
                kept.append(suite)
                continue
            subs = [s for s in suite.subtests if self.wants_test(s.name)
                    or any(self.wants_test(leaf.name) for leaf in s.leaves())]
            if not subs:
                dropped.append(suite.name)
                continue
            suite.subtests = subs
            kept.append(suite)
        return kept, dropped


def parse_list(text: str) -> list[str]:
    """Test names (fixture.test, fixture.variant.test) from a kselftest_harness ``-l``."""
    names: list[str] = []
    fixture = ""
    variants: list[str] = []
    tests: list[str] = []

    def flush() -> None:
        for test in tests:
            if variants:
                names.extend(f"{fixture}.{v}.{test}" for v in variants)
            else:
                names.append(f"{fixture}.{test}")

    for line in text.splitlines():
        if line.startswith("# FIXTURE"):
            continue
        if line.startswith("-----"):
            flush()
            fixture, variants, tests = "", [], []
            continue
        if not line.strip():
            continue
        # "%-20s %-25s %s": fixture (first row only), variant, test
        f, v, t = line[:20].strip(), line[21:46].strip(), line[47:].strip()
        fixture = f or fixture
        if v:
            variants.append(v)
        if t:
            tests.append(t)
    flush()
    return names


def is_harness_program(source: Path) -> bool:
    """Whether a C source is a kselftest_harness.h program (whose -l only lists)."""
    return source.exists() and "kselftest_harness.h" in source.read_text(errors="replace")


def list_harness(program: Path) -> list[str] | None:
    """The tests a built kselftest_harness program holds; None if it cannot say."""
    try:
        proc = subprocess.run([str(program), "-l"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = parse_list(proc.stderr)
    return names or None


def harness_args(names: list[str], flt: TestFilter) -> list[str] | None:
    """``-r NAME`` for each chosen test; None when the glob chooses none of them."""
    chosen = [n for n in names if flt.wants_test(n)]
    if not chosen:
        return None
    return [arg for name in chosen for arg in ("-r", name)]
