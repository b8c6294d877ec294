"""Upstream's selftests for what the series touches, built from build/src and run in the VM.

tools/testing/selftests/filesystems/mount-notify (fanotify mount events) and
filesystems/statmount (statmount() and listmount()) are the regression suite
for the mount code the series changes.  Each is built with its own Makefile
(lib.mk) against the headers installed in obj/hdr, into obj/upstream/, and runs
in the same VM as the project's programs, each with a writable / of its own
(harness/guest/writable-root.sh); their KTAP lands in the verdict table.

A test of theirs that cannot run in the lean VM still counts (as a skip) and is
listed, with why, in selftests/expected-skips.txt (harness/skips.py), like
every other program's.
"""
from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.build import jobs
from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import StageResult, Timer, run_logged

SUITES = ("filesystems/mount-notify", "filesystems/statmount")
# Upstream's tests expect a writable / (statmount_test_ns makes its folders there); the
# guest's / is the host's, read-only.  This runs each in a throwaway overlay of it.
WRITABLE_ROOT = Path("harness") / "guest" / "writable-root.sh"
TIMEOUT = 300
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
