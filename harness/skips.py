"""The expected-skips list: every skip of every program must be listed, or the run fails.

selftests/expected-skips.txt holds one ``program.test<TAB>reason`` a line, for
every program the verdict table shows (C selftests, upstream's, the checkers,
``kunit``).  ``program`` is the table's row; ``test`` is the test's name as
results.json shows it (``fixture.test`` for kselftest_harness tests, ``test N``
for a nameless result, ``suite.case`` for KUnit), or a glob over those names:
``program.*`` covers a program that skips as a whole ("1..0 # SKIP") and every
test in it.  A skip no entry matches turns into a failure (Status.UNLISTED);
an entry that matched no skip in a program that ran is only a note.  Pure:
results and text in, a review out.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.ktap import Status, TestResult

SKIPS = Path("selftests") / "expected-skips.txt"
WHOLE_PROGRAM = "*"


@dataclass(frozen=True)
class ExpectedSkip:
    program: str
    test: str  # a glob over the program's test names; "*" also covers "1..0 # SKIP"
    reason: str
    origin: str  # file:line

    @property
    def key(self) -> str:
        return f"{self.program}.{self.test}"

    def matches(self, program: str, test: str) -> bool:
        return program == self.program and fnmatch.fnmatchcase(test, self.test)


def parse(text: str, origin: str) -> list[ExpectedSkip]:
    """``program.test<TAB>reason`` lines; blank lines and ``#`` comments are ignored."""
    out: dict[str, ExpectedSkip] = {}
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{origin}:{number}"
        if not line.strip() or line.startswith("#"):
            continue
        key, tab, reason = line.partition("\t")
        program, dot, test = key.partition(".")
        if not tab or not reason.strip():
            raise HarnessError(f"{where}: expected program.test<TAB>reason: {line!r}")
        if not dot or not program or not test or key != key.strip():
            raise HarnessError(f"{where}: {key!r} is not program.test")
        if key in out:
            raise HarnessError(f"{where}: {key} is listed twice (first at {out[key].origin})")
        out[key] = ExpectedSkip(program, test, reason.strip(), where)
    return list(out.values())


def load(repo: Path) -> list[ExpectedSkip]:
    path = repo / SKIPS
    if not path.exists():
        raise HarnessError(f"{path} is missing: every expected skip must be listed there")
    return parse(path.read_text(), str(SKIPS))


def test_name(suite: TestResult, leaf: TestResult) -> str:
    """The name a skip entry matches: WHOLE_PROGRAM for a program that skipped as a whole."""
    return WHOLE_PROGRAM if leaf is suite else leaf.name


@dataclass
class Review:
    listed: list[tuple[str, str, ExpectedSkip]] = field(default_factory=list)
    unlisted: list[tuple[str, str]] = field(default_factory=list)  # key, the test's reason
    stale: list[ExpectedSkip] = field(default_factory=list)  # listed, ran, never skipped

    def lines(self) -> list[str]:
        out = [f"SKIPPED {key} ({why or 'no reason given'}): NOT LISTED in {SKIPS}"
               for key, why in self.unlisted]
        out += [f"note: {e.key} is listed in {SKIPS} ({e.origin}) but did not skip"
                for e in self.stale]
        return out

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            "listed": [{"test": k, "reason": why, "entry": e.reason, "origin": e.origin}
                       for k, why, e in self.listed],
            "unlisted": [{"test": k, "reason": why} for k, why in self.unlisted],
            "stale": [{"entry": e.key, "origin": e.origin} for e in self.stale],
        }


def review(suites: list[TestResult], expected: list[ExpectedSkip]) -> Review:
    """Sort every skip by whether an entry lists it; an unlisted one becomes UNLISTED.

    The program row of a program with an unlisted skip fails too.
    """
    out = Review()
    used: set[str] = set()
    ran = {s.name for s in suites}
    for suite in suites:
        for leaf in suite.leaves():
            if leaf.status is not Status.SKIPPED:
                continue
            name = test_name(suite, leaf)
            key = f"{suite.name}.{name}"
            entry = next((e for e in expected if e.matches(suite.name, name)), None)
            if entry is not None:
                used.add(entry.key)
                out.listed.append((key, leaf.reason, entry))
                continue
            out.unlisted.append((key, leaf.reason))
            leaf.reason = f"{leaf.reason or 'no reason given'} (skip NOT LISTED in {SKIPS})"
            leaf.status = Status.UNLISTED
            if leaf is not suite and suite.status in (Status.PASSED, Status.SKIPPED):
                suite.status = Status.FAILED
    out.stale = [e for e in expected if e.program in ran and e.key not in used]
    return out
