"""make check-series: checkpatch --strict on every patch, none touches a file Debian's
patches changed, the touched uapi headers compile with glibc's (C and C++), the man
pages lint clean, the in-tree selftests match selftests/, every prefix of the series
builds (incrementally, in build/src), and sparse is quiet on the touched .c files."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from harness import build, seriescheck, sidsparse, source
from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import Timer, git

_TOTAL = re.compile(r"total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?")


def checkpatch(layout: Layout, patch: Path) -> tuple[bool, str]:
    # scripts/spdxcheck.py needs ply and GitPython: the venv has them.
    env = dict(os.environ, PATH=f"{layout.repo / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    # --ignore UNKNOWN_COMMIT_ID: build/src is a tarball committed whole, with no upstream
    # history, so checkpatch cannot find the upstream commits the series' Fixes: tags name.
    # --ignore FILE_PATH_CHANGES: MAINTAINERS is updated in a patch of its own, as review
    # asks; checkpatch only looks at the patch in hand, so it asks about every new file.
    full = subprocess.run(["perl", "scripts/checkpatch.pl", "--strict", "--no-color",
                           "--ignore", "UNKNOWN_COMMIT_ID,FILE_PATH_CHANGES", str(patch)],
                          cwd=layout.src, text=True, capture_output=True, env=env)
    m = _TOTAL.search(full.stdout)
    if not m:
        return False, f"checkpatch gave no verdict: {(full.stderr or full.stdout).strip()[:200]}"
    errors, warnings = int(m.group(1)), int(m.group(2))
    checks = int(m.group(3) or 0)
    ok = errors == 0 and warnings == 0
    detail = f"{errors} errors, {warnings} warnings, {checks} checks"
    if not ok:
        first = next((ln for ln in full.stdout.splitlines()
                      if ln.startswith(("ERROR:", "WARNING:"))), "")
        detail += f": {first}"
    return ok, detail


_DIFF = re.compile(r"^diff --git a/(\S+) b/(\S+)$")
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (\S+)$")


def touched_files(patch_text: str) -> set[str]:
    """Every path a format-patch file changes, both sides of renames included."""
    out: set[str] = set()
    for line in patch_text.splitlines():
        if m := _DIFF.match(line):
            out.update(m.groups())
        elif m := _RENAME.match(line):
            out.add(m.group(1))
    return out


def debian_conflicts(patches: list[Path], debian: list[str]) -> list[tuple[str, str]]:
    """(patch, file) for each file a patch touches that Debian's own patches changed."""
    changed = set(debian)
    return [(patch.name, path) for patch in patches
            for path in sorted(touched_files(patch.read_text(errors="replace")) & changed)]


def _stamp(layout: Layout) -> Path:
    """Which (tree, config) pairs were built in this obj folder."""
    return layout.obj / "vmtest-series-built.txt"


def check(layout: Layout, log: Path) -> int:
    """checkpatch every patch, no patch on a Debian-patched file, every prefix builds."""
    patches = source.series_files(layout)
    failures = []
    for patch in patches:
        ok, detail = checkpatch(layout, patch) if (layout.src / ".git").exists() else (
            False, "no kernel tree")
        print(f"[checkpatch] {patch.name}: {detail}", flush=True)
        if not ok:
            failures.append(f"{patch.name}: checkpatch: {detail}")
    debian = source.debian_files(layout)
    conflicts = debian_conflicts(patches, debian)
    for name, path in conflicts:
        failures.append(f"{name}: touches {path}, which Debian's own patches changed (the "
                        "series must also apply to pristine upstream)")
    touched = f"{len(conflicts)} patched file(s) are" if conflicts else "no patch touches any"
    print(f"[debian] {touched} of the {len(debian)} files Debian's patches changed", flush=True)
    failures += head_checks(layout, log)
    failures += bisect(layout, patches, log)
    failures += sparse(layout, log)
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"check-series: {len(patches)} patch(es), {len(failures)} problem(s); log: {log}")
    return 1 if failures else 0


def touched(layout: Layout) -> list[str]:
    """Every path the series changes, from base to the exported head."""
    head = source.exported_head(layout)
    return git(layout.src, "diff", "--name-only", f"{source.BASE}..{head}").split()


def head_checks(layout: Layout, log: Path) -> list[str]:
    """uapi compile test, man pages lint, in-tree selftests, cover letter: at the
    series head."""
    paths = touched(layout)
    headers = seriescheck.uapi_headers(paths)
    failures = []
    if headers:
        build.install_headers(layout, log)
        failures += seriescheck.hdrtest(headers, layout.headers / "include", layout.src, log)
        failures += seriescheck.compile_uapi(headers, layout.headers / "include",
                                             layout.obj / "uapi-test", log)
    print(f"[uapi] {len(headers)} header(s): the kernel's header test, and with glibc's as C "
          f"and C++: "
          f"{'ok' if not failures else 'FAILED'}", flush=True)
    man = seriescheck.man_lint(layout.patches / "man-pages" / "lint.sh", log)
    print(f"[man-pages] {'lint clean' if not man else man[0]}", flush=True)
    same = seriescheck.selftests_identical(layout.selftests,
                                           layout.src / seriescheck.IN_TREE_SELFTESTS)
    if same is None:
        print(f"[selftests] the series carries no {seriescheck.IN_TREE_SELFTESTS}/ yet",
              flush=True)
    else:
        print(f"[selftests] in-tree copy {'identical' if not same else 'DIFFERS'}", flush=True)
    base = source.recorded_base(layout).split()
    cover = seriescheck.cover_letter(layout.patches / source.COVER_LETTER,
                                     source.series_files(layout), base[-1] if base else "")
    print(f"[cover-letter] {'describes this series' if not cover else cover[0]}", flush=True)
    return failures + man + (same or []) + cover


def sparse(layout: Layout, log: Path) -> list[str]:
    """sid's sparse on the .c files the series touches, at the series head: no warning."""
    targets, unbuilt = seriescheck.sparse_objects(touched(layout), layout.obj)
    if not targets:
        print("[sparse] no touched .c file is built in this config", flush=True)
        return []
    wrapper = sidsparse.ensure(layout, log)
    make = ["make", f"-j{build.jobs()}", f"CC={build.compiler()}"]
    failures = seriescheck.run_sparse(layout.src, layout.obj, wrapper, targets, log, make,
                                      build.make_env(layout))
    skipped = f"; not built here: {', '.join(unbuilt)}" if unbuilt else ""
    print(f"[sparse] {', '.join(targets)}: {len(failures)} warning(s){skipped}", flush=True)
    return failures


def bisect(layout: Layout, patches: list[Path], log: Path) -> list[str]:
    """Build every prefix of the series in build/src itself, into the profile's obj folder.

    The prefixes build incrementally over the objects vmtest uses, so one cold
    build serves both.  build/src must be clean and at the exported series; it
    returns to the series head, with the full .config, and with the old mtime on
    every file whose content is back to what it was, so vmtest (and the other
    profile) rebuild nothing.
    """
    src = layout.src
    head = source.exported_head(layout)
    commits = git(src, "rev-list", "--reverse", f"{source.BASE}..{head}").split()
    if len(commits) != len(patches):
        raise HarnessError(f"{len(patches)} patches but {len(commits)} commits on "
                           f"{src} branch series")
    config = layout.obj / ".config"
    full = layout.obj / ".config.vmtest-full"
    shutil.copy2(config, full)
    config_hash = hashlib.sha256(full.read_bytes()).hexdigest()[:16]
    done = set(_stamp(layout).read_text().split()) if _stamp(layout).exists() else set()
    keys = [f"{git(src, 'rev-parse', c + '^{tree}')}:{config_hash}" for c in commits]
    todo = [i for i, key in enumerate(keys) if key not in done]
    if todo and todo[-1] != len(commits) - 1:
        todo.append(len(commits) - 1)  # end on the head, so the objects match the tree
    for i, patch in enumerate(patches):
        if i not in todo:
            print(f"[bisect] {patch.name}: built before", flush=True)
    if not todo:
        full.unlink()
        return []
    names = sorted(set(git(src, "log", "--format=", "--name-only",
                           f"{source.BASE}..{head}").split()))
    before = source.snapshot(src, head, names)
    failures = []
    head_built = False
    source.begin_bisect(layout, head)
    try:
        for i in todo:
            patch, commit = patches[i], commits[i]
            git(src, "checkout", "-q", "--detach", commit)
            shutil.copyfile(full, config)  # later patches add options: olddefconfig drops them
            timer = Timer()
            try:
                build.make(layout, ["olddefconfig"], log, "olddefconfig")
                steps = build.make(layout, ["bzImage"], log, f"build {patch.name}")
            except HarnessError as exc:
                failures.append(f"{patch.name}: does not build: {exc.message}")
                print(f"[bisect] {patch.name}: FAILED {exc.message}", flush=True)
                head_built = False
                continue
            head_built = i == len(commits) - 1
            done.add(keys[i])
            _stamp(layout).write_text("\n".join(sorted(done)) + "\n")
            print(f"[bisect] {patch.name}: builds ({steps} kbuild steps, "
                  f"{timer.elapsed():.1f}s)", flush=True)
    finally:
        git(src, "checkout", "-q", "series")
        if head_built and config.read_bytes() == full.read_bytes():
            shutil.copy2(full, config)  # auto.conf already matches it: keep the old mtime
        else:
            shutil.copyfile(full, config)  # newer than auto.conf: kbuild syncs it
        full.unlink()
        if head_built:
            # The last build compiled the head; files back at their pre-bisect content
            # get their old mtime, so the other profile's objects stay valid too.
            source.restore_mtimes(src, before)
        source.end_bisect(layout)
    return failures
