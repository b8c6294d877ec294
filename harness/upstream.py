"""Upstream's selftests for what the series touches, built from build/src and run in the VM.

tools/testing/selftests/filesystems/mount-notify (fanotify mount events) and
filesystems/statmount (statmount() and listmount()) are the regression suite
for the mount code the series changes.  Each is built with its own Makefile
(lib.mk) against the headers installed in obj/hdr, into obj/upstream/, and runs
in the same VM as the project's programs, each with a writable / of its own
(harness/guest/writable-root.sh); their KTAP lands in the verdict table.

A test of theirs that cannot run in the lean VM still counts (as a skip) and is
listed, with why, in selftests/upstream-skips.txt: one ``program.test<TAB>reason``
a line, where program and test are the table's names (the test part of a
whole-program skip, "1..0 # SKIP", is ``*``).  review_skips() tells listed
skips from unlisted ones, and listed entries that no longer skip.
"""
from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.build import jobs
from harness.errors import HarnessError
from harness.ktap import Status, TestResult
from harness.layout import Layout
from harness.proc import StageResult, Timer, run_logged

SUITES = ("filesystems/mount-notify", "filesystems/statmount")
# Upstream's tests expect a writable / (statmount_test_ns makes its folders there); the
# guest's / is the host's, read-only.  This runs each in a throwaway overlay of it.
WRITABLE_ROOT = Path("harness") / "guest" / "writable-root.sh"
SKIPS = Path("selftests") / "upstream-skips.txt"
TIMEOUT = 300
WHOLE_PROGRAM = "*"
_STAMP = ".vmtest-inputs"
_GEN_PROGS = re.compile(r"^TEST_GEN_PROGS\s*(:=|\+=|\?=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Program:
    suite: str  # folder under tools/testing/selftests
    name: str  # the program, and its row in the verdict table
    path: Path  # where the build puts it


def guest_command(layout: Layout, program: Program) -> str:
    return (f"bash {shlex.quote(str(layout.repo / WRITABLE_ROOT))} "
            f"{shlex.quote(str(program.path))}")


def selftests_dir(layout: Layout) -> Path:
    return layout.src / "tools" / "testing" / "selftests"


def out_dir(layout: Layout) -> Path:
    return layout.obj / "upstream"


def gen_progs(makefile: str) -> list[str]:
    """The programs a kselftest Makefile builds and runs (TEST_GEN_PROGS, in order)."""
    names: list[str] = []
    for line in makefile.splitlines():
        if m := _GEN_PROGS.match(line):
            if m.group(1) != "+=":
                names = []
            names += [n for n in m.group(2).split() if n not in names]
    return names


def programs(layout: Layout) -> list[Program]:
    out: list[Program] = []
    for suite in SUITES:
        makefile = selftests_dir(layout) / suite / "Makefile"
        if not makefile.exists():
            raise HarnessError(f"{makefile} is missing: upstream's {suite} selftests are gone "
                               "from the base; update harness/upstream.py")
        names = gen_progs(makefile.read_text())
        if not names:
            raise HarnessError(f"{makefile} names no TEST_GEN_PROGS")
        out += [Program(suite, n, out_dir(layout) / suite / n) for n in names]
    return out


def _inputs(layout: Layout) -> list[Path]:
    """Everything the programs are built from: their folders, kselftest, the uapi headers."""
    tests = selftests_dir(layout)
    roots = [layout.headers / "include", layout.src / "tools" / "include" / "uapi"]
    roots += [tests / suite for suite in SUITES]
    files = [p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file()]
    for suite in SUITES:  # shared helpers (../utils.c) sit next to the suites
        files += [p for p in (tests / suite).parent.iterdir() if p.is_file()]
    files += [p for p in tests.iterdir() if p.is_file()]  # kselftest*.h, lib.mk
    return sorted(set(files))


def inputs_hash(layout: Layout) -> str:
    digest = hashlib.sha256()
    for path in _inputs(layout):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build(layout: Layout, log: Path) -> StageResult:
    """Build every upstream program; nothing to do when no input changed."""
    timer = Timer()
    progs = programs(layout)
    stamp = out_dir(layout) / _STAMP
    digest = inputs_hash(layout)
    if (stamp.exists() and stamp.read_text().strip() == digest
            and all(p.path.exists() for p in progs)):
        return StageResult("upstream", timer.elapsed(), f"{len(progs)} programs, unchanged")
    stamp.unlink(missing_ok=True)
    for suite in SUITES:
        out = out_dir(layout) / suite
        out.mkdir(parents=True, exist_ok=True)
        # -B: lib.mk does not track headers; the stamp above decides when to rebuild.
        run_logged(["make", "-B", "-C", selftests_dir(layout) / suite, f"-j{jobs()}",
                    f"OUTPUT={out}", f"KHDR_INCLUDES=-isystem {layout.headers / 'include'}",
                    "all"], log, f"upstream selftests {suite}")
    missing = [p.name for p in progs if not p.path.exists()]
    if missing:
        raise HarnessError(f"the upstream selftests build made no {', '.join(missing)}", log)
    stamp.write_text(digest + "\n")
    return StageResult("upstream", timer.elapsed(), f"{len(progs)} programs built")


# --- expected skips ---------------------------------------------------------------

@dataclass(frozen=True)
class ExpectedSkip:
    program: str
    test: str  # WHOLE_PROGRAM for "1..0 # SKIP"
    reason: str
    origin: str  # file:line

    @property
    def key(self) -> str:
        return f"{self.program}.{self.test}"


def parse_skips(text: str, origin: str) -> dict[str, ExpectedSkip]:
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
    return out


def load_skips(layout: Layout) -> dict[str, ExpectedSkip]:
    path = layout.repo / SKIPS
    return parse_skips(path.read_text(), str(SKIPS)) if path.exists() else {}


def skip_key(suite: TestResult, leaf: TestResult) -> str:
    return f"{suite.name}.{WHOLE_PROGRAM if leaf is suite else leaf.name}"


@dataclass
class SkipReview:
    listed: list[tuple[str, str, ExpectedSkip]]  # key, the test's own reason, the entry
    unlisted: list[tuple[str, str]]  # key, the test's own reason
    stale: list[ExpectedSkip]  # listed, ran, and did not skip

    def lines(self) -> list[str]:
        out = [f"SKIPPED {key} ({why or 'no reason given'}): expected, {entry.reason}"
               for key, why, entry in self.listed]
        out += [f"SKIPPED {key} ({why or 'no reason given'}): NOT LISTED in {SKIPS}"
                for key, why in self.unlisted]
        out += [f"note: {e.key} is listed in {SKIPS} ({e.origin}) but did not skip"
                for e in self.stale]
        return out


def review_skips(suites: list[TestResult], names: set[str],
                 expected: dict[str, ExpectedSkip]) -> SkipReview:
    """Sort the skips of the upstream programs ``names`` by whether the file lists them."""
    review = SkipReview([], [], [])
    ran: set[str] = set()
    for suite in suites:
        if suite.name not in names:
            continue
        for leaf in suite.leaves():
            key = skip_key(suite, leaf)
            ran.add(key)
            if leaf.status is not Status.SKIPPED:
                continue
            if key in expected:
                review.listed.append((key, leaf.reason, expected[key]))
            else:
                review.unlisted.append((key, leaf.reason))
    for key, entry in expected.items():
        if key in ran and key not in {k for k, _, _ in review.listed}:
            review.stale.append(entry)
    return review
