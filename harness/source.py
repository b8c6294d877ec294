"""The kernel tree: the Debian base unpacked once, the series applied with git am.

build/src is a git repository whose tag ``base`` is the Debian tree as shipped:
every file of the tarball is committed (force-added, whatever the tree's
.gitignore files say), with fixed names and dates, so the same tarball always
gives the same base commit.  The series in patches/ is applied on branch
``series``.  Files whose content did not change keep their mtime across
re-applies, so make rebuilds only what a patch edit touched.

build/src is replaced only when the base version changes, and never while it
holds work that is not in patches/.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import debian
from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import StageResult, Timer, git, run_logged

BASE = "refs/tags/base"  # the pristine Debian tree
IDENTITY = ["-c", "user.name=watch_queue vmtest", "-c", "user.email=vmtest@localhost"]
# Nothing from the user's git configuration may change the base commit.
_BASE_GIT = ["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"]
_BASE_ENV = {"GIT_AUTHOR_NAME": "base", "GIT_AUTHOR_EMAIL": "base@localhost",
             "GIT_COMMITTER_NAME": "base", "GIT_COMMITTER_EMAIL": "base@localhost",
             "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
             "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}
DEBIAN_FILES = "debian-files"  # .git/vmtest-debian-files: what Debian's patches changed
BISECT = "bisect"  # .git/vmtest-bisect: the series head while check-series bisects
LEGACY_WORKTREE = "series-src"  # where check-series used to bisect, before it used build/src
LEGACY_OBJ = "obj-series"


@dataclass(frozen=True)
class SourceInfo:
    package: str
    base_version: str
    kernel_version: str
    series_hash: str
    patches: int

    def base(self) -> str:
        return f"{self.package} {self.base_version}"


COVER_LETTER = "0000-cover-letter.patch"


def series_files(layout: Layout) -> list[Path]:
    """The patches git am applies, in order (the cover letter is not one)."""
    return sorted(p for p in layout.patches.glob("*.patch") if p.name != COVER_LETTER)


def series_digest(patches: list[Path]) -> str:
    """sha256 over the patches' names and contents (KCIDB's patchset_hash)."""
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.name.encode() + b"\0" + patch.read_bytes() + b"\0")
    return digest.hexdigest()


def series_hash(patches: list[Path]) -> str:
    return series_digest(patches)[:16]


def _state(layout: Layout, key: str) -> Path:
    return layout.src / ".git" / f"vmtest-{key}"


def _read_state(layout: Layout, key: str) -> str:
    path = _state(layout, key)
    return path.read_text().strip() if path.exists() else ""


def _write_state(layout: Layout, key: str, value: str) -> None:
    _state(layout, key).write_text(value + "\n")


def kernel_version(src: Path) -> str:
    fields = {}
    for line in (src / "Makefile").read_text().splitlines()[:6]:
        name, _, value = line.partition("=")
        fields[name.strip()] = value.strip()
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"


def recorded_base(layout: Layout) -> str:
    """"package version" of the base build/src holds ("" if unknown)."""
    if not (layout.src / ".git").exists():
        return ""
    version = _read_state(layout, "base")
    package = _read_state(layout, "base-package")
    return f"{package or 'linux-source'} {version}".strip() if version else ""


def debian_files(layout: Layout) -> list[str]:
    """The files Debian's own patches changed, as decided when the base was unpacked."""
    path = _state(layout, DEBIAN_FILES)
    if not path.exists():
        raise HarnessError(f"{path} is missing: {layout.src} predates the check for Debian's "
                           "patched files: rerun, which unpacks the base again")
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def _needs_unpack(layout: Layout, base: debian.Base) -> bool:
    return (not (layout.src / ".git").exists()
            or _read_state(layout, "base") != base.version
            or _read_state(layout, "base-package") != base.package
            or not _state(layout, DEBIAN_FILES).exists())


def _extract(tarball: Path, into: Path, log: Path) -> int:
    """Unpack with tar (mtimes kept); return how many non-directory entries it held."""
    timer = Timer()
    proc = subprocess.run(["tar", "-xvf", str(tarball), "-C", str(into)], text=True,
                          capture_output=True)
    names = proc.stdout.splitlines()
    entries = sum(1 for name in names if not name.endswith("/"))
    with log.open("a") as fh:
        fh.write(f"$ tar -xvf {tarball} -C {into}\n{proc.stderr}{len(names)} entries, "
                 f"{entries} not directories\n# exit {proc.returncode} after "
                 f"{timer.elapsed():.1f}s\n")
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        raise HarnessError(f"unpacking {tarball.name} failed: {tail[0]}", log)
    return entries


def _touch_all(top: Path) -> None:
    """One fresh mtime for the whole tree, so objects built from an earlier base all rebuild."""
    now = time.time_ns()
    for root, _dirs, files in os.walk(top):
        for name in files:
            os.utime(os.path.join(root, name), ns=(now, now), follow_symlinks=False)


def _unpack_base(layout: Layout, base: debian.Base, log: Path) -> debian.MtimeSplit:
    """Replace build/src with the base tree, committed whole (the caller checked it is clean)."""
    tmp = layout.build / "src.unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    usage = shutil.disk_usage(layout.build)
    if usage.free < 6 << 30:
        raise HarnessError(f"only {usage.free >> 20} MiB free under {layout.build}; "
                           "the kernel tree and build need about 6 GiB")
    run_logged(["dpkg-deb", "-x", base.deb, tmp / "deb"], log, f"dpkg-deb -x {base.deb.name}")
    tarball = tmp / "deb" / base.tarball
    if not tarball.exists():
        raise HarnessError(f"{base.deb} holds no {base.tarball}", log)
    (tmp / "tree").mkdir()
    entries = _extract(tarball, tmp / "tree", log)
    shutil.rmtree(tmp / "deb")
    tops = list((tmp / "tree").iterdir())
    if len(tops) != 1 or not tops[0].is_dir():
        raise HarnessError(f"{base.tarball} does not hold one top folder: "
                           f"{', '.join(t.name for t in tops[:3])}", log)
    top = tops[0]
    split = debian.split_mtimes(debian.tree_mtimes(top))
    _touch_all(top)
    gitignore = top / ".gitignore"
    if gitignore.exists():
        # Debian's top-level .gitignore ignores everything ("/*"): drop that part, so git
        # status in build/src shows new files.  The base commit force-adds every file anyway.
        text = gitignore.read_text()
        gitignore.write_text(text.split("# Debian packaging")[0])
    env = dict(os.environ, **_BASE_ENV)
    run_logged(["git", "init", "-q", "-b", "debian", top], log, "git init")
    run_logged(["git", "-C", top, "add", "-A", "-f"], log, "git add base tree")
    run_logged(["git", *_BASE_GIT, "-C", top, "commit", "-q", "--no-verify", "-m",
                f"Linux {kernel_version(top)} ({base.describe()})"], log, "commit base",
               env=env)
    run_logged(["git", "-C", top, "tag", "base"], log, "tag base")
    committed = git(top, "ls-files", "-z").count("\0")
    if committed != entries:
        raise HarnessError(f"the base commit holds {committed} files but {base.tarball} has "
                           f"{entries}: git left some out", log)
    (top / ".git" / f"vmtest-{DEBIAN_FILES}").write_text(
        split.header() + "\n" + "".join(f"{path}\n" for path in split.debian))
    old = layout.build / "src.old"
    shutil.rmtree(old, ignore_errors=True)
    if layout.src.exists():
        layout.src.rename(old)
    top.rename(layout.src)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp)
    _write_state(layout, "base", base.version)
    _write_state(layout, "base-package", base.package)
    return split


def _unexported_commits(layout: Layout) -> list[str]:
    """Commits on HEAD, a branch, a tag or the stash that patches/ does not hold."""
    src = layout.src
    recorded = _read_state(layout, "head")
    known = [BASE]
    if recorded and subprocess.run(["git", "-C", str(src), "cat-file", "-e",
                                    recorded + "^{commit}"], capture_output=True).returncode == 0:
        known.append(recorded)
    stashes = git(src, "stash", "list", "--format=%H").split()
    out = git(src, "rev-list", "HEAD", "--branches", "--tags", *stashes, "--not", *known)
    return out.split()


def _check_clean(layout: Layout, replacing: str = "") -> None:
    """Refuse to throw away work done in build/src that is not in patches/.

    ``replacing`` says why build/src is about to be replaced as a whole; then
    commits on any branch, tag or the stash count too, and so do untracked files.
    """
    src = layout.src
    why = f" ({replacing}, which replaces {src})" if replacing else ""
    keep = ("run `make export-patches` to keep them, or `make reset-source` to drop them"
            if not replacing else "save them (`make export-patches` writes HEAD's commits to "
            "patches/) or drop them, then rerun")
    if any((src / ".git" / d).exists() for d in ("rebase-apply", "rebase-merge")):
        raise HarnessError(f"{src} is in the middle of a git rebase or am{why}: finish or "
                           "abort it first")
    if replacing:
        commits = _unexported_commits(layout)
        if commits:
            first = git(src, "log", "--no-walk", "--format=%h %s", commits[0])
            where = git(src, "name-rev", "--name-only", commits[0], check=False)
            raise HarnessError(f"{src} has {len(commits)} commit(s) that are not in patches/, "
                               f"e.g. {first} (on {where}){why}: {keep}")
    else:
        recorded = _read_state(layout, "head")
        if recorded and git(src, "rev-parse", "HEAD") != recorded:
            raise HarnessError(
                f"{src} has commits that are not in patches/: run `make export-patches` to "
                "keep them, or `make reset-source` to drop them")
    dirty = git(src, "status", "--porcelain",
                "--untracked-files=" + ("normal" if replacing else "no"))
    if dirty:
        raise HarnessError(
            f"{src} has uncommitted edits or new files ({dirty.splitlines()[0].strip()} ...)"
            f"{why}: commit them and run `make export-patches`, or `make reset-source` to "
            "drop edits to tracked files")


def retire_worktree(layout: Layout) -> list[str]:
    """Remove build/series-src and build/obj-series, where check-series used to bisect.

    The worktree is left alone (and the run refused) if it holds edits or commits.
    A worktree whose repository is gone (build/src was replaced) is just a folder.
    """
    notes = []
    tree = layout.build / LEGACY_WORKTREE
    if tree.exists():
        gitfile = tree / ".git"
        gitdir = Path(gitfile.read_text().partition("gitdir:")[2].strip()) \
            if gitfile.is_file() else None
        if gitdir is not None and gitdir.exists():
            dirty = git(tree, "status", "--porcelain", "--untracked-files=no")
            loose = git(tree, "rev-list", "HEAD", "--not", "--branches", "--tags")
            if dirty or loose:
                raise HarnessError(f"{tree} (the old check-series worktree) holds "
                                   f"{'edits' if dirty else 'commits on no branch'}; save "
                                   f"them and remove it with `git -C {layout.src} worktree "
                                   f"remove --force {tree}`")
            git(layout.src, "worktree", "remove", "--force", str(tree))
        else:
            shutil.rmtree(tree)
        notes.append(f"removed the old check-series worktree {tree}")
    if (layout.src / ".git").exists():
        git(layout.src, "worktree", "prune", check=False)
    obj = layout.build / LEGACY_OBJ
    if obj.exists():
        shutil.rmtree(obj)
        notes.append(f"removed {obj} (check-series builds in obj-<profile> now)")
    return notes


def snapshot(src: Path, rev: str, names: list[str]) -> dict[str, tuple[str, float]]:
    """Blob id at ``rev`` and mtime on disk of each of ``names`` that exists in both."""
    out: dict[str, tuple[str, float]] = {}
    if not rev or not names:
        return out
    blobs = dict(line.split("\t", 1)[::-1] for line in
                 git(src, "ls-tree", "-r", rev, "--format=%(objectname)\t%(path)", "--",
                     *names).splitlines())
    for name in names:
        path = src / name
        if name in blobs and path.exists():
            out[name] = (blobs[name], path.stat().st_mtime)
    return out


def _mtimes(src: Path, rev: str) -> dict[str, tuple[str, float]]:
    """Blob id and mtime of every file the series at ``rev`` touches."""
    if not rev:
        return {}
    return snapshot(src, rev, git(src, "diff", "--name-only", BASE, rev).splitlines())


def restore_mtimes(src: Path, before: dict[str, tuple[str, float]]) -> None:
    """Files whose content is what it was get their old mtime: make skips them."""
    after = snapshot(src, git(src, "rev-parse", "HEAD"), list(before))
    for name, (blob, mtime) in before.items():
        if after.get(name, ("", 0.0))[0] == blob:
            os.utime(src / name, (mtime, mtime))


def exported_head(layout: Layout) -> str:
    """The series head, after checking build/src is clean and holds exactly patches/."""
    _check_clean(layout)
    src = layout.src
    branch = git(src, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    if branch != "series":
        raise HarnessError(f"{src} is on {branch or 'a detached HEAD'}, not on branch series: "
                           "`make reset-source` and rerun")
    if _read_state(layout, "series") != series_hash(series_files(layout)):
        raise HarnessError(f"patches/ changed since {src} was brought up to date: rerun")
    return git(src, "rev-parse", "HEAD")


def head(layout: Layout) -> str:
    """The commit build/src has checked out ("" if it is not a git tree)."""
    if not (layout.src / ".git").exists():
        return ""
    return git(layout.src, "rev-parse", "HEAD", check=False)


def begin_bisect(layout: Layout, head: str) -> None:
    _write_state(layout, BISECT, head)


def end_bisect(layout: Layout) -> None:
    _state(layout, BISECT).unlink(missing_ok=True)


def recover_bisect(layout: Layout) -> str:
    """Back to branch series if a check-series run died in the middle of its bisect."""
    head = _read_state(layout, BISECT)
    if not head:
        return ""
    src = layout.src
    prefixes = [*git(src, "rev-list", f"{BASE}..{head}").split(), head]
    at = git(src, "rev-parse", "HEAD")
    dirty = git(src, "status", "--porcelain", "--untracked-files=no")
    end_bisect(layout)
    if at not in prefixes or dirty:
        return ""  # someone worked here since: _check_clean decides
    git(src, "checkout", "-q", "series")  # changed files get fresh mtimes: make rebuilds them
    return "back on branch series after an interrupted check-series"


def _apply(layout: Layout, patches: list[Path], log: Path) -> None:
    src = layout.src
    before = _mtimes(src, _read_state(layout, "head"))
    git(src, "checkout", "-q", "-f", "-B", "series", BASE)
    if patches:
        proc = run_logged(["git", *IDENTITY, "-C", src, "am", "-q", "--whitespace=nowarn",
                           *patches], log, "git am", check=False)
        if proc.returncode != 0:
            current = ""
            patch_dir = src / ".git" / "rebase-apply"
            if (patch_dir / "next").exists():
                index = int((patch_dir / "next").read_text()) - 1
                current = patches[index].name if 0 <= index < len(patches) else ""
            hunks = [ln for ln in proc.stdout.splitlines()
                     if ln.startswith(("error:", "Patch failed", "patch failed"))]
            git(src, "am", "--abort", check=False)
            git(src, "checkout", "-q", "-f", "series")
            _write_state(layout, "head", git(src, "rev-parse", "HEAD"))
            _write_state(layout, "series", "")
            raise HarnessError(f"patch {current or '?'} does not apply: "
                               + ("; ".join(hunks[:3]) or "see log"), log)
    head = git(src, "rev-parse", "HEAD")
    restore_mtimes(src, before)
    # Files the old series touched that the new one does not are back to base:
    # their content changed, so they keep the fresh mtime git gave them.
    _write_state(layout, "head", head)


def prepare(layout: Layout, log: Path) -> tuple[StageResult, SourceInfo]:
    timer = Timer()
    layout.build.mkdir(parents=True, exist_ok=True)
    base = debian.fetch(layout, log)
    did = [] if base.how == "cached" else [base.how]
    did += retire_worktree(layout)
    if _needs_unpack(layout, base):
        if (layout.src / ".git").exists():
            old = recorded_base(layout) or "an unknown base"
            _check_clean(layout, replacing=f"the base moves from {old} to {base.describe()}")
        split = _unpack_base(layout, base, log)
        did.append(f"unpacked ({len(split.debian)} files changed by Debian's patches)")
    else:
        did.append(recover_bisect(layout))
        _check_clean(layout)
    patches = series_files(layout)
    digest = series_hash(patches)
    if _read_state(layout, "series") != digest:
        _apply(layout, patches, log)
        _write_state(layout, "series", digest)
        did.append(f"applied {len(patches)} patch(es)")
    info = SourceInfo(base.package, base.version, kernel_version(layout.src), digest,
                      len(patches))
    detail = ", ".join(d for d in did if d) or "unchanged"
    return StageResult("source", timer.elapsed(), f"{base.describe()}: {detail}"), info


def export_patches(layout: Layout) -> list[str]:
    """Regenerate patches/ from build/src (base..HEAD); the only way edits get saved."""
    src = layout.src
    recover_bisect(layout)  # never export a bisect prefix as the whole series
    dirty = git(src, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        raise HarnessError(f"{src} has uncommitted edits: commit them first")
    layout.patches.mkdir(exist_ok=True)
    for old in series_files(layout):  # the cover letter is written by hand
        old.unlink()
    out = git(src, "format-patch", "--no-signature", "--zero-commit", "-o",
              str(layout.patches), f"{BASE}..HEAD")
    _write_state(layout, "head", git(src, "rev-parse", "HEAD"))
    _write_state(layout, "series", series_hash(series_files(layout)))
    return [line for line in out.splitlines() if line]


def reset_source(layout: Layout) -> None:
    """Forget local edits in build/src; the next run re-applies patches/."""
    git(layout.src, "am", "--abort", check=False)
    git(layout.src, "checkout", "-q", "-f", "-B", "series", BASE)
    end_bisect(layout)
    _write_state(layout, "head", git(layout.src, "rev-parse", "HEAD"))
    _write_state(layout, "series", "")
