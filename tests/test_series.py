"""check-series: Debian's files, and bisect builds in build/src over the profile's objects."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import build, series, source
from harness.errors import HarnessError
from harness.layout import Layout

OLD = 1_000_000_000.0
FULL_CONFIG = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n"


def sh(cwd: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, capture_output=True).stdout


def gitc(src: Path, *args: str) -> str:
    return sh(src, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args)


def commit(src: Path, files: dict[str, str], msg: str) -> None:
    for name, text in files.items():
        (src / name).write_text(text)
    gitc(src, "add", *files)
    gitc(src, "commit", "-qm", msg)


@dataclass
class FakeMake:
    """build.make without a kernel: olddefconfig keeps the options the tree's Kconfig has."""

    layout: Layout
    fail: set[str] = field(default_factory=set)  # subjects whose bzImage build fails
    interrupt: str = ""
    builds: list[tuple[str, str]] = field(default_factory=list)  # (subject, .config)

    def __call__(self, layout: Layout, targets: list[str], log: Path, label: str,
                 src: Path | None = None) -> int:
        assert layout.obj == self.layout.obj and src is None  # build/src, obj-<profile>
        config = layout.obj / ".config"
        subject = sh(layout.src, "git", "log", "-1", "--format=%s").strip()
        if targets == ["olddefconfig"]:
            known = set((layout.src / "Kconfig").read_text().split())
            config.write_text("".join(line + "\n" for line in config.read_text().splitlines()
                                      if line.split("=")[0] in known))
            return 1
        assert targets == ["bzImage"]
        if subject == self.interrupt:
            raise KeyboardInterrupt
        if subject in self.fail:
            raise HarnessError(f"{label} failed: error: boom")
        self.builds.append((subject, config.read_text()))
        return 42


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    layout = Layout(tmp_path)
    src = layout.src
    src.mkdir(parents=True)
    commit_files = {"Makefile": "VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\n",
                    "Kconfig": "CONFIG_A\n", "a.c": "int a;\n", "b.c": "int b;\n",
                    "c.c": "int c;\n", "d.c": "int d;\n"}
    gitc(src, "init", "-q", "-b", "debian")
    commit(src, commit_files, "base")
    gitc(src, "tag", "base")
    gitc(src, "checkout", "-q", "-b", "series")
    commit(src, {"a.c": "int a = 1;\n"}, "a: one")
    commit(src, {"b.c": "int b = 1;\n", "Kconfig": "CONFIG_A\nCONFIG_B\n"}, "b: one")
    commit(src, {"c.c": "int c = 1;\n", "Kconfig": "CONFIG_A\nCONFIG_B\nCONFIG_C\n"}, "c: one")
    source.export_patches(layout)
    (layout.patches / source.COVER_LETTER).write_text(
        "Subject: [PATCH 0/3] abc\n\nOn base.\n\n  a: one\n  b: one\n  c: one\n")
    lint = layout.patches / "man-pages" / "lint.sh"
    lint.parent.mkdir()
    lint.write_text("#!/bin/sh\necho 'lint.sh: 7 page(s) clean'\n")
    (src / ".git" / "vmtest-debian-files").write_text("# upstream mtime 1\nd.c\n")
    layout.obj.mkdir(parents=True)
    (layout.obj / ".config").write_text(FULL_CONFIG)
    for name in ("a.c", "b.c", "c.c", "Kconfig", ".config"):
        path = layout.obj / name if name == ".config" else src / name
        os.utime(path, (OLD, OLD))
    return layout


@pytest.fixture
def fake_make(tree: Layout, monkeypatch: pytest.MonkeyPatch) -> FakeMake:
    fake = FakeMake(tree)
    monkeypatch.setattr(build, "make", fake)
    monkeypatch.setattr(series, "checkpatch", lambda layout, patch: (True, "0 errors"))
    return fake


def head(layout: Layout) -> str:
    return sh(layout.src, "git", "rev-parse", "HEAD").strip()


def branch(layout: Layout) -> str:
    return sh(layout.src, "git", "symbolic-ref", "-q", "--short", "HEAD").strip()


def bisect(layout: Layout) -> list[str]:
    return series.bisect(layout, source.series_files(layout), layout.build / "log")


def test_every_prefix_builds_on_the_same_objects_and_ends_where_it_began(
        tree: Layout, fake_make: FakeMake) -> None:
    start = head(tree)
    assert bisect(tree) == []
    # Each prefix gets the full .config through olddefconfig: the options it knows.
    assert fake_make.builds == [("a: one", "CONFIG_A=y\n"),
                                ("b: one", "CONFIG_A=y\nCONFIG_B=y\n"),
                                ("c: one", FULL_CONFIG)]
    assert branch(tree) == "series" and head(tree) == start
    config = tree.obj / ".config"
    assert config.read_text() == FULL_CONFIG and config.stat().st_mtime == OLD
    # Content back to what it was: the old mtimes, so nothing looks newer than its object.
    for name in ("a.c", "b.c", "c.c", "Kconfig"):
        assert (tree.src / name).stat().st_mtime == OLD, name
    assert not (tree.src / ".git" / "vmtest-bisect").exists()
    assert not (tree.obj / ".config.vmtest-full").exists()
    assert sh(tree.src, "git", "status", "--porcelain") == ""


def test_a_second_run_builds_nothing(tree: Layout, fake_make: FakeMake,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bisect(tree)
    fake_make.builds.clear()
    assert bisect(tree) == []
    assert fake_make.builds == []
    assert capsys.readouterr().out.count("built before") == 3


def reapply(layout: Layout) -> None:
    """What the source stage does after patches/ changed."""
    patches = source.series_files(layout)
    source._apply(layout, patches, layout.build / "log")
    source._write_state(layout, "series", source.series_hash(patches))


def test_an_edited_patch_rebuilds_from_it_to_the_head(tree: Layout, fake_make: FakeMake) -> None:
    bisect(tree)
    fake_make.builds.clear()
    two = tree.patches / "0002-b-one.patch"
    two.write_text(two.read_text().replace("+int b = 1;", "+int b = 2;"))
    reapply(tree)
    assert bisect(tree) == []
    assert [subject for subject, _ in fake_make.builds] == ["b: one", "c: one"]
    assert (tree.src / "a.c").stat().st_mtime == OLD  # untouched by the edit and the bisect


def test_the_head_is_always_built_last(tree: Layout, fake_make: FakeMake) -> None:
    bisect(tree)
    stamp = tree.obj / "vmtest-series-built.txt"
    first = sh(tree.src, "git", "rev-parse", "series~1^{tree}").strip()
    stamp.write_text("".join(f"{key}\n" for key in stamp.read_text().split()
                             if not key.startswith(first)))  # forget prefix 2 only
    fake_make.builds.clear()
    bisect(tree)
    assert [subject for subject, _ in fake_make.builds] == ["b: one", "c: one"]


def test_a_failed_prefix_is_named_and_the_rest_still_builds(tree: Layout,
                                                           fake_make: FakeMake) -> None:
    fake_make.fail = {"b: one"}
    failures = bisect(tree)
    assert failures == ["0002-b-one.patch: does not build: build 0002-b-one.patch failed: "
                        "error: boom"]
    assert [s for s, _ in fake_make.builds] == ["a: one", "c: one"]
    assert branch(tree) == "series"


def test_a_failed_head_build_leaves_fresh_mtimes(tree: Layout, fake_make: FakeMake) -> None:
    fake_make.fail = {"c: one"}
    assert bisect(tree)
    # c.c was rewritten for the head, whose build failed: its objects are stale, so it
    # must look newer than them; so must .config (kbuild then syncs auto.conf).
    assert (tree.src / "c.c").stat().st_mtime > OLD
    assert (tree.obj / ".config").stat().st_mtime > OLD
    assert (tree.obj / ".config").read_text() == FULL_CONFIG


def test_an_interrupted_bisect_returns_to_the_series(tree: Layout, fake_make: FakeMake) -> None:
    start = head(tree)
    fake_make.interrupt = "b: one"
    with pytest.raises(KeyboardInterrupt):
        bisect(tree)
    assert branch(tree) == "series" and head(tree) == start
    assert (tree.src / "b.c").stat().st_mtime > OLD
    assert (tree.obj / ".config").read_text() == FULL_CONFIG
    assert not (tree.src / ".git" / "vmtest-bisect").exists()


def test_a_killed_bisect_is_recovered(tree: Layout, fake_make: FakeMake) -> None:
    start = head(tree)
    source.begin_bisect(tree, start)
    gitc(tree.src, "checkout", "-q", "--detach", "series~2")
    # make export-patches must not write the prefix as the whole series
    assert len(source.export_patches(tree)) == 3
    assert branch(tree) == "series" and head(tree) == start
    assert bisect(tree) == []


def test_recover_leaves_work_done_since_alone(tree: Layout) -> None:
    source.begin_bisect(tree, head(tree))
    gitc(tree.src, "checkout", "-q", "--detach", "series~1")
    (tree.src / "a.c").write_text("edited\n")
    assert source.recover_bisect(tree) == ""
    assert (tree.src / "a.c").read_text() == "edited\n"


@pytest.mark.parametrize(("spoil", "why"), [
    (lambda t: (t.src / "a.c").write_text("dirty\n"), "uncommitted edits"),
    (lambda t: commit(t.src, {"a.c": "local\n"}, "local"), "commits that are not in patches/"),
    (lambda t: (t.patches / "0003-c-one.patch").write_text("changed\n"),
     "patches/ changed since"),
])
def test_bisect_needs_build_src_clean_and_at_the_exported_series(
        tree: Layout, fake_make: FakeMake, spoil: object, why: str) -> None:
    assert callable(spoil)
    spoil(tree)
    with pytest.raises(HarnessError, match=why):
        bisect(tree)
    assert fake_make.builds == []


def test_a_detached_head_is_refused(tree: Layout, fake_make: FakeMake) -> None:
    gitc(tree.src, "checkout", "-q", "--detach", "series")
    with pytest.raises(HarnessError, match="not on branch series"):
        bisect(tree)


# --- Debian's patched files ----------------------------------------------------------

PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
Subject: [PATCH] x

diff --git a/fs/namespace.c b/fs/namespace.c
--- a/fs/namespace.c
+++ b/fs/namespace.c
@@ -1 +1 @@
-a
+b
diff --git a/include/old.h b/include/new.h
similarity index 100%
rename from include/old.h
rename to include/new.h
diff --git a/samples/new.c b/samples/new.c
new file mode 100644
"""


def test_touched_files_sees_every_path() -> None:
    assert series.touched_files(PATCH) == {"fs/namespace.c", "include/old.h",
                                           "include/new.h", "samples/new.c"}


def test_a_patch_on_a_debian_file_is_named(tmp_path: Path) -> None:
    one, two = tmp_path / "0001-a.patch", tmp_path / "0002-b.patch"
    one.write_text(PATCH)
    two.write_text(PATCH.replace("fs/namespace.c", "fs/namei.c"))
    debian = ["fs/namei.c", "include/old.h", "kernel/fork.c"]
    assert series.debian_conflicts([one, two], debian) == [
        ("0001-a.patch", "include/old.h"), ("0002-b.patch", "fs/namei.c"),
        ("0002-b.patch", "include/old.h")]


def test_check_series_fails_naming_the_patch_and_the_debian_file(
        tree: Layout, fake_make: FakeMake, capsys: pytest.CaptureFixture[str]) -> None:
    assert series.check(tree, tree.build / "log") == 0
    (tree.src / ".git" / "vmtest-debian-files").write_text("# upstream mtime 1\nb.c\n")
    assert series.check(tree, tree.build / "log") == 1
    out = capsys.readouterr().out
    assert ("FAILED 0002-b-one.patch: touches b.c, which Debian's own patches changed"
            in out)
