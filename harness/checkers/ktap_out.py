# SPDX-License-Identifier: GPL-2.0
"""The one KTAP writer of the checkers (harness/ktap.py parses what it writes).

A checker either streams its results (KtapWriter.result as each test ends) or
collects Outcomes and writes them at the end (write_outcomes).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO


def result_line(number: int, name: str, ok: bool, skip: str | None = None) -> str:
    line = f"{'ok' if ok else 'not ok'} {number} {name}"
    return f"{line} # SKIP {skip}" if skip is not None else line


class KtapWriter:
    """KTAP version 1, flushed line by line so a crash loses nothing written."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout

    def header(self, nr_tests: int) -> None:
        self.out.write(f"KTAP version 1\n1..{nr_tests}\n")
        self.out.flush()

    def diag(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.out.write(f"# {line}".rstrip() + "\n")
        self.out.flush()

    def result(self, number: int, name: str, ok: bool, skip: str | None = None) -> None:
        self.out.write(result_line(number, name, ok, skip) + "\n")
        self.out.flush()

    def bail_out(self, reason: str) -> None:
        self.out.write(f"Bail out! {reason}\n")
        self.out.flush()

    def skip_all(self, name: str, reason: str) -> None:
        """The whole program skips: one skipped test named after it."""
        self.header(1)
        self.result(1, name, True, reason)


@dataclass
class Outcome:
    """One test of a checker that reports at the end."""

    name: str
    diags: list[str] = field(default_factory=list)
    failed: bool = False
    ran: bool = False  # a test that never ran fails
    skip: str = ""

    def fail(self, diag: str) -> None:
        self.failed = True
        self.diags.append(diag)


def write_outcomes(outcomes: Sequence[Outcome], prefix: str,
                   out: TextIO | None = None) -> bool:
    """Every outcome as a KTAP result named prefix + name; True if all passed."""
    w = KtapWriter(out)
    w.header(len(outcomes))
    ok_all = True
    for n, o in enumerate(outcomes, 1):
        for d in o.diags:
            w.diag(d)
        if o.skip:
            w.result(n, prefix + o.name, True, o.skip)
        elif o.failed or not o.ran:
            if not o.ran and not o.diags:
                w.diag("not run")
            w.result(n, prefix + o.name, False)
            ok_all = False
        else:
            w.result(n, prefix + o.name, True)
    return ok_all
