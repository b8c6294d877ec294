"""make check-series: checkpatch --strict on every patch, none touches a file Debian's
patches changed, and every prefix of the series builds (incrementally, in build/src)."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from harness import build, kconfig, source
from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import git, run_logged

_TOTAL = re.compile(r"total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?")


def checkpatch(layout: Layout, patch: Path) -> tuple[bool, str]:
    # scripts/spdxcheck.py needs ply and GitPython: the venv has them.
    env = dict(os.environ, PATH=f"{layout.repo / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    full = subprocess.run(["perl", "scripts/checkpatch.pl", "--strict", "--no-color",
                           str(patch)], cwd=layout.src, text=True, capture_output=True, env=env)
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
    return layout.build / "series-built.txt"


def _worktree(layout: Layout, log: Path) -> Path:
    """A second checkout of build/src, so bisect builds never touch build/src."""
    tree = layout.build / "series-src"
    if not (tree / ".git").exists():
        git(layout.src, "worktree", "prune")
        print(f"[bisect] creating the worktree {tree} (once)", flush=True)
        run_logged(["git", "-C", layout.src, "worktree", "add", "--detach", "-f", tree,
                    source.BASE], log, "git worktree add")
    return tree


def prepare(layout: Layout, log: Path) -> None:
    """Bring build/src and the default .config up to date (under the build lock)."""
    source.prepare(layout, log)
    kconfig.configure(layout, log)


def check(layout: Layout, log: Path) -> int:
    """checkpatch every patch, none on a Debian-patched file, every prefix builds (worktree)."""
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
    commits = git(layout.src, "rev-list", "--reverse", f"{source.BASE}..series").split()
    if len(commits) != len(patches):
        raise HarnessError(f"{len(patches)} patches but {len(commits)} commits on "
                           f"{layout.src} branch series")
    series = dataclasses.replace(layout, obj_name="obj-series")
    series.obj.mkdir(parents=True, exist_ok=True)
    config_text = (layout.obj / ".config").read_text()
    config_hash = hashlib.sha256(config_text.encode()).hexdigest()[:16]
    done = set(_stamp(layout).read_text().split()) if _stamp(layout).exists() else set()
    tree = _worktree(layout, log) if patches else layout.src
    for patch, commit in zip(patches, commits, strict=True):
        key = f"{git(layout.src, 'rev-parse', commit + '^{tree}')}:{config_hash}"
        if key in done:
            print(f"[bisect] {patch.name}: built before", flush=True)
            continue
        git(tree, "checkout", "-q", "--detach", commit)
        shutil.copyfile(layout.obj / ".config", series.obj / ".config")
        try:
            build.make(series, ["olddefconfig"], log, "olddefconfig", src=tree)
            build.make(series, ["bzImage"], log, f"build {patch.name}", src=tree)
        except HarnessError as exc:
            failures.append(f"{patch.name}: does not build: {exc.message}")
            print(f"[bisect] {patch.name}: FAILED {exc.message}", flush=True)
            continue
        done.add(key)
        _stamp(layout).write_text("\n".join(sorted(done)) + "\n")
        print(f"[bisect] {patch.name}: builds", flush=True)
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"check-series: {len(patches)} patch(es), {len(failures)} problem(s); log: {log}")
    return 1 if failures else 0
