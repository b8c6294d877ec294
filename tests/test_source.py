"""The series is applied with git am on a tiny stand-in for the kernel tree."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import source
from harness.errors import HarnessError
from harness.layout import Layout


def sh(cwd: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, capture_output=True).stdout


@pytest.fixture
def tree(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path)
    src = layout.src
    src.mkdir(parents=True)
    (src / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n")
    (src / "a.c").write_text("int a;\n")
    (src / "b.c").write_text("int b;\n")
    sh(src, "git", "init", "-q", "-b", "debian")
    sh(src, "git", "add", "-A")
    sh(src, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    sh(src, "git", "tag", "base")
    (src / ".git" / "vmtest-base").write_text("1\n")
    return layout


def commit(layout: Layout, name: str, text: str, msg: str) -> None:
    (layout.src / name).write_text(text)
    sh(layout.src, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", msg)


def test_export_then_reapply_keeps_unchanged_files_mtime(tree: Layout) -> None:
    sh(tree.src, "git", "checkout", "-q", "-b", "series")
    commit(tree, "a.c", "int a = 1;\n", "a: one")
    commit(tree, "b.c", "int b = 1;\n", "b: one")
    names = source.export_patches(tree)
    assert [Path(n).name for n in names] == ["0001-a-one.patch", "0002-b-one.patch"]
    old = 1_000_000_000.0
    os.utime(tree.src / "a.c", (old, old))
    # Edit the second patch only, as a developer would in patches/.
    p2 = tree.patches / "0002-b-one.patch"
    p2.write_text(p2.read_text().replace("+int b = 1;", "+int b = 2;"))
    source._write_state(tree, "series", "stale")
    source._apply(tree, source.series_files(tree), tree.build / "log")
    assert (tree.src / "b.c").read_text() == "int b = 2;\n"
    assert (tree.src / "a.c").stat().st_mtime == old


def test_a_patch_that_does_not_apply_is_named(tree: Layout) -> None:
    tree.patches.mkdir()
    (tree.patches / "0001-x.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: t <t@t>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: [PATCH] x\n\n---\n"
        "diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int nope;\n+int x;\n")
    with pytest.raises(HarnessError, match=r"patch 0001-x.patch does not apply: .*a\.c"):
        source._apply(tree, source.series_files(tree), tree.build / "log")
    assert sh(tree.src, "git", "status", "--porcelain", "--untracked-files=no") == ""


def test_local_commits_are_never_thrown_away(tree: Layout) -> None:
    source.reset_source(tree)
    commit(tree, "a.c", "int mine;\n", "work in progress")
    with pytest.raises(HarnessError, match="make export-patches"):
        source._check_clean(tree)
    (tree.src / "a.c").write_text("dirty\n")
    with pytest.raises(HarnessError):
        source._check_clean(tree)


def test_series_hash_changes_with_content(tmp_path: Path) -> None:
    p = tmp_path / "0001.patch"
    p.write_text("a")
    h1 = source.series_hash([p])
    p.write_text("b")
    assert source.series_hash([p]) != h1
    assert source.series_hash([]) != h1
