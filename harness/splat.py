"""Find kernel splats in a console or dmesg log (pure: lines in, findings out)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# (kind, pattern).  Order matters: the first pattern that matches names the splat.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("KASAN", re.compile(r"BUG: KASAN: ")),
    ("UBSAN", re.compile(r"UBSAN: ")),
    ("kmemleak", re.compile(r"kmemleak: \d+ new suspected memory leaks|unreferenced object 0x")),
    ("lockdep", re.compile(r"WARNING: (possible (circular|recursive) locking"
                           r"|inconsistent lock state|suspicious RCU usage"
                           r"|possible irq lock inversion|bad unlock balance)"
                           r"|INFO: possible (circular|recursive) locking")),
    ("soft lockup", re.compile(r"watchdog: BUG: soft lockup")),
    ("hung task", re.compile(r"INFO: task .* blocked for more than \d+ seconds")),
    ("RCU stall", re.compile(r"rcu: INFO: .* detected stalls|self-detected stall on CPU")),
    ("sleep in atomic", re.compile(r"BUG: sleeping function called from invalid context")),
    ("Oops", re.compile(r"Oops: |general protection fault|BUG: unable to handle")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("BUG", re.compile(r"(kernel BUG at|BUG: )")),
    ("WARNING", re.compile(r"WARNING: (CPU: \d+ PID: \d+|at )")),
]

_END = re.compile(r"---\[ end trace|^\s*</TASK>|Kernel Offset:|---\[ end Kernel panic")
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")


@dataclass
class Splat:
    kind: str
    line: int
    title: str
    trace: list[str] = field(default_factory=list)


def scan(lines: list[str], max_trace: int = 80) -> list[Splat]:
    """Return one Splat per report, with the lines that follow it (its trace)."""
    found: list[Splat] = []
    current: Splat | None = None
    for number, raw in enumerate(lines, 1):
        line = _TS.sub("", raw.rstrip("\r\n"))
        kind = _classify(line)
        if kind is not None and not (current and _continues(current, kind)):
            current = Splat(kind, number, line.strip())
            found.append(current)
            continue
        if current is not None:
            if len(current.trace) < max_trace:
                current.trace.append(line)
            if _END.search(line):
                current = None
    return found


def _classify(line: str) -> str | None:
    for kind, pattern in _PATTERNS:
        if pattern.search(line):
            return kind
    return None


def _continues(current: Splat, kind: str) -> bool:
    """A KASAN or lockdep report restates "BUG:"/"WARNING:" lines inside itself."""
    return kind in ("BUG", "WARNING", "Oops") and current.kind in (
        "KASAN", "UBSAN", "lockdep", "soft lockup", "sleep in atomic", "Oops", "panic")
