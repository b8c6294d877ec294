"""A selftest that does not compile is reported, and the others still run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import bench, build
from harness.errors import HarnessError
from harness.layout import Layout

# The shape of selftests/Makefile: every *.c a program in $(OUT), plus a helper.
MAKEFILE = """\
TESTS := $(sort $(basename $(notdir $(wildcard *.c))))
all: $(addprefix $(OUT)/,$(TESTS)) $(OUT)/helper
$(OUT)/%: %.c
\tmkdir -p $(OUT) && cc -o $@ $<
$(OUT)/helper: helper.src
\tmkdir -p $(OUT) && cp $< $@ && chmod +x $@
bench: $(OUT)/bench/ring_bench
$(OUT)/bench/ring_bench: helper.src
\tmkdir -p $(OUT)/bench && cp $< $@ && chmod +x $@
"""


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    layout = Layout(tmp_path)
    layout.selftests.mkdir()
    (layout.selftests / "Makefile").write_text(MAKEFILE)
    (layout.selftests / "good_test.c").write_text("int main(void) { return 0; }\n")
    (layout.selftests / "bad_test.c").write_text("int main(void) { return 0; }\n")
    (layout.selftests / "helper.src").write_text("#!/bin/sh\n")
    return layout


def test_a_program_that_does_not_compile_does_not_stop_the_rest(layout: Layout) -> None:
    log = layout.build / "log"
    build.build_selftests(layout, log)
    stale = layout.selftests_out / "bad_test"
    assert stale.exists()
    (layout.selftests / "bad_test.c").write_text("int main(void) { return nope; }\n")
    res = build.build_selftests(layout, log)
    assert res.detail.startswith("2 programs; bad_test did not build: ")
    assert "nope" in res.detail
    assert not stale.exists()  # no stale binary runs in its place
    # It still goes into the VM's list (suite.guest_tests), and fails there.
    assert [p.name for p in build.selftest_programs(layout)] == ["bad_test", "good_test"]


def test_a_broken_helper_is_a_harness_error(layout: Layout) -> None:
    (layout.selftests / "helper.src").unlink()
    with pytest.raises(HarnessError, match="selftests build failed"):
        build.build_selftests(layout, layout.build / "log")


def test_a_broken_benchmark_build_is_a_harness_error(layout: Layout) -> None:
    (layout.selftests / "helper.src").unlink()  # the benchmark's input
    with pytest.raises(HarnessError, match="selftests build failed"):
        build.build_selftests(layout, layout.build / "log", "bench")


def test_make_bench_works_from_a_fresh_build_folder(layout: Layout) -> None:
    """Only the benchmarks are built: "no selftest binaries" must not stop make bench."""
    res = build.build_selftests(layout, layout.build / "log", "bench")
    assert res.detail == "1 bench programs"
    assert not (layout.selftests_out / "good_test").exists()


def test_bench_runs_only_programs_whose_source_exists(layout: Layout) -> None:
    (layout.selftests / "bench").mkdir()
    (layout.selftests / "bench" / "ring_bench.c").write_text("int main(void) { return 0; }\n")
    out = layout.selftests_out / "bench"
    out.mkdir(parents=True)
    for name in ("ring_bench", "mount_bench"):  # mount_bench.c was removed
        (out / name).write_text("")
    assert [p.name for p in bench.bench_programs(layout)] == ["ring_bench"]


def test_benchmarks_run_one_after_the_other(layout: Layout) -> None:
    # One group: a lane that is free never starts a benchmark beside another one.
    (layout.selftests / "bench").mkdir()
    out = layout.selftests_out / "bench"
    out.mkdir(parents=True)
    for name in ("mount_bench", "ring_bench"):
        (layout.selftests / "bench" / f"{name}.c").write_text("")
        (out / name).write_text("")
    tests = bench.guest_tests(layout)
    assert [t.name for t in tests] == ["bench_mount_bench", "bench_ring_bench"]
    assert {(t.group, t.order) for t in tests} == {("bench", 0)}


def test_reinstalled_headers_keep_their_mtime_unless_they_changed(tmp_path: Path) -> None:
    src, dst = tmp_path / "new", tmp_path / "hdr"
    for tree in (src, dst):
        (tree / "include" / "linux").mkdir(parents=True)
        (tree / "include" / "linux" / "same.h").write_text("same\n")
    (src / "include" / "linux" / "changed.h").write_text("new\n")
    (dst / "include" / "linux" / "changed.h").write_text("old\n")
    (src / "include" / "linux" / "added.h").write_text("added\n")
    (dst / "include" / "linux" / "gone.h").write_text("gone\n")
    same = dst / "include" / "linux" / "same.h"
    os.utime(same, (1, 1))
    assert build.sync_tree(src, dst) == 3
    assert same.stat().st_mtime == 1  # untouched: nothing that includes it rebuilds
    assert (dst / "include" / "linux" / "changed.h").read_text() == "new\n"
    assert (dst / "include" / "linux" / "added.h").exists()
    assert not (dst / "include" / "linux" / "gone.h").exists()
    assert build.sync_tree(src, dst) == 0
