"""One invocation of the harness: a layout, a results folder, the stages it ran and
their timings.  cli.py picks the stages; each one is a call here."""
from __future__ import annotations

import collections.abc
import contextlib
import datetime
import fcntl
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import (
    build,
    debian,
    deps,
    kcidb,
    kconfig,
    kunit,
    plant,
    printer,
    report,
    skips,
    source,
    suite,
    upstream,
    verdict,
    vm,
)
from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import StageResult, Timer
from harness.testfilter import TestFilter


@dataclass(frozen=True)
class Options:
    """What the command line asked for, beyond the stage."""

    command: str
    profile: str = "default"
    accel: str = "auto"
    only: TestFilter | None = None
    no_install: bool = False
    plant: str = ""  # PLANT=leak (harness/plant.py)


class Session:
    def __init__(self, layout: Layout, opts: Options) -> None:
        self.layout = layout
        self.opts = opts
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.results = layout.results_root / f"{stamp}-{opts.command}-{layout.profile}"
        self.timings: list[StageResult] = []
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.meta: dict[str, str] = {"profile": layout.profile, "stage": opts.command,
                                     "started": started}
        base = source.recorded_base(layout)  # vmrun and run do not refresh the tree
        if base:
            self.meta.update(base=base, base_suite=debian.SUITE)

    def log(self, name: str) -> Path:
        self.results.mkdir(parents=True, exist_ok=True)
        return self.results / f"{name}.log"

    def stage(self, res: StageResult) -> None:
        self.timings.append(res)
        printer.stage(res)

    # --- the stages ------------------------------------------------------------------

    def deps(self) -> None:
        self.stage(deps.ensure(self.layout, self.log("deps"), install=not self.opts.no_install))

    def source(self) -> None:
        res, info = source.prepare(self.layout, self.log("source"))
        self.meta.update(base=info.base(), base_suite=debian.SUITE,
                         kernel=info.kernel_version, series=info.series_hash,
                         patches=str(info.patches),
                         series_sha256=source.series_digest(source.series_files(self.layout)),
                         series_head=source.head(self.layout))
        self.stage(res)

    def config(self, extra: str = "") -> None:
        self.stage(kconfig.configure(self.layout, self.log("config"), extra))

    def build(self, target: str = "all") -> None:
        self.stage(build.build_kernel(self.layout, self.log("build")))
        self.stage(build.build_selftests(self.layout, self.log("build"), target))
        if target == "all":
            self.stage(upstream.build(self.layout, self.log("build")))

    def prepare(self, target: str = "all") -> None:
        """deps, source, config and build, holding the build lock; the VM run needs none."""
        self.deps()
        with exclusive(self.layout):
            self.source()
            self.config(plant.LEAK_CONFIG if self.opts.plant else "")
            self.build(target)
            if self.opts.plant:
                timer = Timer()
                build.make(self.layout, ["modules"], self.log("build"), "modules")
                self.stage(StageResult("modules", timer.elapsed(), f"{plant.LEAK_MODULE}"))

    def vng(self) -> str:
        return str(self.layout.repo / ".venv" / "bin" / "vng")

    def request(self, tests: list[vm.GuestTest], append: tuple[str, ...] = ()) -> vm.VmRequest:
        accel, why = vm.choose_accel(self.layout, self.layout.bzimage, self.vng(),
                                     self.opts.accel)
        self.meta["accel"] = accel
        print(f"[run] {accel} ({why}); {len(tests)} test program(s); "
              f"results in {self.results}", flush=True)
        suite.precompile(self.layout)  # for whatever Python the guest runs from harness/
        guest = self.results / "guest"
        shutil.rmtree(guest, ignore_errors=True)
        debug = self.layout.profile == "debug"
        return vm.VmRequest(self.layout.bzimage, guest, tests, accel,
                            memory="2G" if debug else "1G", vng=self.vng(),
                            boot_timeout=240 if debug else 120, append=append)

    def run(self, tests: list[vm.GuestTest], echo: bool = True) -> vm.VmOutcome:
        self.results.mkdir(parents=True, exist_ok=True)
        config = self.layout.obj / ".config"
        if config.exists():
            shutil.copyfile(config, self.results / verdict.KERNEL_CONFIG)
        append: tuple[str, ...] = ()
        only = self.opts.only
        if only is not None and only.wants(kunit.PROGRAM) and only.test != "*":
            append = (kunit.filter_arg(only.test),)
        outcome = vm.run(self.request(tests, append), self.results / "console.log", echo=echo)
        self.stage(StageResult("run", outcome.elapsed,
                               f"boot to first test line {outcome.boot_seconds or 0:.1f}s"))
        if outcome.boot_seconds is not None:
            self.meta["boot_seconds"] = f"{outcome.boot_seconds:.1f}"
        return outcome

    def verdict(self, tests: list[vm.GuestTest], problem: str = "",
                console: Path | None = None) -> int:
        req = verdict.VerdictRequest(self.results, tests, skips.load(self.layout.repo),
                                     kunit=verdict.kunit_expected(self.results),
                                     problem=problem, only=self.opts.only, meta=self.meta)
        rep = verdict.build(req)
        if rep.splats:
            decode(self.layout, self.results, rep, self.results / "splats-decoded.txt")
        report.write(rep, self.results)
        link_latest(self.layout, self.results)
        printer.verdict(rep, self.timings, self.results, problem, console)
        invalid = kcidb.check_file(self.results / kcidb.FILE)
        if invalid:
            raise HarnessError(f"{kcidb.FILE} is not valid KCIDB v5.3: {invalid}")
        return 0 if rep.ok else 1


def decode(layout: Layout, results: Path, rep: report.RunReport, out: Path) -> None:
    """Run the kernel's decode_stacktrace.sh over each log a splat was found in."""
    script = layout.src / "scripts" / "decode_stacktrace.sh"
    vmlinux = layout.obj / "vmlinux"
    if not script.exists() or not vmlinux.exists():
        return
    with out.open("w") as fout:
        for name in dict.fromkeys(sp.source for sp in rep.splats):
            fout.write(f"=== {name}\n")
            fout.flush()
            with (results / name).open() as fin:
                subprocess.run(["bash", str(script), str(vmlinux), str(layout.src)], stdin=fin,
                               stdout=fout, stderr=subprocess.STDOUT, timeout=300, check=False)
    print(f"decoded stack traces: {out}")


def link_latest(layout: Layout, results: Path) -> None:
    latest = layout.results_root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    if results.parent == layout.results_root:
        latest.symlink_to(results.name)


@contextlib.contextmanager
def exclusive(layout: Layout) -> collections.abc.Iterator[None]:
    """One harness run at a time may change build/ (the tree, .config, objects)."""
    layout.build.mkdir(parents=True, exist_ok=True)
    with (layout.build / ".harness.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another harness run using {layout.build} ...", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


__all__ = ["HarnessError", "Options", "Session", "exclusive"]
