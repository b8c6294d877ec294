"""Find kernel splats in a console or dmesg log (pure: lines in, findings out)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# (kind, pattern).  Order matters: the first pattern that matches names the splat.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("KASAN", re.compile(r"BUG: KASAN: ")),
    ("UBSAN", re.compile(r"UBSAN: ")),
    # kmemleak.txt heads each object "unreferenced object 0x..." or, for a per-CPU
    # allocation, "unreferenced object (percpu) 0x...".
    ("kmemleak", re.compile(r"kmemleak: \d+ new suspected memory leaks"
                            r"|unreferenced object (?:\(percpu\) )?0x")),
    ("lockdep", re.compile(r"WARNING: (possible (circular|recursive) locking"
                           r"|inconsistent lock state|suspicious RCU usage"
                           r"|possible irq lock inversion|bad unlock balance)"
                           r"|INFO: possible (circular|recursive) locking")),
    ("soft lockup", re.compile(r"watchdog: BUG: soft lockup")),
    ("hung task", re.compile(r"INFO: task .* blocked for more than \d+ seconds")),
    ("RCU stall", re.compile(r"rcu: INFO: .* detected stalls|self-detected stall on CPU")),
    ("sleep in atomic", re.compile(r"BUG: sleeping function called from invalid context")),
    ("Oops", re.compile(r"Oops: |general protection fault|BUG: unable to handle"
                        r"|BUG: kernel NULL pointer dereference")),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("BUG", re.compile(r"(kernel BUG at|BUG: )")),
    ("WARNING", re.compile(r"WARNING: (CPU: \d+ PID: \d+|at )")),
]

_END = re.compile(r"---\[ end trace|^\s*</TASK>|Kernel Offset:|---\[ end Kernel panic")
_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
# The panic an Oops or a warning causes (panic_on_oops, panic_on_warn) is part of it.
_CONSEQUENCE = re.compile(r"Kernel panic - not syncing: (Fatal exception|panic_on_warn set"
                          r"|Attempted to kill init)")
# How many lines after a report its consequence may come (Kernel Offset, RIP lines...).
_CONSEQUENCE_LINES = 30


@dataclass
class Splat:
    kind: str
    line: int
    title: str
    trace: list[str] = field(default_factory=list)
    source: str = "console.log"  # the file ``line`` counts in
    stamp: str = ""  # the kernel's timestamp, to tell one report seen in two logs

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def scan(lines: list[str], max_trace: int = 80, source: str = "console.log") -> list[Splat]:
    """Return one Splat per report, with the lines that follow it (its trace).

    One crash is one splat: "BUG: kernel NULL pointer dereference", the "Oops:"
    line that follows and the "Kernel panic - not syncing: Fatal exception" it
    causes are a single Oops.
    """
    found: list[Splat] = []
    current: Splat | None = None
    last_end = 0
    for number, raw in enumerate(lines, 1):
        stamp = _TS.match(raw)
        line = _TS.sub("", raw.rstrip("\r\n"))
        kind = _classify(line)
        if (kind == "panic" and current is None and found and _CONSEQUENCE.search(line)
                and number - last_end <= _CONSEQUENCE_LINES):
            current = found[-1]  # the panic this report caused: part of it
        if kind is not None and not (current and _continues(current, kind)):
            current = Splat(kind, number, line.strip(), source=source,
                            stamp=stamp.group(1) if stamp else "")
            found.append(current)
            continue
        if current is not None:
            if len(current.trace) < max_trace:
                current.trace.append(line)
            if _END.search(line):
                current, last_end = None, number
    return found


def merge(primary: list[Splat], secondary: list[Splat]) -> list[Splat]:
    """The splats of two logs of one boot (dmesg, console), each report once."""
    seen = {(s.kind, s.title, s.stamp) for s in primary}
    return primary + [s for s in secondary if (s.kind, s.title, s.stamp) not in seen]


def _classify(line: str) -> str | None:
    for kind, pattern in _PATTERNS:
        if pattern.search(line):
            return kind
    return None


def _continues(current: Splat, kind: str) -> bool:
    """A report restates "BUG:"/"WARNING:"/"Oops:" lines inside itself; a panic inside an
    open report is what it caused."""
    return kind == "panic" or (kind in ("BUG", "WARNING", "Oops") and current.kind in (
        "KASAN", "UBSAN", "lockdep", "soft lockup", "sleep in atomic", "Oops", "panic", "BUG"))
