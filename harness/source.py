"""The kernel tree: the Debian base unpacked once, the series applied with git am.

build/src is a git repository whose tag ``base`` is the pristine Debian tree.
The series in patches/ is applied on branch ``series``.  Files whose content
did not change keep their mtime across re-applies, so make rebuilds only
what a patch edit touched.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import StageResult, Timer, git, run_logged

TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
PACKAGE = "linux-source-6.12"
BASE = "refs/tags/base"  # the pristine Debian tree
IDENTITY = ["-c", "user.name=watch_queue vmtest", "-c", "user.email=vmtest@localhost"]
_BASE_ENV = {"GIT_AUTHOR_NAME": "base", "GIT_AUTHOR_EMAIL": "base@localhost",
             "GIT_COMMITTER_NAME": "base", "GIT_COMMITTER_EMAIL": "base@localhost",
             "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
             "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}


@dataclass(frozen=True)
class SourceInfo:
    base_version: str
    kernel_version: str
    series_hash: str
    patches: int


def package_version() -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                          text=True, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise HarnessError(f"{PACKAGE} is not installed: run `make deps` "
                           f"(or apt-get install {PACKAGE})")
    return proc.stdout.strip()


COVER_LETTER = "0000-cover-letter.patch"


def series_files(layout: Layout) -> list[Path]:
    """The patches git am applies, in order (the cover letter is not one)."""
    return sorted(p for p in layout.patches.glob("*.patch") if p.name != COVER_LETTER)


def series_hash(patches: list[Path]) -> str:
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.name.encode() + b"\0" + patch.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


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


def _unpack_base(layout: Layout, version: str, log: Path) -> None:
    tmp = layout.build / "src.unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if not TARBALL.exists():
        raise HarnessError(f"{TARBALL} missing: apt-get install {PACKAGE}")
    usage = shutil.disk_usage(layout.build)
    if usage.free < 6 << 30:
        raise HarnessError(f"only {usage.free >> 20} MiB free under {layout.build}; "
                           "the kernel tree and build need about 6 GiB")
    with tarfile.open(TARBALL) as tar:
        tar.extractall(tmp, filter="fully_trusted")
    top = next(tmp.iterdir())
    gitignore = top / ".gitignore"
    # Debian's top-level .gitignore ignores everything ("/*"): drop that part.
    text = gitignore.read_text()
    gitignore.write_text(text.split("# Debian packaging")[0])
    env = dict(os.environ, **_BASE_ENV)
    run_logged(["git", "init", "-q", "-b", "debian", top], log, "git init")
    run_logged(["git", "-C", top, "add", "-A"], log, "git add base tree")
    run_logged(["git", "-C", top, "commit", "-q", "-m",
                f"Linux {kernel_version(top)} ({PACKAGE} {version})"], log, "commit base", env=env)
    run_logged(["git", "-C", top, "tag", "base"], log, "tag base")
    shutil.rmtree(layout.src, ignore_errors=True)
    top.rename(layout.src)
    shutil.rmtree(tmp)
    _write_state(layout, "base", version)


def _check_clean(layout: Layout) -> None:
    """Refuse to throw away work done in build/src that is not in patches/."""
    recorded = _read_state(layout, "head")
    if recorded and git(layout.src, "rev-parse", "HEAD") != recorded:
        raise HarnessError(
            f"{layout.src} has commits that are not in patches/: run `make export-patches` to "
            "keep them, or `make reset-source` to drop them")
    dirty = git(layout.src, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        raise HarnessError(
            f"{layout.src} has uncommitted edits ({dirty.splitlines()[0].strip()} ...): commit "
            "them and run `make export-patches`, or `make reset-source` to drop them")


def _mtimes(src: Path, rev: str) -> dict[str, tuple[str, float]]:
    """Blob id and mtime of every file the series at ``rev`` touches."""
    out: dict[str, tuple[str, float]] = {}
    if not rev:
        return out
    names = git(src, "diff", "--name-only", BASE, rev).splitlines()
    if not names:
        return out
    blobs = dict(line.split("\t", 1)[::-1] for line in
                 git(src, "ls-tree", "-r", rev, "--format=%(objectname)\t%(path)", "--",
                     *names).splitlines())
    for name in names:
        path = src / name
        if name in blobs and path.exists():
            out[name] = (blobs[name], path.stat().st_mtime)
    return out


def restore_mtimes(src: Path, before: dict[str, tuple[str, float]]) -> None:
    """Files whose content is what it was get their old mtime: make skips them."""
    after = _mtimes(src, git(src, "rev-parse", "HEAD"))
    for name, (blob, mtime) in before.items():
        if after.get(name, ("", 0.0))[0] == blob:
            os.utime(src / name, (mtime, mtime))


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
    version = package_version()
    did = []
    if not (layout.src / ".git").exists() or _read_state(layout, "base") != version:
        _unpack_base(layout, version, log)
        did.append(f"unpacked {PACKAGE} {version}")
    else:
        _check_clean(layout)
    patches = series_files(layout)
    digest = series_hash(patches)
    if _read_state(layout, "series") != digest:
        _apply(layout, patches, log)
        _write_state(layout, "series", digest)
        did.append(f"applied {len(patches)} patch(es)")
    info = SourceInfo(version, kernel_version(layout.src), digest, len(patches))
    return StageResult("source", timer.elapsed(), ", ".join(did) or "unchanged"), info


def export_patches(layout: Layout) -> list[str]:
    """Regenerate patches/ from build/src (base..HEAD); the only way edits get saved."""
    src = layout.src
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
    _write_state(layout, "head", git(layout.src, "rev-parse", "HEAD"))
    _write_state(layout, "series", "")
