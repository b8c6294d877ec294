"""Aggregate parsed results and splats; write results.json, junit.xml and the summary."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from harness.ktap import Status, TestResult
from harness.skips import Review
from harness.splat import Splat


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, status: Status) -> None:
        bucket = status.counts_as
        setattr(self, bucket, getattr(self, bucket) + 1)

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


@dataclass
class RunReport:
    suites: list[TestResult]
    splats: list[Splat] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    skips: Review = field(default_factory=Review)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> Counts:
        counts = Counts()
        for suite in self.suites:
            for leaf in suite.leaves():
                counts.add(leaf.status)
        for _ in self.splats:
            counts.add(Status.FAILED)
        return counts

    @property
    def ok(self) -> bool:
        """Nothing failed: a skip no entry of the expected-skips list names is a failure."""
        return self.counts().failed == 0


def _leaf_dict(suite: str, leaf: TestResult) -> dict[str, str]:
    return {"suite": suite, "name": leaf.name, "status": leaf.status.value,
            "reason": leaf.reason}


def to_json(report: RunReport) -> str:
    counts = report.counts()
    data = {
        "meta": report.meta,
        "counts": {"passed": counts.passed, "failed": counts.failed,
                   "skipped": counts.skipped},
        "tests": [_leaf_dict(s.name, leaf) for s in report.suites for leaf in s.leaves()],
        "splats": [{"kind": sp.kind, "file": sp.source, "line": sp.line, "title": sp.title,
                    "trace": sp.trace} for sp in report.splats],
        "skips": report.skips.to_json(),
        "notes": report.notes,
    }
    return json.dumps(data, indent=2) + "\n"


def to_junit(report: RunReport) -> str:
    root = ET.Element("testsuites", name="vmtest")
    for suite in [*report.suites, _splat_suite(report.splats)]:
        leaves = suite.leaves() if suite.subtests else []
        counts = Counts()
        for leaf in leaves:
            counts.add(leaf.status)
        el = ET.SubElement(root, "testsuite", name=suite.name, tests=str(len(leaves)),
                           failures=str(counts.failed), skipped=str(counts.skipped))
        for leaf in leaves:
            case = ET.SubElement(el, "testcase", classname=suite.name, name=leaf.name)
            if leaf.status.counts_as == "failed":
                fail = ET.SubElement(case, "failure", message=leaf.reason or leaf.status.value)
                fail.text = "\n".join(leaf.log[-50:])
            elif leaf.status is Status.SKIPPED:  # UNLISTED counts as failed above
                ET.SubElement(case, "skipped", message=leaf.reason)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _splat_suite(splats: list[Splat]) -> TestResult:
    suite = TestResult("kernel-log")
    for sp in splats:
        suite.subtests.append(TestResult(f"{sp.kind} at {sp.where}",
                                         Status.FAILED, sp.title, log=sp.trace))
    return suite


def summary(report: RunReport) -> str:
    rows = []
    for suite in report.suites:
        counts = Counts()
        for leaf in suite.leaves():
            counts.add(leaf.status)
        rows.append((suite.name, suite.status.value, counts))
    width = max([len(r[0]) for r in rows] + [12])
    vwidth = max([len(r[1]) for r in rows] + [8])
    out = [f"{'test program':<{width}}  {'verdict':<{vwidth}} {'pass':>5} {'fail':>5} "
           f"{'skip':>5}"]
    for name, verdict, counts in rows:
        out.append(f"{name:<{width}}  {verdict:<{vwidth}} {counts.passed:>5} "
                   f"{counts.failed:>5} {counts.skipped:>5}")
    for suite in report.suites:
        for leaf in suite.leaves():
            if leaf.status.counts_as == "failed" and leaf.status is not Status.UNLISTED:
                why = f": {leaf.reason}" if leaf.reason else ""
                out.append(f"FAILED {suite.name}: {leaf.name} [{leaf.status.value}]{why}")
    out += report.skips.lines()
    for sp in report.splats:
        out.append(f"SPLAT {sp.kind} ({sp.where}): {sp.title}")
    out += [f"note: {note}" for note in report.notes]
    out.append(report.counts().line())
    return "\n".join(out) + "\n"


def recorded_meta(outdir: Path) -> dict[str, str]:
    """The meta of an earlier results.json in ``outdir`` ({} if none or unreadable)."""
    try:
        meta = json.loads((outdir / "results.json").read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def write(report: RunReport, outdir: Path) -> None:
    from harness import kcidb  # kcidb builds on this module

    (outdir / "results.json").write_text(to_json(report))
    (outdir / kcidb.FILE).write_text(kcidb.dumps(kcidb.build(report, outdir)))
    (outdir / "junit.xml").write_text(to_junit(report))
    (outdir / "summary.txt").write_text(summary(report))
