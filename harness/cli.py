"""Wire the stages together: python -m harness STAGE [options].

Stages: deps, source, config, build, run, parse, vmtest (all of them),
vmrun, bench, check-series, export-patches, reset-source.
"""
from __future__ import annotations

import argparse
import collections.abc
import contextlib
import datetime
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness import (
    bench,
    build,
    debian,
    deps,
    kconfig,
    report,
    series,
    source,
    splat,
    suite,
    upstream,
    vm,
)
from harness.errors import HarnessError
from harness.ktap import Status, TestResult
from harness.layout import PROFILES, Layout, default_layout
from harness.proc import StageResult


def _say(res: StageResult) -> None:
    print(f"[{res.stage}] {res.detail} ({res.elapsed:.1f}s)", flush=True)


class Session:
    """One invocation: a layout, a results folder, the stage timings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.layout: Layout = default_layout(args.profile)
        self.args = args
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.results = self.layout.results_root / f"{stamp}-{args.stage}-{args.profile}"
        self.timings: list[StageResult] = []
        self.meta: dict[str, str] = {"profile": args.profile, "stage": args.stage}
        base = source.recorded_base(self.layout)  # vmrun and run do not refresh the tree
        if base:
            self.meta.update(base=base, base_suite=debian.SUITE)

    def log(self, name: str) -> Path:
        self.results.mkdir(parents=True, exist_ok=True)
        return self.results / f"{name}.log"

    def stage(self, res: StageResult) -> None:
        self.timings.append(res)
        _say(res)

    def deps(self) -> None:
        self.stage(deps.ensure(self.layout, self.log("deps"), install=not self.args.no_install))

    def source(self) -> None:
        res, info = source.prepare(self.layout, self.log("source"))
        self.meta.update(base=info.base(), base_suite=debian.SUITE,
                         kernel=info.kernel_version, series=info.series_hash,
                         patches=str(info.patches))
        self.stage(res)

    def config(self) -> None:
        self.stage(kconfig.configure(self.layout, self.log("config")))

    def build(self, target: str = "all") -> None:
        self.stage(build.build_kernel(self.layout, self.log("build")))
        self.stage(build.build_selftests(self.layout, self.log("build"), target))
        if target == "all":
            self.stage(upstream.build(self.layout, self.log("build")))

    def run(self, tests: list[vm.GuestTest], echo: bool = True) -> vm.VmOutcome:
        vng = str(self.layout.repo / ".venv" / "bin" / "vng")
        accel, why = vm.choose_accel(self.layout, self.layout.bzimage, vng, self.args.accel)
        self.meta["accel"] = accel
        print(f"[run] {accel} ({why}); {len(tests)} test program(s); "
              f"results in {self.results}", flush=True)
        guest = self.results / "guest"
        shutil.rmtree(guest, ignore_errors=True)
        debug = self.layout.profile == "debug"
        req = vm.VmRequest(self.layout.bzimage, guest, tests, accel,
                           memory="2G" if debug else "1G", vng=vng,
                           boot_timeout=240 if debug else 120)
        outcome = vm.run(req, self.results / "console.log", echo=echo)
        self.stage(StageResult("run", outcome.elapsed,
                               f"boot to first test line {outcome.boot_seconds or 0:.1f}s"))
        if outcome.boot_seconds is not None:
            self.meta["boot_seconds"] = f"{outcome.boot_seconds:.1f}"
        return outcome

    def verdict(self, tests: list[vm.GuestTest], outcome: vm.VmOutcome) -> int:
        guest = self.results / "guest"
        suites = suite.collect(guest, tests)
        log_file = guest / "dmesg.txt"
        if not log_file.exists():
            log_file = outcome.console
        splats = splat.scan(log_file.read_text(errors="replace").splitlines())
        leaks = guest / "kmemleak.txt"
        if leaks.exists():
            splats += splat.scan(leaks.read_text(errors="replace").splitlines())
        problem = vm.diagnose(outcome)
        if problem:
            suites.append(_vm_failure(problem))
        if splats:
            _decode(self.layout, log_file, self.results / "splats-decoded.txt")
        rep = report.RunReport(suites, splats, self.meta)
        report.write(rep, self.results)
        _link_latest(self.layout, self.results)
        print()
        print("".join(report.summary(rep).splitlines(keepends=True)[:-1]), end="")
        for line in _upstream_skips(self.layout, suites):
            print(line)
        print("where the time went: " + ", ".join(
            f"{t.stage} {t.elapsed:.0f}s" for t in self.timings))
        if problem:
            print(f"VM problem: {problem} (console log: {outcome.console})")
        print(f"logs and results: {self.results}")
        print(rep.counts().line())
        return 0 if rep.ok else 1


def _upstream_skips(layout: Layout, suites: list[TestResult]) -> list[str]:
    """One line per skip of an upstream program: listed in the expected-skips file or not."""
    try:
        names = {p.name for p in upstream.programs(layout)}
    except HarnessError:
        names = set()
    return upstream.review_skips(suites, names, upstream.load_skips(layout)).lines()


def _vm_failure(problem: str) -> TestResult:
    return TestResult("vm", Status.FAILED, problem,
                      subtests=[TestResult("guest ran to completion", Status.FAILED, problem)])


def _decode(layout: Layout, log_file: Path, out: Path) -> None:
    script = layout.src / "scripts" / "decode_stacktrace.sh"
    vmlinux = layout.obj / "vmlinux"
    if not script.exists() or not vmlinux.exists():
        return
    with log_file.open() as fin, out.open("w") as fout:
        subprocess.run(["bash", str(script), str(vmlinux), str(layout.src)], stdin=fin,
                       stdout=fout, stderr=subprocess.STDOUT, timeout=300, check=False)
    print(f"decoded stack traces: {out}")


def _link_latest(layout: Layout, results: Path) -> None:
    latest = layout.results_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(results.name)


def _prepare(s: Session, target: str = "all") -> None:
    """deps, source, config and build, holding the build lock; the VM run needs none."""
    s.deps()
    with _exclusive(s.layout):
        s.source()
        s.config()
        s.build(target)


def cmd_vmtest(s: Session) -> int:
    _prepare(s)
    tests = suite.guest_tests(s.layout, deps.venv_python(s.layout))
    outcome = s.run(tests)
    return s.verdict(tests, outcome)


def cmd_vmrun(s: Session) -> int:
    if not s.args.cmd:
        raise HarnessError("vmrun needs a command: make vmrun CMD='...'")
    if not s.layout.bzimage.exists() or s.args.rebuild:
        _prepare(s)
    tests = [vm.GuestTest("vmrun", f"cd {s.layout.repo} && {s.args.cmd}", s.args.timeout)]
    outcome = s.run(tests)
    out = s.results / "guest" / "vmrun.out"
    if out.exists():
        sys.stdout.write(out.read_text(errors="replace"))
    return s.verdict(tests, outcome)


def cmd_bench(s: Session) -> int:
    _prepare(s, "bench")
    tests = bench.guest_tests(s.layout)
    if not tests:
        raise HarnessError(f"no benchmark programs in {s.layout.selftests_out}/bench")
    outcome = s.run(tests)
    tables = bench.collect(s.results / "guest", tests)
    path = bench.save(tables, s.meta, s.results)
    print()
    print(bench.render(tables))
    print(f"saved: {path}")
    failed = [t.name for t in tests
              if (s.results / "guest" / f"{t.name}.rc").read_text().strip() != "0"
              ] if not vm.diagnose(outcome) else ["vm"]
    if failed or not tables:
        print(f"benchmark run incomplete ({vm.diagnose(outcome) or ', '.join(failed)}); "
              f"logs: {s.results}")
        return 1
    return 0


def cmd_parse(s: Session) -> int:
    results = Path(s.args.results) if s.args.results else s.layout.results_root / "latest"
    tests = [vm.GuestTest(p.stem, "", 0) for p in sorted((results / "guest").glob("*.rc"))]
    s.results = results
    outcome = vm.VmOutcome(0, results / "console.log", 0.0, boot_seconds=0.0)
    return s.verdict(tests, outcome)


@contextlib.contextmanager
def _exclusive(layout: Layout) -> collections.abc.Iterator[None]:
    """One harness run at a time may change build/ (the tree, .config, objects)."""
    layout.build.mkdir(parents=True, exist_ok=True)
    with (layout.build / ".harness.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another harness run using {layout.build} ...", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["deps", "source", "config", "build", "run", "parse",
                                          "vmtest", "vmrun", "bench", "check-series",
                                          "export-patches", "reset-source"])
    parser.add_argument("--profile", default=os.environ.get("PROFILE") or "default",
                        choices=PROFILES)
    parser.add_argument("--accel", default=os.environ.get("VMTEST_ACCEL") or "auto",
                        help="auto (probe), kvm or tcg")
    parser.add_argument("--no-install", action="store_true",
                        help="deps: only check, never apt-get install")
    parser.add_argument("--cmd", default="", help="vmrun: the shell command to run")
    parser.add_argument("--timeout", type=int, default=600, help="vmrun: seconds")
    parser.add_argument("--rebuild", action="store_true", help="vmrun: build first")
    parser.add_argument("--results", default="", help="parse: a results folder")
    args = parser.parse_args(argv)
    s = Session(args)
    try:
        with contextlib.ExitStack() as stack:
            # These take the lock themselves, only while they change build/.
            if args.stage not in ("deps", "parse", "check-series", "vmtest", "vmrun",
                                  "bench"):
                stack.enter_context(_exclusive(s.layout))
            return _dispatch(s, args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; logs so far in {s.results}", file=sys.stderr)
        return 130


def _dispatch(s: Session, args: argparse.Namespace) -> int:
    stage = args.stage
    if stage == "deps":
        s.deps()
    elif stage == "source":
        s.source()
    elif stage == "config":
        s.config()
    elif stage == "build":
        s.build()
    elif stage == "run":
        tests = suite.guest_tests(s.layout, deps.venv_python(s.layout))
        return s.verdict(tests, s.run(tests))
    elif stage == "parse":
        return cmd_parse(s)
    elif stage == "vmtest":
        return cmd_vmtest(s)
    elif stage == "vmrun":
        return cmd_vmrun(s)
    elif stage == "bench":
        return cmd_bench(s)
    elif stage == "check-series":
        with _exclusive(s.layout):  # it builds in build/src and obj-<profile>: the whole run
            s.source()
            s.config()
            return series.check(s.layout, s.log("check-series"))
    elif stage == "export-patches":
        for name in source.export_patches(s.layout):
            print(name)
    elif stage == "reset-source":
        source.reset_source(s.layout)
        print(f"{s.layout.src} reset to base; the next run applies patches/")
    return 0
