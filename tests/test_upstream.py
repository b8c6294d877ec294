"""Upstream's mount-notify and statmount selftests: build, run list, KTAP, expected skips."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import ktap, report, suite, upstream
from harness.errors import HarnessError
from harness.ktap import Status
from harness.layout import REPO, Layout
from harness.vm import GuestTest

LIB_MK = """\
all: $(patsubst %,$(OUTPUT)/%,$(TEST_GEN_PROGS))
$(OUTPUT)/%: %.c
\t@echo built $@ with $(KHDR_INCLUDES) >> $(OUTPUT)/../../builds.txt
\t@cp $< $@ && chmod +x $@
"""


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    """build/src with two tiny kselftest folders shaped like upstream's, and obj/hdr."""
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    layout = Layout(tmp_path)
    tests = upstream.selftests_dir(layout)
    progs = {"filesystems/mount-notify": "mount-notify_test mount-notify_test_ns",
             "filesystems/statmount": "statmount_test statmount_test_ns\n"
                                      "TEST_GEN_PROGS += listmount_test"}
    for suite_dir, names in progs.items():
        folder = tests / suite_dir
        folder.mkdir(parents=True)
        (folder / "Makefile").write_text(f"TEST_GEN_PROGS := {names}\ninclude ../../lib.mk\n")
        for name in (folder / "Makefile").read_text().split():
            if name.endswith(("_test", "_ns")):
                (folder / f"{name}.c").write_text("int main;\n")
    (tests / "lib.mk").write_text(LIB_MK)
    (tests / "kselftest.h").write_text("/* kselftest */\n")
    (tests / "filesystems" / "utils.c").write_text("int utils;\n")
    (layout.headers / "include" / "linux").mkdir(parents=True)
    (layout.headers / "include" / "linux" / "mount.h").write_text("#define X 1\n")
    return layout


def builds(layout: Layout) -> list[str]:
    path = layout.obj / "upstream" / "builds.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_programs_come_from_the_makefiles(tree: Layout) -> None:
    names = [(p.suite, p.name) for p in upstream.programs(tree)]
    assert names == [("filesystems/mount-notify", "mount-notify_test"),
                     ("filesystems/mount-notify", "mount-notify_test_ns"),
                     ("filesystems/statmount", "statmount_test"),
                     ("filesystems/statmount", "statmount_test_ns"),
                     ("filesystems/statmount", "listmount_test")]
    assert upstream.programs(tree)[0].path == (
        tree.obj / "upstream" / "filesystems/mount-notify" / "mount-notify_test")


def test_gen_progs() -> None:
    text = ("TEST_GEN_PROGS := a b\nTEST_GEN_PROGS += c a\nTEST_GEN_PROGS_EXTENDED := h\n"
            "CFLAGS += -O2\n")
    assert upstream.gen_progs(text) == ["a", "b", "c"]
    assert upstream.gen_progs("TEST_GEN_PROGS = x\nTEST_GEN_PROGS := y\n") == ["y"]


def test_a_suite_gone_from_the_base_is_an_error(tree: Layout) -> None:
    (upstream.selftests_dir(tree) / "filesystems/statmount/Makefile").unlink()
    with pytest.raises(HarnessError, match="statmount/Makefile is missing"):
        upstream.programs(tree)


def test_build_against_the_installed_headers_once(tree: Layout) -> None:
    log = tree.build / "log"
    res = upstream.build(tree, log)
    assert res.detail == "5 programs built"
    assert len(builds(tree)) == 5
    assert all(f"-isystem {tree.headers / 'include'}" in line for line in builds(tree))
    assert all(p.path.exists() for p in upstream.programs(tree))
    assert upstream.build(tree, log).detail == "5 programs, unchanged"
    assert len(builds(tree)) == 5


@pytest.mark.parametrize("changed", ["hdr/include/linux/mount.h",
                                     "src/tools/testing/selftests/filesystems/utils.c",
                                     "src/tools/testing/selftests/kselftest.h"])
def test_a_changed_header_or_helper_rebuilds(tree: Layout, changed: str) -> None:
    log = tree.build / "log"
    upstream.build(tree, log)
    path = (tree.obj if changed.startswith("hdr") else tree.build) / changed
    path.write_text(path.read_text() + "/* changed */\n")
    assert upstream.build(tree, log).detail == "5 programs built"
    assert len(builds(tree)) == 10


def test_upstream_programs_run_in_the_vm_even_when_not_built(tree: Layout) -> None:
    tests = suite.guest_tests(tree, Path("/venv/python"))
    names = [t.name for t in tests]
    assert names[:5] == ["mount-notify_test", "mount-notify_test_ns", "statmount_test",
                         "statmount_test_ns", "listmount_test"]
    assert tests[0].command == (f"bash {tree.repo}/harness/guest/writable-root.sh {tree.obj}"
                                "/upstream/filesystems/mount-notify/mount-notify_test")


def test_the_writable_root_wrapper_is_in_the_repository() -> None:
    assert (REPO / upstream.WRITABLE_ROOT).read_text().startswith("#!/bin/bash")


# --- their output ---------------------------------------------------------------------

def test_a_whole_program_skip_is_one_counted_skip(tmp_path: Path) -> None:
    out = "TAP version 13\n1..0 # SKIP statmount() syscall not supported\n"
    (tmp_path / "statmount_test.out").write_text(out)
    (tmp_path / "statmount_test.rc").write_text("4\n")
    result = suite.collect_one(tmp_path, GuestTest("statmount_test", "x", 30))
    assert result.status is Status.SKIPPED
    assert result.reason == "statmount() syscall not supported"
    counts = report.RunReport([result]).counts()
    assert (counts.passed, counts.failed, counts.skipped) == (0, 0, 1)


def test_exit_4_after_some_tests_is_not_a_failure(tmp_path: Path) -> None:
    out = "TAP version 13\n1..2\nok 1 listmount empty root\nok 2 # SKIP no ns\n"
    (tmp_path / "p.out").write_text(out)
    (tmp_path / "p.rc").write_text("4\n")
    result = suite.collect_one(tmp_path, GuestTest("p", "x", 30))
    assert result.status is Status.PASSED
    assert [leaf.status for leaf in result.leaves()] == [Status.PASSED, Status.SKIPPED]


def test_a_plan_of_zero_without_skip_is_still_no_result() -> None:
    assert ktap.parse(["1..0"], "p").status is Status.CRASHED
