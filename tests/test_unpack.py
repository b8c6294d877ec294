"""Unpacking the base into build/src, and switching bases without losing work."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import source
from harness.errors import HarnessError
from harness.layout import Layout
from tests.fakes import FakeApt, kernel_tarball

OLD = "7.3.4-1~bpo13+1"
NEW = "7.3.5-1~bpo13+1"


def sh(cwd: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, capture_output=True).stdout


def gitc(src: Path, *args: str) -> str:
    return sh(src, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)


@pytest.fixture
def layout(tmp_path: Path, fake_apt: FakeApt) -> Layout:
    fake_apt.publish("linux-source-7.3", OLD, kernel_tarball()[0])
    (tmp_path / "patches").mkdir()
    return Layout(tmp_path)


def prepare(layout: Layout) -> str:
    return source.prepare(layout, layout.build / "source.log")[0].detail


def new_upload(layout: Layout, fake_apt: FakeApt) -> None:
    """Debian uploads 7.3.5 and a day passes."""
    fake_apt.publish("linux-source-7.3", NEW, kernel_tarball(sublevel=5)[0])
    stamp = layout.cache / "apt" / "lists" / "vmtest-updated"
    old = time.time() - 2 * 86400
    os.utime(stamp, (old, old))


def sublevel(layout: Layout) -> str:
    return source.kernel_version(layout.src).split(".")[2]


def test_every_file_of_the_tarball_is_committed(layout: Layout) -> None:
    start = time.time()
    detail = prepare(layout)
    assert detail.startswith(f"linux-source-7.3 {OLD}: downloaded")
    assert "unpacked (2 files changed by Debian's patches)" in detail
    files = sh(layout.src, "git", "ls-files", "-z").split("\0")[:-1]
    assert len(files) == kernel_tarball()[1]
    # What Debian's .gitignore would have hidden from `git add -A`:
    for hidden in (".clang-format", "arch/mips/crypto/.gitignore", "arch/mips/crypto/poly.S",
                   "lib/link.c"):
        assert hidden in files
    assert "/*" not in (layout.src / ".gitignore").read_text().splitlines()
    assert source.debian_files(layout) == ["Makefile", "fs/namei.c"]
    assert source.recorded_base(layout) == f"linux-source-7.3 {OLD}"
    # One fresh mtime: objects built from an earlier base cannot look up to date.
    assert (layout.src / "lib/f1.c").stat().st_mtime >= start - 1
    assert sh(layout.src, "git", "status", "--porcelain") == ""


def test_the_base_commit_is_reproducible(tmp_path: Path, layout: Layout,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    prepare(layout)
    first_src = layout.src
    first = sh(first_src, "git", "rev-parse", "base").strip()
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "other-build"))
    prepare(layout)
    assert layout.src != first_src and (layout.src / ".git").exists()
    assert sh(layout.src, "git", "rev-parse", "base").strip() == first


def test_an_implausible_mtime_split_refuses_to_unpack(layout: Layout, fake_apt: FakeApt) -> None:
    fake_apt.publish("linux-source-7.3", OLD, kernel_tarball(debian=())[0])
    with pytest.raises(HarnessError, match="no file is newer than the rest"):
        prepare(layout)
    assert not layout.src.exists()


def test_a_new_upload_replaces_a_clean_tree(layout: Layout, fake_apt: FakeApt) -> None:
    patch_a(layout)
    prepare(layout)
    new_upload(layout, fake_apt)
    detail = prepare(layout)
    assert detail.startswith(f"linux-source-7.3 {NEW}: downloaded")
    assert sublevel(layout) == "5"
    assert source.recorded_base(layout) == f"linux-source-7.3 {NEW}"
    assert (layout.src / "lib/f1.c").read_text() == "int f1 = 1;\n"  # the series, reapplied
    assert not (layout.build / "src.old").exists()
    assert not (layout.build / "src.unpack").exists()


def patch_a(layout: Layout) -> None:
    (layout.patches / "0001-f1.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: t <t@t>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: [PATCH] f1\n\n---\n"
        "diff --git a/lib/f1.c b/lib/f1.c\n--- a/lib/f1.c\n+++ b/lib/f1.c\n"
        "@@ -1 +1 @@\n-int f1;\n+int f1 = 1;\n")


def _commit_on_series(src: Path) -> None:
    (src / "lib/f2.c").write_text("int mine;\n")
    gitc(src, "commit", "-qam", "work in progress")


def _commit_on_a_branch(src: Path) -> None:
    gitc(src, "checkout", "-q", "-b", "mywork")
    _commit_on_series(src)
    gitc(src, "checkout", "-q", "series")


def _stash(src: Path) -> None:
    (src / "lib/f2.c").write_text("int stashed;\n")
    gitc(src, "stash", "-q")


def _edit(src: Path) -> None:
    (src / "lib/f2.c").write_text("int edited;\n")


def _new_file(src: Path) -> None:
    (src / "lib/new.c").write_text("int new;\n")


def _rebase_in_progress(src: Path) -> None:
    (src / ".git" / "rebase-merge").mkdir()


@pytest.mark.parametrize(("work", "why"), [
    (_commit_on_series, r"1 commit\(s\) that are not in patches/, e.g. \w+ work in progress"),
    (_commit_on_a_branch, r"1 commit\(s\) .* \(on mywork\)"),
    (_stash, r"commit\(s\) .* \(on stash"),
    (_edit, "uncommitted edits or new files .*lib/f2.c"),
    (_new_file, "uncommitted edits or new files .*lib/new.c"),
    (_rebase_in_progress, "in the middle of a git rebase or am"),
])
def test_a_new_upload_never_deletes_unexported_work(layout: Layout, fake_apt: FakeApt,
                                                   work: object, why: str) -> None:
    prepare(layout)
    assert callable(work)
    work(layout.src)
    before = sh(layout.src, "git", "rev-parse", "HEAD", "--branches")
    new_upload(layout, fake_apt)
    with pytest.raises(HarnessError, match=why) as exc:
        prepare(layout)
    assert f"the base moves from linux-source-7.3 {OLD} to linux-source-7.3 {NEW}" in str(exc.value)
    assert sublevel(layout) == "4"  # build/src untouched
    assert sh(layout.src, "git", "rev-parse", "HEAD", "--branches") == before


def test_a_tree_from_before_the_debian_file_list_is_unpacked_again(layout: Layout) -> None:
    prepare(layout)
    (layout.src / ".git" / "vmtest-debian-files").unlink()
    assert "unpacked" in prepare(layout)
    assert source.debian_files(layout) == ["Makefile", "fs/namei.c"]


# --- the worktree check-series used to bisect in --------------------------------------

def _legacy_worktree(layout: Layout) -> Path:
    tree = layout.build / "series-src"
    sh(layout.src, "git", "worktree", "add", "-q", "--detach", "-f", str(tree), "base")
    (layout.build / "obj-series").mkdir()
    return tree


def test_the_old_worktree_and_its_objects_are_retired(layout: Layout) -> None:
    prepare(layout)
    tree = _legacy_worktree(layout)
    detail = prepare(layout)
    assert f"removed the old check-series worktree {tree}" in detail
    assert not tree.exists() and not (layout.build / "obj-series").exists()
    assert len(sh(layout.src, "git", "worktree", "list").splitlines()) == 1


def test_the_old_worktree_with_edits_stops_the_run(layout: Layout) -> None:
    prepare(layout)
    tree = _legacy_worktree(layout)
    (tree / "lib/f3.c").write_text("int edited;\n")
    with pytest.raises(HarnessError, match="old check-series worktree\\) holds edits"):
        prepare(layout)
    assert (tree / "lib/f3.c").read_text() == "int edited;\n"


def test_switching_bases_leaves_no_broken_worktree(layout: Layout, fake_apt: FakeApt) -> None:
    prepare(layout)
    tree = _legacy_worktree(layout)
    new_upload(layout, fake_apt)
    prepare(layout)
    assert sublevel(layout) == "5"
    assert not tree.exists()
    assert len(sh(layout.src, "git", "worktree", "list").splitlines()) == 1


def test_a_worktree_orphaned_by_an_earlier_switch_is_removed(layout: Layout) -> None:
    prepare(layout)
    tree = _legacy_worktree(layout)
    # What the old harness left behind: the worktree's repository was replaced.
    sh(layout.src, "rm", "-rf", ".git/worktrees")
    prepare(layout)
    assert not tree.exists()
