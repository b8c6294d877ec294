"""A KCIDB v5.3 report of a run (kcidb.json beside results.json and junit.xml).

One checkout (the Debian base and the series' hash), one build (the profile
and its kernel config) and one test per program and per result, with a
status, a duration where the guest measured one (programs), and a log excerpt;
each kernel splat is a failed test under ``kernel_log``.  Checked against the
kcidb-io package's v5.3 schema.  Pure but for validate()'s import.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.ktap import Status, TestResult
from harness.report import RunReport

FILE = "kcidb.json"
ORIGIN = "watch_queue"
VERSION = {"major": 5, "minor": 3}
EXCERPT = 16 * 1024
_STATUS = {Status.PASSED: "PASS", Status.XFAIL: "PASS", Status.FAILED: "FAIL",
           Status.CRASHED: "ERROR", Status.SKIPPED: "SKIP", Status.UNLISTED: "FAIL"}
_BAD = re.compile(r"[^a-zA-Z0-9_-]+")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def path(*parts: str) -> str:
    """A KCIDB test path: dot-separated, each part [a-zA-Z0-9_-]+."""
    out = []
    for part in parts:
        out += [_BAD.sub("_", p).strip("_") or "_" for p in part.split(".")]
    return ".".join(out)


def _excerpt(lines: list[str]) -> str:
    text = "\n".join(lines).replace("\0", "")
    return text[-EXCERPT:]


def _seconds(outdir: Path, name: str) -> float | None:
    f = outdir / "guest" / f"{name}.seconds"
    try:
        return max(0.0, float(f.read_text().strip()))
    except (OSError, ValueError):
        return None


def _test(build_id: str, test_path: str, status: Status, log: list[str],
          reason: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"build_id": build_id, "id": f"{build_id}:{test_path}",
                           "origin": ORIGIN, "path": test_path, "status": _STATUS[status]}
    if log:
        out["log_excerpt"] = _excerpt(log)
    if reason:
        out["comment"] = reason.replace("\0", "")
    if status is Status.UNLISTED:
        out["misc"] = {"skipped": True, "expected_skip": False}
    return out


def _program(build_id: str, outdir: Path, suite: TestResult) -> list[dict[str, Any]]:
    prog = _test(build_id, path(suite.name), suite.status, suite.log[-200:], suite.reason)
    seconds = _seconds(outdir, suite.name)
    if seconds is not None:
        prog["duration"] = seconds
    tests = [prog]
    if suite.subtests:
        seen: set[str] = set()
        for leaf in suite.leaves():
            p = path(suite.name, leaf.name)
            while p in seen:
                p += "_"
            seen.add(p)
            tests.append(_test(build_id, p, leaf.status, leaf.log[-200:], leaf.reason))
    return tests


def build(report: RunReport, outdir: Path) -> dict[str, Any]:
    meta = report.meta
    series = meta.get("series_sha256", "")
    checkout_id = f"{ORIGIN}:{series[:16] or 'unknown'}-{path(meta.get('base', 'base'))}"
    checkout: dict[str, Any] = {
        "id": checkout_id, "origin": ORIGIN,
        "tree_name": meta.get("base", "").split(" ")[0] or "linux",
        "git_commit_name": f"{meta.get('base', 'unknown base')} + watch_queue series",
        "patchset_hash": series if _HEX64.match(series) else "",
        "misc": {k: meta[k] for k in ("base", "base_suite", "kernel", "series", "patches")
                 if k in meta},
    }
    if _HEX40.match(meta.get("series_head", "")):
        checkout["git_commit_hash"] = meta["series_head"]
    if meta.get("started"):
        checkout["start_time"] = meta["started"]
    build_id = f"{ORIGIN}:{outdir.name}"
    build: dict[str, Any] = {
        "id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
        "architecture": "x86_64", "config_name": meta.get("profile", "default"),
        "status": "PASS",
        "misc": {"profile": meta.get("profile", "default"),
                 "accel": meta.get("accel", "")},
    }
    config = outdir / "kernel.config"
    if config.exists():
        build["config_url"] = config.resolve().as_uri()
    tests: list[dict[str, Any]] = []
    for suite in report.suites:
        tests += _program(build_id, outdir, suite)
    for n, sp in enumerate(report.splats, 1):
        tests.append(_test(build_id, path("kernel_log", f"{sp.kind}_{n}"), Status.FAILED,
                           [sp.title, *sp.trace], f"{sp.where}: {sp.title}"))
    return {"version": VERSION, "checkouts": [checkout], "builds": [build], "tests": tests}


def validate(data: dict[str, Any]) -> str:
    """"" if the kcidb-io v5.3 schema accepts the data, else why not."""
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
    from kcidb_io.schema import V5_3  # type: ignore[import-untyped]

    try:
        V5_3.validate_exactly(data)
    except ValidationError as exc:
        return f"{exc.message} at {'/'.join(str(p) for p in exc.absolute_path)}"
    return ""


def check_file(path: Path) -> str:
    """validate() on a written kcidb.json; "" also when kcidb-io is not installed."""
    try:
        return validate(json.loads(path.read_text()))
    except ImportError:
        return ""


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"
