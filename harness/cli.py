"""python -m harness COMMAND [options]: wire the stages together, like kunit.py.

Each command has its own options and one handler in COMMANDS; the stages are
in session.py, the verdict in verdict.py and printer.py.  A failure the user
must act on is one line and exit status 2; so is an unexpected exception,
whose traceback goes to a log file, never to the terminal.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import bench, deps, plant, printer, report, series, source, suite, vm, vmshell
from harness.errors import HarnessError
from harness.layout import PROFILES, REPO, Layout, default_layout
from harness.session import Options, Session, exclusive
from harness.testfilter import TestFilter

Handler = Callable[[Session, argparse.Namespace], int]


# --- the handlers ------------------------------------------------------------------------

def cmd_deps(s: Session, args: argparse.Namespace) -> int:
    s.deps()
    return 0


def cmd_source(s: Session, args: argparse.Namespace) -> int:
    s.source()
    return 0


def cmd_config(s: Session, args: argparse.Namespace) -> int:
    s.config()
    return 0


def cmd_build(s: Session, args: argparse.Namespace) -> int:
    s.build()
    return 0


def _tests(s: Session) -> list[vm.GuestTest]:
    only = s.opts.only
    tests = suite.guest_tests(s.layout, deps.venv_python(s.layout), only)
    if only is not None:
        names = [t.name for t in tests] + (["kunit"] if only.wants("kunit") else [])
        if not names:
            raise HarnessError(f"T={only.glob} matches no program (nor any test of one)")
        print(f"[filter] {only.glob}: {', '.join(names)}", flush=True)
    return tests


def _run_and_judge(s: Session, tests: list[vm.GuestTest]) -> int:
    outcome = s.run(tests)
    return s.verdict(tests, vm.diagnose(outcome), outcome.console)


def cmd_run(s: Session, args: argparse.Namespace) -> int:
    return _run_and_judge(s, _tests(s))


def cmd_vmtest(s: Session, args: argparse.Namespace) -> int:
    s.prepare()
    planted = [plant.guest_test(s.layout)] if s.opts.plant else []
    return _run_and_judge(s, planted + _tests(s))


def cmd_parse(s: Session, args: argparse.Namespace) -> int:
    results = Path(args.results) if args.results else s.layout.results_root / "latest"
    if not (results / "guest").is_dir():
        raise HarnessError(f"{results} is not a results folder (it has no guest/)")
    s.results = results.resolve()
    s.meta.update(report.recorded_meta(results))  # what the run knew: base, series, accel
    tests = [vm.GuestTest(p.stem, "", 0) for p in sorted((results / "guest").glob("*.rc"))]
    return s.verdict(tests)


def cmd_vmrun(s: Session, args: argparse.Namespace) -> int:
    if not args.cmd:
        raise HarnessError("vmrun needs a command: make vmrun CMD='...'")
    if not s.layout.bzimage.exists() or args.rebuild:
        s.prepare()
    tests = [vm.GuestTest(suite.VMRUN, f"cd {s.layout.repo} && {args.cmd}", args.timeout)]
    outcome = s.run(tests)
    out = s.results / "guest" / f"{suite.VMRUN}.out"
    if out.exists():
        sys.stdout.write(out.read_text(errors="replace"))
    return s.verdict(tests, vm.diagnose(outcome), outcome.console)


def cmd_vmshell(s: Session, args: argparse.Namespace) -> int:
    if not s.layout.bzimage.exists() or args.rebuild:
        s.prepare()
    return vmshell.run(s.layout, s.request([]), deps.venv_python(s.layout))


def cmd_bench(s: Session, args: argparse.Namespace) -> int:
    s.prepare("bench")
    tests = bench.guest_tests(s.layout)
    if not tests:
        raise HarnessError(f"no benchmark programs in {s.layout.selftests_out}/bench")
    outcome = s.run(tests)
    problem = vm.diagnose(outcome)
    tables = bench.collect(s.results / "guest", tests)
    path = bench.save(tables, s.meta, s.results)
    print()
    print(bench.render(tables))
    print(f"saved: {path}")
    failed = bench.failed(s.results / "guest", tests) if not problem else ["vm"]
    if failed or not tables:
        print(f"benchmark run incomplete ({problem or ', '.join(failed) or 'no table'}); "
              f"logs: {s.results}")
        return 1
    return 0


def cmd_check_series(s: Session, args: argparse.Namespace) -> int:
    s.deps()
    with exclusive(s.layout):  # it builds in build/src and obj-<profile>: the whole run
        s.source()
        s.config()
        return series.check(s.layout, s.log("check-series"))


def cmd_export_patches(s: Session, args: argparse.Namespace) -> int:
    for name in source.export_patches(s.layout):
        print(name)
    return 0


def cmd_reset_source(s: Session, args: argparse.Namespace) -> int:
    source.reset_source(s.layout)
    print(f"{s.layout.src} reset to base; the next run applies patches/")
    return 0


# --- the command table ---------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    handler: Handler
    help: str
    options: tuple[str, ...] = ()  # option groups, see _add_options
    locks: bool = False  # holds the build lock for the whole command


COMMANDS: dict[str, Command] = {
    "deps": Command(cmd_deps, "check (and as root install) packages and the venv",
                    ("install",)),
    "source": Command(cmd_source, "fetch the base, apply patches/ in build/src",
                      ("profile",), locks=True),
    "config": Command(cmd_config, "merge configs/ into the profile's .config",
                      ("profile",), locks=True),
    "build": Command(cmd_build, "build the kernel, headers and selftests",
                     ("profile",), locks=True),
    "run": Command(cmd_run, "boot the built kernel and run the tests (no build)",
                   ("profile", "vm", "filter")),
    "parse": Command(cmd_parse, "re-read a results folder and print its verdict",
                     ("profile", "results")),
    "vmtest": Command(cmd_vmtest, "deps, source, config, build, run: the whole pipeline",
                      ("profile", "install", "vm", "filter", "plant")),
    "vmrun": Command(cmd_vmrun, "run one shell command in the test kernel",
                     ("profile", "install", "vm", "cmd")),
    "vmshell": Command(cmd_vmshell, "an interactive shell in the test kernel",
                       ("profile", "install", "vm", "rebuild")),
    "bench": Command(cmd_bench, "run selftests/bench in the test kernel",
                     ("profile", "install", "vm")),
    "check-series": Command(cmd_check_series, "checkpatch, uapi, sparse, man pages, bisect",
                            ("profile", "install")),
    "export-patches": Command(cmd_export_patches, "write build/src's series to patches/",
                              locks=True),
    "reset-source": Command(cmd_reset_source, "drop build/src's series; the next run reapplies",
                            locks=True),
}


def _add_options(p: argparse.ArgumentParser, groups: tuple[str, ...]) -> None:
    env = os.environ
    if "profile" in groups:
        p.add_argument("--profile", default=env.get("PROFILE") or "default", choices=PROFILES)
    if "install" in groups:
        p.add_argument("--no-install", action="store_true",
                       help="only check the Debian packages, never apt-get install")
    if "vm" in groups:
        p.add_argument("--accel", default=env.get("VMTEST_ACCEL") or "auto",
                       help="auto (probe), kvm or tcg")
    if "filter" in groups:
        p.add_argument("-T", "--filter", default=env.get("T") or "", metavar="GLOB",
                       help="run only program[.test] matching GLOB, e.g. 'ring_test.*loss*'")
    if "plant" in groups:
        p.add_argument("--plant", default=env.get("PLANT") or "", choices=["", *plant.KINDS],
                       help="leak: a debug kernel with a module that leaks (must fail)")
    if "results" in groups:
        p.add_argument("--results", default="", help="a results folder (default: latest)")
    if "cmd" in groups:
        p.add_argument("--cmd", default="", help="the shell command to run")
        p.add_argument("--timeout", type=int, default=600, help="seconds")
    if "cmd" in groups or "rebuild" in groups:
        p.add_argument("--rebuild", action="store_true", help="build first")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        _add_options(sub.add_parser(name, help=command.help, description=command.help),
                     command.options)
    return top


def _options(args: argparse.Namespace) -> Options:
    glob = getattr(args, "filter", "")
    kind = getattr(args, "plant", "")
    return Options(args.command, "debug" if kind else getattr(args, "profile", "default"),
                   getattr(args, "accel", "auto"), TestFilter(glob) if glob else None,
                   getattr(args, "no_install", False), kind)


def _layout(opts: Options) -> Layout:
    return plant.layout(REPO, opts.plant) if opts.plant else default_layout(opts.profile)


def _crash_log(exc: BaseException) -> Path:
    """Where an unexpected exception's traceback goes."""
    folder = default_layout().logs
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        folder = Path(os.environ.get("TMPDIR", "/tmp"))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"harness-error-{stamp}.log"
    path.write_text("".join(traceback.format_exception(exc)))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = COMMANDS[args.command]
    opts = _options(args)
    s: Session | None = None
    try:
        s = Session(_layout(opts), opts)
        with contextlib.ExitStack() as stack:
            if command.locks:
                stack.enter_context(exclusive(s.layout))
            return command.handler(s, args)
    except HarnessError as exc:
        printer.error(str(exc))
        return 2
    except KeyboardInterrupt:
        where = f"; logs so far in {s.results}" if s is not None else ""
        printer.error(f"interrupted{where}")
        return 130
    except Exception as exc:  # a bug in the harness: one line, never a traceback
        printer.error(f"internal error in the harness: {type(exc).__name__}: {exc} "
                      f"(traceback: {_crash_log(exc)})")
        return 2
