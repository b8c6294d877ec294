"""What the harness prints: stage lines, the VM's progress and the verdict (kunit_printer)."""
from __future__ import annotations

import sys
from pathlib import Path

from harness import report
from harness.proc import StageResult
from harness.report import RunReport


def stage(res: StageResult) -> None:
    print(f"[{res.stage}] {res.detail} ({res.elapsed:.1f}s)", flush=True)


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def verdict(rep: RunReport, timings: list[StageResult], results: Path, problem: str = "",
            console: Path | None = None) -> None:
    """The table, each failure, unlisted skip and splat, and the count line last."""
    print()
    print("".join(report.summary(rep).splitlines(keepends=True)[:-1]), end="")
    if timings:
        print("where the time went: " + ", ".join(
            f"{t.stage} {t.elapsed:.0f}s" for t in timings))
    if problem:
        print(f"VM problem: {problem} (console log: {console or results / 'console.log'})")
    print(f"logs and results: {results}")
    print(rep.counts().line(), flush=True)
