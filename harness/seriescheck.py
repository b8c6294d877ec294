"""check-series' checks of the series head beyond checkpatch and the bisect build.

- uapi: every uapi header the series touches compiles in one file together with
  glibc's <fcntl.h>, <sys/mount.h>, <sys/ioctl.h>, <sys/syscall.h> and
  <linux/mount.h>, as C and as C++, under -Wall -Werror, against the headers
  installed from the series head (obj/hdr/include);
- hdrtest: usr/include/Makefile's own header test (alone, twice for the
  include guard, -std=c90 and -std=c++98, headers_check.pl) on the touched
  headers only, instead of CONFIG_UAPI_HEADER_TEST's 1,000 headers in every
  build;
- man pages: patches/man-pages/lint.sh;
- selftests: the in-tree copy the series carries
  (tools/testing/selftests/watch_queue/) is identical to selftests/;
- cover letter: patches/0000-cover-letter.patch counts the patches in its
  subject, lists every patch's subject and names the base version, so it
  cannot silently describe an older series.
Each returns a list of failures, one line each.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from harness.proc import run_logged

GLIBC = ("fcntl.h", "sys/mount.h", "sys/ioctl.h", "sys/syscall.h", "linux/mount.h")
# Generic uapi headers, and x86's (the only architecture the harness builds).
_UAPI = re.compile(r"^(?:arch/x86/)?include/uapi/(.+\.h)$")
# x86 userspace takes its syscall numbers from <asm/unistd.h>, generated from the
# syscall tables; asm-generic/unistd.h is for the generic-table architectures only and
# redefines every __NR_ glibc's x86 <sys/syscall.h> already has, by design.
_X86_SYSCALLS = re.compile(r"^(?:arch/x86/entry/syscalls/syscall_(?:32|64)\.tbl|"
                           r"include/uapi/asm-generic/unistd\.h)$")
IN_TREE_SELFTESTS = Path("tools") / "testing" / "selftests" / "watch_queue"


def uapi_headers(touched: list[str]) -> list[str]:
    """The #include names of the uapi headers among the paths a series touches, as
    x86 userspace includes them."""
    names = {m.group(1) for path in touched if (m := _UAPI.match(path))}
    if any(_X86_SYSCALLS.match(path) for path in touched):
        names.discard("asm-generic/unistd.h")
        names.add("asm/unistd.h")
    return sorted(names)


def uapi_source(headers: list[str], glibc_first: bool) -> str:
    ours = [f"#include <{h}>" for h in headers]
    theirs = [f"#include <{h}>" for h in GLIBC]
    lines = [*theirs, *ours] if glibc_first else [*ours, *theirs]
    return "\n".join(["#ifndef _GNU_SOURCE", "#define _GNU_SOURCE", "#endif", *lines,
                      "int main(void) { return 0; }", ""])


def _first_error(lines: list[str], default: str) -> str:
    """The compiler's first error line, else ``default``."""
    return next((ln for ln in lines if "error" in ln), default).strip()


def compile_uapi(headers: list[str], include: Path, work: Path, log: Path) -> list[str]:
    """Compile the headers with glibc's, both orders, as C and as C++; the failures."""
    if not headers:
        return []
    work.mkdir(parents=True, exist_ok=True)
    failures = []
    for glibc_first in (True, False):
        order = "glibc first" if glibc_first else "uapi first"
        src = work / f"uapi-{'glibc-first' if glibc_first else 'uapi-first'}.c"
        src.write_text(uapi_source(headers, glibc_first))
        for lang, cc in (("C", ["gcc", "-std=gnu11", "-x", "c"]),
                         ("C++", ["g++", "-std=gnu++17", "-x", "c++"])):
            proc = run_logged([*cc, "-Wall", "-Werror", "-fsyntax-only", f"-I{include}", src],
                              log, f"uapi compile test ({lang}, {order})", check=False,
                              env=dict(os.environ, LC_ALL="C"))
            if proc.returncode != 0:
                lines = proc.stdout.strip().splitlines()
                first = _first_error(lines, lines[-1] if lines else "no output")
                failures.append(f"uapi: {', '.join(headers)} do not compile as {lang} with "
                                f"glibc's headers ({order}): {first}")
    return failures


# usr/include/Makefile's flags (UAPI_CFLAGS, KBUILD_USERCFLAGS, hdrtest-flags).
_HDRTEST_C = ["-std=c90", "-Werror=implicit-function-declaration", "-Wall",
              "-Wmissing-prototypes", "-Wstrict-prototypes", "-O2"]
_HDRTEST_CXX = ["-Wall", "-O2", "-std=c++98"]


def hdrtest(headers: list[str], include: Path, srctree: Path, log: Path) -> list[str]:
    """The kernel's uapi header test (cmd_hdrtest) on each header; the failures."""
    flags = ["-fsyntax-only", "-Werror", "-nostdinc", f"-I{include}",
             f"-I{srctree / 'usr' / 'dummy-include'}"]
    failures = []
    for header in headers:
        path = include / header
        if header.startswith("asm-generic/"):
            continue  # "used by asm/*.h, and should not be included directly"
        steps = [("C90", ["gcc", *_HDRTEST_C, *flags, "-x", "c", "/dev/null",
                          "-include", str(path), "-include", str(path)]),
                 ("C++98", ["gcc", *_HDRTEST_CXX, *flags, "-x", "c++", "/dev/null",
                            "-include", str(path)]),
                 ("headers_check.pl", ["perl", str(srctree / "usr" / "include" /
                                                   "headers_check.pl"), str(include),
                                       str(path)])]
        for what, cmd in steps:
            proc = run_logged(cmd, log, f"hdrtest {header} ({what})", check=False,
                              env=dict(os.environ, LC_ALL="C"))
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or (what == "headers_check.pl" and lines):
                first = _first_error(lines, lines[0] if lines else f"exit {proc.returncode}")
                failures.append(f"uapi: {header} fails the kernel's header test ({what}): "
                                f"{first}")
    return failures


def man_lint(script: Path, log: Path) -> list[str]:
    """patches/man-pages/lint.sh; its failure is check-series' failure."""
    if not script.exists():
        return [f"man pages: {script} is missing"]
    proc = run_logged(["sh", script], log, "man-pages lint", check=False)
    if proc.returncode == 0:
        return []
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return [f"man pages: lint.sh exit {proc.returncode}: {lines[0] if lines else 'no output'}"]


def selftests_identical(ours: Path, tree: Path) -> list[str] | None:
    """selftests/*.c and *.h against the series' in-tree copy; None if it carries none."""
    if not tree.is_dir():
        return None
    failures = []
    for path in sorted([*ours.glob("*.c"), *ours.glob("*.h")]):
        theirs = tree / path.name
        if not theirs.exists():
            failures.append(f"selftests: {path.name} is not in {IN_TREE_SELFTESTS}/ of the "
                            "series")
        elif theirs.read_bytes() != path.read_bytes():
            failures.append(f"selftests: {path.name} differs from {IN_TREE_SELFTESTS}/"
                            f"{path.name} in the series")
    return failures


# --- sparse from sid ------------------------------------------------------------------

_WARNING = re.compile(r"^\S+\.[ch]:\d+:\d+: (warning|error): ")


def sparse_findings(output: str) -> list[str]:
    """sparse's warning and error lines in a kbuild log."""
    return [ln.strip() for ln in output.splitlines() if _WARNING.match(ln.strip())]


def sparse_objects(touched: list[str], obj: Path) -> tuple[list[str], list[str]]:
    """(.o targets to check, .c files this config does not build) for the touched .c files."""
    targets, unbuilt = [], []
    for path in sorted(p for p in touched if p.endswith(".c")):
        if path.startswith(("samples/", "tools/", "scripts/", "Documentation/", "usr/")):
            continue
        target = path[:-2] + ".o"
        if (obj / target).exists():
            targets.append(target)
        else:
            unbuilt.append(path)
    return targets, unbuilt


def run_sparse(src: Path, obj: Path, wrapper: Path, targets: list[str], log: Path,
               make: list[str], env: dict[str, str] | None = None) -> list[str]:
    """`make C=2 CHECK=wrapper` on the targets; every sparse warning is a failure.

    C=2, not C=1: C=1 checks only what it recompiles, and after the bisect the
    objects are up to date, so C=1 would check nothing and say nothing.
    """
    if not targets:
        return []
    proc = subprocess.run([*make, "-C", str(src), f"O={obj}", "C=2", f"CHECK={wrapper}",
                           *targets], text=True, capture_output=True, check=False, env=env)
    with log.open("a") as fh:
        fh.write(f"$ make C=2 CHECK={wrapper} {' '.join(targets)}\n{proc.stdout}{proc.stderr}"
                 f"# exit {proc.returncode}\n")
    findings = sparse_findings(proc.stdout + proc.stderr)
    failures = [f"sparse: {line}" for line in findings]
    if proc.returncode != 0 and not findings:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        failures.append(f"sparse: make C=2 failed (exit {proc.returncode}): {tail[0]}")
    return failures


_SUBJECT = re.compile(r"^Subject: (.*(?:\n[ \t].*)*)", re.MULTILINE)


def patch_subject(text: str) -> str:
    """A patch's Subject:, unfolded, without its "[PATCH ...]" prefix."""
    m = _SUBJECT.search(text)
    if not m:
        return ""
    subject = " ".join(m.group(1).split())
    return re.sub(r"^\[[^]]*\]\s*", "", subject)


def cover_letter(cover: Path, patches: list[Path], base_version: str) -> list[str]:
    """The cover letter describes this series: N/N in its subject, every patch's
    subject in its shortlog, the base version in its text."""
    if not cover.exists():
        return [f"cover letter: {cover} is missing"]
    text = cover.read_text(errors="replace")
    failures = []
    m = _SUBJECT.search(text)
    subject = " ".join(m.group(1).split()) if m else ""
    want = len(patches)
    got = re.search(r"\b0+/(\d+)\]", subject)
    if not got or int(got.group(1)) != want:
        failures.append(f"cover letter: its subject {subject!r} does not say 00/{want:02d}")
    flat = " ".join(text.split())
    missing = [p.name for p in patches if patch_subject(p.read_text(errors="replace"))
               not in flat]
    if missing:
        failures.append(f"cover letter: the shortlog lacks the subject of {', '.join(missing)}")
    if base_version and base_version not in text:
        failures.append(f"cover letter: does not name the base version {base_version}")
    return failures
