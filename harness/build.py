"""Build the kernel (out of tree, ccache, fixed timestamp), its headers and the selftests."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import StageResult, Timer, run_logged

_STEP = re.compile(r"^\s{2}([A-Z][A-Z0-9_]*)\s+(\S+)")
_ERROR = re.compile(r"(: (fatal )?error: |: undefined reference to |^make\[\d+\]: \*\*\* )")
BUILD_ENV = {"KBUILD_BUILD_TIMESTAMP": "2000-01-01 00:00:00 UTC",
             "KBUILD_BUILD_USER": "vmtest", "KBUILD_BUILD_HOST": "vmtest",
             "KBUILD_BUILD_VERSION": "1"}


def jobs() -> int:
    return (os.cpu_count() or 1) + 1


def make_env(layout: Layout) -> dict[str, str]:
    env = dict(os.environ, **BUILD_ENV)
    env.setdefault("CCACHE_BASEDIR", str(layout.build))
    env.setdefault("CCACHE_NOHASHDIR", "1")
    return env


def compiler() -> str:
    return "ccache gcc" if shutil.which("ccache") else "gcc"


def first_error(lines: list[str]) -> str:
    for i, line in enumerate(lines):
        if _ERROR.search(line):
            context = [ln for ln in lines[max(0, i - 1):i + 1] if ln.strip()]
            return " | ".join(ln.strip() for ln in context)
    tail = [ln for ln in lines if ln.strip()][-1:]
    return tail[0].strip() if tail else "no output"


class Progress:
    """One status line on a terminal; a line every 30 s otherwise (CI logs)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stdout.isatty()
        self.count = 0
        self.last = 0.0
        self.start = time.monotonic()

    def step(self, target: str) -> None:
        self.count += 1
        now = time.monotonic()
        if self.tty and now - self.last > 0.1:
            line = f"\r[{self.label}] {now - self.start:5.0f}s {self.count:6d} steps  {target}"
            sys.stdout.write(line[:100].ljust(100))
            sys.stdout.flush()
            self.last = now
        elif not self.tty and now - self.last > 30:
            print(f"[{self.label}] {now - self.start:.0f}s, {self.count} steps, at {target}",
                  flush=True)
            self.last = now

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\r" + " " * 100 + "\r")
            sys.stdout.flush()


def make(layout: Layout, targets: list[str], log: Path, label: str,
         src: Path | None = None) -> int:
    """Run kbuild with a progress display; return the number of steps it took."""
    cmd = ["make", "-C", str(src or layout.src), f"O={layout.obj}", f"-j{jobs()}",
           f"CC={compiler()}", *targets]
    log.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(label)
    lines: list[str] = []
    with log.open("a", buffering=1) as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        try:
            proc = subprocess.Popen(cmd, env=make_env(layout), text=True, errors="replace",
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError as exc:
            raise HarnessError("make not found: run `make deps`") from exc
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            lines.append(line)
            if len(lines) > 5000:
                del lines[:1000]
            if m := _STEP.match(line):
                progress.step(m.group(2))
        rc = proc.wait()
    progress.done()
    if rc != 0:
        if any("No space left on device" in ln for ln in lines):
            raise HarnessError(f"{label}: no space left on device under {layout.build}", log)
        raise HarnessError(f"{label} failed: {first_error(lines)}", log)
    return progress.count


def build_kernel(layout: Layout, log: Path) -> StageResult:
    timer = Timer()
    steps = make(layout, ["bzImage"], log, "kernel")
    if not layout.bzimage.exists():
        raise HarnessError(f"kernel build produced no {layout.bzimage}", log)
    install_headers(layout, log)
    return StageResult("build", timer.elapsed(), f"{steps} kbuild steps")


def install_headers(layout: Layout, log: Path) -> None:
    """make headers_install into layout.headers, rewriting only the headers that changed."""
    staged = layout.headers.with_name(layout.headers.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    make(layout, ["headers_install", f"INSTALL_HDR_PATH={staged}"], log, "headers")
    sync_tree(staged, layout.headers)
    shutil.rmtree(staged)


def sync_tree(src: Path, dst: Path) -> int:
    """Make dst hold what src holds, touching only the files that differ.

    headers_install rewrites every header each time; the selftests and upstream's
    programs depend on those headers, so an unchanged header must keep its mtime
    or every rerun rebuilds them all.  Returns how many files changed.
    """
    changed = 0
    wanted = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    for rel in sorted(wanted):
        new, old = src / rel, dst / rel
        if old.is_file() and old.read_bytes() == new.read_bytes():
            continue
        old.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(new, old)
        changed += 1
    if dst.is_dir():
        for p in sorted(dst.rglob("*"), reverse=True):
            if p.is_file() and p.relative_to(dst) not in wanted:
                p.unlink()
                changed += 1
    return changed


_FAILED_TARGET = re.compile(r"\*\*\* \[[^\]]*?:\d+: (\S+)\] Error")


def selftest_programs(layout: Layout) -> list[Path]:
    """Where each selftests/*.c program goes, whether it built or not."""
    return [layout.selftests_out / c.stem for c in sorted(layout.selftests.glob("*.c"))]


def build_selftests(layout: Layout, log: Path, target: str = "all") -> StageResult:
    """Build the C selftests; one that does not compile does not stop the others.

    A program that failed is removed (no stale binary runs in its place); it
    still goes into the VM's list and fails there as "command not found".
    """
    timer = Timer()
    out = layout.selftests_out
    proc = run_logged(["make", "-k", "-C", layout.selftests, f"-j{jobs()}", f"OUT={out}",
                       f"HDR={layout.headers}/include", f"KSRC={layout.src}", target], log,
                      "selftests build", check=False)
    lines = proc.stdout.splitlines()
    failed = sorted({Path(m.group(1)) for line in lines if (m := _FAILED_TARGET.search(line))})
    programs = selftest_programs(layout)
    for path in failed:
        if path in programs:
            path.unlink(missing_ok=True)
    unbuilt = [p.name for p in programs if p in failed]
    if proc.returncode != 0 and (target != "all" or not unbuilt or len(failed) > len(unbuilt)):
        raise HarnessError(f"selftests build failed: {first_error(lines)}", log)
    # `make bench` builds only the benchmarks: count what this target makes.
    built = list_selftests(layout) if target == "all" else list_selftests(layout, "bench")
    count = len(built)
    if count == 0:
        raise HarnessError(f"no {'selftest' if target == 'all' else target} binaries in "
                           f"{out}", log)
    detail = f"{count} {'programs' if target == 'all' else target + ' programs'}"
    if unbuilt:
        detail += f"; {', '.join(unbuilt)} did not build: {first_error(lines)}"
    return StageResult("selftests", timer.elapsed(), detail)


def list_selftests(layout: Layout, sub: str = "") -> list[Path]:
    out = layout.selftests_out / sub if sub else layout.selftests_out
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_file() and os.access(p, os.X_OK)
                  and p.suffix == "")
