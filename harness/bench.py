"""make bench: run the benchmark programs in one VM and tabulate what they print.

Each program in selftests/bench/ prints result lines
``BENCH<TAB>table<TAB>row<TAB>column<TAB>value`` (anything else is kept in its
log only); the harness assembles one table per ``table``.  Benchmarks are not
tests: nothing here passes or fails on a number.
"""
from __future__ import annotations

import json
import shlex
from collections import defaultdict
from pathlib import Path

from harness.layout import Layout
from harness.vm import GuestTest

BENCH_TIMEOUT = 900


def bench_programs(layout: Layout) -> list[Path]:
    """One program per selftests/bench/*.c: a binary whose source is gone is not run."""
    out = layout.selftests_out / "bench"
    return [out / c.stem for c in sorted((layout.selftests / "bench").glob("*.c"))
            if (out / c.stem).is_file()]


def guest_tests(layout: Layout) -> list[GuestTest]:
    """One group: the benchmarks run one after the other, never beside each other."""
    return [GuestTest(f"bench_{p.name}", shlex.quote(str(p)), BENCH_TIMEOUT, group="bench")
            for p in bench_programs(layout)]


Tables = dict[str, dict[str, dict[str, str]]]


def parse(lines: list[str]) -> Tables:
    tables: Tables = defaultdict(lambda: defaultdict(dict))
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 5 and parts[0] == "BENCH":
            _, table, row, column, value = parts
            tables[table][row][column] = value
    return {t: dict(rows) for t, rows in tables.items()}


def render(tables: Tables) -> str:
    out = []
    for table, rows in tables.items():
        columns: list[str] = []
        for values in rows.values():
            columns += [c for c in values if c not in columns]
        width = max(len(r) for r in rows) if rows else 4
        widths = [max(len(c), *(len(v.get(c, "")) for v in rows.values())) for c in columns]
        out.append(f"## {table}")
        heads = [c.rjust(w) for c, w in zip(columns, widths, strict=True)]
        out.append(" | ".join([" " * width, *heads]))
        for row, values in rows.items():
            cells = [values.get(c, "-").rjust(w) for c, w in zip(columns, widths, strict=True)]
            out.append(" | ".join([row.ljust(width), *cells]))
        out.append("")
    return "\n".join(out)


def collect(results: Path, tests: list[GuestTest]) -> Tables:
    lines: list[str] = []
    for test in tests:
        out = results / f"{test.name}.out"
        if out.exists():
            lines += out.read_text(errors="replace").splitlines()
    return parse(lines)


def save(tables: Tables, meta: dict[str, str], outdir: Path) -> Path:
    text = render(tables)
    header = "\n".join(f"# {k}: {v}" for k, v in sorted(meta.items()))
    path = outdir / "bench.txt"
    path.write_text(header + "\n\n" + text)
    (outdir / "bench.json").write_text(json.dumps({"meta": meta, "tables": tables}, indent=2))
    return path


def failed(results: Path, tests: list[GuestTest]) -> list[str]:
    """The benchmark programs that did not exit 0 (or never reported)."""
    out = []
    for test in tests:
        rc = results / f"{test.name}.rc"
        if not rc.exists() or rc.read_text().strip() != "0":
            out.append(test.name)
    return out
