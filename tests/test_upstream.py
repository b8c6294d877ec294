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


# --- the expected-skips file ----------------------------------------------------------

SKIPS = ("# comment\n\nstatmount_test.test 3\tneeds a second superblock type\n"
         "mount-notify_test_ns.*\tno user namespaces\n")


def test_parse_skips() -> None:
    skips = upstream.parse_skips(SKIPS, "f")
    assert list(skips) == ["statmount_test.test 3", "mount-notify_test_ns.*"]
    entry = skips["statmount_test.test 3"]
    assert (entry.program, entry.test, entry.reason, entry.origin) == (
        "statmount_test", "test 3", "needs a second superblock type", "f:3")


@pytest.mark.parametrize(("line", "why"), [
    ("statmount_test.test 3 no tab", "expected program.test<TAB>reason"),
    ("statmount_test.test 3\t ", "expected program.test<TAB>reason"),
    ("statmount_test\treason", "is not program.test"),
    (".x\treason", "is not program.test"),
    ("a.b\tone\na.b\ttwo", r"a\.b is listed twice \(first at f:1\)"),
])
def test_bad_skip_lines_are_refused(line: str, why: str) -> None:
    with pytest.raises(HarnessError, match=why):
        upstream.parse_skips(line + "\n", "f")


def test_review_tells_listed_unlisted_and_stale_skips() -> None:
    def program(name: str, lines: str) -> ktap.TestResult:
        return ktap.parse(["TAP version 13", *lines.splitlines()], name)

    suites = [program("statmount_test", "1..3\nok 1 a\nok 2 # SKIP x\nok 3 # SKIP y"),
              program("mount-notify_test_ns", "1..0 # SKIP no userns"),
              program("listmount_test", "1..1\nok 1 fwd"),
              program("ring_test", "1..1\nok 1 # SKIP not upstream")]
    expected = upstream.parse_skips(SKIPS + "listmount_test.fwd\tflaky\n", "f")
    names = {"statmount_test", "mount-notify_test_ns", "listmount_test"}
    review = upstream.review_skips(suites, names, expected)
    assert [key for key, _, _ in review.listed] == ["statmount_test.test 3",
                                                    "mount-notify_test_ns.*"]
    assert review.unlisted == [("statmount_test.test 2", "x")]
    assert [e.key for e in review.stale] == ["listmount_test.fwd"]
    lines = review.lines()
    assert lines[0] == ("SKIPPED statmount_test.test 3 (y): expected, needs a second "
                        "superblock type")
    assert "SKIPPED statmount_test.test 2 (x): NOT LISTED in" in lines[2]
    assert lines[3].startswith("note: listmount_test.fwd is listed")


def test_the_repository_skips_file_parses() -> None:
    path = REPO / upstream.SKIPS
    skips = upstream.parse_skips(path.read_text(), str(path))
    known = {"mount-notify_test", "mount-notify_test_ns", "statmount_test",
             "statmount_test_ns", "listmount_test"}
    assert {entry.program for entry in skips.values()} <= known
