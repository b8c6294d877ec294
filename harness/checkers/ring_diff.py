# SPDX-License-Identifier: GPL-2.0
"""Differential checker: the real /dev/watch_queue ring against the model.

    python3 -m harness.checkers.ring_diff [--seed S] [--ops N] [--pages P] [--subtest NAME]

In the guest, the C driver selftests/drivers/ring_diff_driver performs the
seeded operations on the real ring (inject, consume, take_loss, filter
changes, hostile tails, scribbles) and writes a trace of them and of every
byte of the mapping that changed; harness/checkers/ring_replay.py replays the
trace through harness/ring_model.py and compares the WHOLE mapping after
EVERY operation.  Output is KTAP; a mismatch prints the seed, the failing
operation and a `# rerun:` line that reproduces it.

The replay is pure Python and slow under TCG, so the run can be split:
    --record            guest: only run the driver, into --trace-dir
                        (default $VMTEST_RESULTS/ring_diff.trace)
    --replay DIR        host: replay what --record wrote, print the KTAP
replay_results() does the host half for a results folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from harness.checkers.ktap_out import KtapWriter

if TYPE_CHECKING:
    from harness.checkers.ring_replay import Result

# The guest half (--record) imports no more than it needs: Python's start-up
# is seconds under TCG.  The model, the replay and the layout come in lazily.

DEVICE = "/dev/watch_queue"
DRIVER = "drivers/ring_diff_driver"
META = "meta.json"
TRACE_DIR = "ring_diff.trace"  # in the results folder, beside ring_diff.out
KSFT_SKIP = 4
DEFAULT_OPS = 100_000
DRIVER_TIMEOUT = 300


@dataclass(frozen=True)
class Subtest:
    name: str
    nr_pages: int
    hostile: bool = False


def default_subtests(pages: int | None) -> list[Subtest]:
    if pages is not None:
        return [Subtest(f"ring_{pages}page", pages),
                Subtest(f"ring_hostile_{pages}page", pages, hostile=True)]
    return [Subtest("ring_1page", 1), Subtest("ring_2page", 2),
            Subtest("ring_4page", 4), Subtest("ring_hostile_2page", 2, hostile=True)]


@dataclass
class Recorded:
    """One subtest as the driver ran it (meta.json)."""

    name: str
    nr_pages: int
    hostile: bool
    ops: int
    trace: str  # file name in the trace folder
    rc: int
    stderr: str
    seconds: float


@dataclass
class Recording:
    seed: int
    selftests: str  # $VMTEST_SELFTESTS in the guest, for the rerun line
    subtests: list[Recorded]


def locate_driver(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    selftests = os.environ.get("VMTEST_SELFTESTS")
    if selftests:
        return Path(selftests) / DRIVER
    from harness.layout import default_layout
    root = default_layout().selftests_out
    return root / DRIVER


# --- guest: run the driver -------------------------------------------------------------


def record(driver: Path, folder: Path, seed: int, subtests: Sequence[Subtest], per_sub: int,
           device: str = DEVICE) -> Recording:
    """Run the driver once per subtest; write the traces and meta.json into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    done: list[Recorded] = []
    for sub in subtests:
        trace = f"{sub.name}.trace"
        cmd = [str(driver), "--seed", str(seed), "--name", sub.name, "--ops", str(per_sub),
               "--pages", str(sub.nr_pages), "--out", str(folder / trace), "--device", device]
        if sub.hostile:
            cmd.append("--hostile")
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DRIVER_TIMEOUT,
                                  check=False)
            rc, err = proc.returncode, proc.stderr.strip()
        except OSError as e:
            rc, err = 127, f"cannot run {driver}: {e.strerror}"
        except subprocess.TimeoutExpired:
            rc, err = 124, f"{driver} timed out after {DRIVER_TIMEOUT}s"
        done.append(Recorded(sub.name, sub.nr_pages, sub.hostile, per_sub, trace, rc, err,
                             round(time.monotonic() - start, 2)))
    rec = Recording(seed, os.environ.get("VMTEST_SELFTESTS", ""), done)
    (folder / META).write_text(json.dumps(asdict(rec), indent=1) + "\n")
    return rec


def load_recording(folder: Path) -> Recording:
    raw = json.loads((folder / META).read_text())
    return Recording(raw["seed"], raw["selftests"],
                     [Recorded(**s) for s in raw["subtests"]])


# --- host or guest: replay and report ---------------------------------------------------


def rerun_command(rec: Recording, sub: Recorded, ops: int) -> str:
    env = f"VMTEST_SELFTESTS={rec.selftests} " if rec.selftests else ""
    return (f"make vmrun CMD='{env}PYTHONPATH=. python3 -m harness.checkers.ring_diff "
            f"--seed {rec.seed} --pages {sub.nr_pages} --subtest {sub.name} --ops {ops}'")


def report_failure(ktap: KtapWriter, rec: Recording, sub: Recorded, res: Result) -> None:
    from harness.checkers.ring_replay import describe
    f = res.failure
    assert f is not None
    ops = res.ops
    op_text = ("fresh ring" if f.step < 0 else
               describe(ops[f.step + 1]) if f.step < sub.ops else "final drain/take_loss")
    ktap.diag(f"{sub.name}: MISMATCH seed={rec.seed} step={f.step} ({op_text}): {f.what}")
    prefix = min(max(f.step + 1, 0), sub.ops)
    ktap.diag(f"shortest failing prefix: {prefix} ops (the mapping is compared after "
              f"every operation)")
    ktap.diag(f"rerun: {rerun_command(rec, sub, prefix)}")
    for i in range(max(0, f.step - 4), f.step + 1):
        if i + 1 < len(ops):
            ktap.diag(f"  op {i}: {describe(ops[i + 1])}")
    for line in f.diff:
        ktap.diag(line)


def report(rec: Recording, folder: Path, out: TextIO | None = None) -> bool:
    """KTAP for a recording: one test per subtest."""
    # The model takes the constants of the kernel the driver ran on: on the
    # host, the uapi.json beside the selftests the guest used.
    from harness import uapi
    if (not os.environ.get(uapi.ENV_FILE) and rec.selftests
            and (Path(rec.selftests) / uapi.FILE_NAME).exists()):
        os.environ[uapi.ENV_FILE] = str(Path(rec.selftests) / uapi.FILE_NAME)
    from harness.checkers.ring_replay import replay
    from harness.ring_trace import TraceError, decode
    ktap = KtapWriter(out)
    ktap.header(len(rec.subtests))
    per_sub = rec.subtests[0].ops if rec.subtests else 0
    ktap.diag(f"ring_diff: seed={rec.seed} ops/subtest={per_sub}")
    all_ok = True
    total = 0
    for n, sub in enumerate(rec.subtests, 1):
        if sub.rc == KSFT_SKIP:
            ktap.result(n, sub.name, True, sub.stderr.splitlines()[-1] if sub.stderr
                        else "driver skipped")
            continue
        ok = False
        if sub.rc != 0:
            ktap.diag(f"{sub.name}: driver exited {sub.rc}: {sub.stderr or 'no message'}")
        else:
            start = time.monotonic()
            try:
                res = replay(decode((folder / sub.trace).read_bytes()))
            except (OSError, TraceError) as e:
                ktap.diag(f"{sub.name}: no trace to replay: {e}")
                ktap.result(n, sub.name, False)
                all_ok = False
                continue
            took = time.monotonic() - start
            if res.failure is None:
                ok = True
                total += sub.ops
                ktap.diag(f"{sub.name}: {sub.ops} ops, driver {sub.seconds:.1f}s, replay "
                          f"{took:.1f}s: {res.summary}")
            else:
                report_failure(ktap, rec, sub, res)
        ktap.result(n, sub.name, ok)
        all_ok &= ok
    ktap.diag(f"ops={total}")
    return all_ok


def replay_results(results: Path, name: str = "ring_diff") -> int:
    """The host half for a results folder: replay NAME.trace/, write NAME.out and NAME.rc.

    What the guest printed is kept as NAME.guest.out.  A guest that failed
    (timed out, crashed) keeps its exit status."""
    folder = results / TRACE_DIR.replace("ring_diff", name)
    out, rc_file = results / f"{name}.out", results / f"{name}.rc"
    if out.exists():
        out.replace(results / f"{name}.guest.out")
    guest_rc = int(rc_file.read_text().strip() or "-1") if rc_file.exists() else None
    try:
        rec = load_recording(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:
        rc = _fail(out, name, f"no trace to replay in {folder}: {e}")
    else:
        try:
            with out.open("w") as f:
                rc = 0 if report(rec, folder, f) else 1
        except Exception as e:  # a broken trace or no uapi.json: a failure, not a crash
            rc = _fail(out, name, f"replay of {folder} failed: {e}")
    if guest_rc is not None:
        rc_file.write_text(f"{guest_rc if guest_rc not in (0, 1) else rc}\n")
    return rc


def _fail(out: Path, name: str, why: str) -> int:
    out.write_text(f"KTAP version 1\n1..1\n# {why}\nnot ok 1 {name}\n")
    return 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ring_diff", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ops", type=int, default=DEFAULT_OPS,
                   help="total, spread over the subtests")
    p.add_argument("--pages", type=int, help="run only this ring size (plus hostile)")
    p.add_argument("--subtest", help="run only the subtest of this name")
    p.add_argument("--driver", help=f"the C driver (default: $VMTEST_SELFTESTS/{DRIVER})")
    p.add_argument("--device", default=DEVICE)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--record", action="store_true",
                      help="guest half: run the driver into --trace-dir, judge nothing")
    mode.add_argument("--replay", metavar="DIR", help="host half: replay DIR, print KTAP")
    p.add_argument("--trace-dir", help="where --record writes (default: "
                   f"$VMTEST_RESULTS/{TRACE_DIR})")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    if args.replay:
        folder = Path(args.replay)
        return 0 if report(load_recording(folder), folder, out) else 1
    subtests = default_subtests(args.pages)
    if args.subtest:
        subtests = [s for s in subtests if s.name == args.subtest]
        if not subtests:
            print(f"ring_diff: no subtest {args.subtest!r}", file=sys.stderr)
            return 2
    per_sub = max(0, args.ops // len(subtests))
    driver = locate_driver(args.driver)
    if args.record:
        base = args.trace_dir or os.environ.get("VMTEST_RESULTS")
        if not base:
            print("ring_diff: --record needs --trace-dir or $VMTEST_RESULTS", file=sys.stderr)
            return 2
        folder = Path(base) if args.trace_dir else Path(base) / TRACE_DIR
        rec = record(driver, folder, args.seed, subtests, per_sub, args.device)
        ktap = KtapWriter(out)
        ktap.header(len(rec.subtests))
        for n, sub in enumerate(rec.subtests, 1):
            ktap.diag(f"{sub.name}: driver exit {sub.rc} in {sub.seconds:.1f}s {sub.stderr}")
            ktap.result(n, sub.name, False)
        ktap.diag(f"recorded in {folder}; the verdict is the host's: "
                  f"python3 -m harness.checkers.ring_diff --replay {folder}")
        return 0 if all(s.rc in (0, KSFT_SKIP) for s in rec.subtests) else 1
    import tempfile
    with tempfile.TemporaryDirectory(prefix="ring_diff.") as tmp:
        folder = Path(args.trace_dir or tmp)
        rec = record(driver, folder, args.seed, subtests, per_sub, args.device)
        return 0 if report(rec, folder, out) else 1


if __name__ == "__main__":
    sys.exit(main())
