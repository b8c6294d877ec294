"""check-series' head checks: checkpatch's options, the uapi compile test, the man pages
lint, the in-tree selftests, sid's sparse (fake apt, make, perl where needed)."""
from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from harness import series, seriescheck, sidsparse
from harness.errors import HarnessError
from harness.layout import Layout
from tests.fakes import FakeApt


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# --- checkpatch ------------------------------------------------------------------------

def fake_checkpatch(layout: Layout, output: str) -> Path:
    args = layout.src / "checkpatch.args"
    script(layout.src / "scripts" / "checkpatch.pl",
           f'open(my $f, ">", "{args}"); print $f join(" ", @ARGV); close $f;\n'
           f"print <<'END';\n{output}\nEND\n")
    return args


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    lay = Layout(tmp_path)
    lay.src.mkdir(parents=True)
    return lay


def test_checkpatch_ignores_unknown_commit_ids(layout: Layout, tmp_path: Path) -> None:
    args = fake_checkpatch(layout, "total: 0 errors, 0 warnings, 2 checks, 40 lines checked")
    ok, detail = series.checkpatch(layout, tmp_path / "0001-x.patch")
    assert ok and detail == "0 errors, 0 warnings, 2 checks"
    assert "--strict" in args.read_text() and "--ignore UNKNOWN_COMMIT_ID" in args.read_text()


def test_checkpatch_failure_names_the_first_problem(layout: Layout, tmp_path: Path) -> None:
    fake_checkpatch(layout, "WARNING: Missing a blank line after declarations\n"
                            "total: 0 errors, 1 warnings, 0 checks, 40 lines checked")
    ok, detail = series.checkpatch(layout, tmp_path / "0001-x.patch")
    assert not ok and detail.endswith("WARNING: Missing a blank line after declarations")


def test_checkpatch_without_a_verdict_fails(layout: Layout, tmp_path: Path) -> None:
    fake_checkpatch(layout, "Can't locate ply.pm")
    ok, detail = series.checkpatch(layout, tmp_path / "0001-x.patch")
    assert not ok and detail.startswith("checkpatch gave no verdict")


# --- uapi ------------------------------------------------------------------------------

def test_uapi_headers_are_the_touched_generic_and_x86_ones() -> None:
    touched = ["include/uapi/linux/watch_queue.h", "include/linux/watch_queue.h",
               "arch/x86/include/uapi/asm/unistd.h", "arch/arm64/include/uapi/asm/x.h",
               "kernel/watch_queue.c", "include/uapi/asm-generic/unistd.h"]
    assert seriescheck.uapi_headers(touched) == ["asm/unistd.h", "linux/watch_queue.h"]


def test_a_new_syscall_is_tested_as_x86_userspace_sees_it() -> None:
    # asm-generic/unistd.h redefines glibc's x86 __NR_ by design; the x86 table's
    # generated <asm/unistd.h> is what a program includes.
    touched = ["arch/x86/entry/syscalls/syscall_64.tbl", "fs/namespace.c"]
    assert seriescheck.uapi_headers(touched) == ["asm/unistd.h"]


def write_header(include: Path, text: str) -> None:
    (include / "linux").mkdir(parents=True, exist_ok=True)
    (include / "linux" / "wq_test.h").write_text(text)


def test_a_clean_header_compiles_as_c_and_cpp(tmp_path: Path) -> None:
    include = tmp_path / "hdr"
    write_header(include, "#ifndef X\n#define X\nstruct wq_x { int a; };\n#endif\n")
    assert seriescheck.compile_uapi(["linux/wq_test.h"], include, tmp_path / "w",
                                    tmp_path / "log") == []


def test_a_header_that_redefines_struct_flock_fails(tmp_path: Path) -> None:
    include = tmp_path / "hdr"
    write_header(include, "struct flock { short l_type; };\n")
    failures = seriescheck.compile_uapi(["linux/wq_test.h"], include, tmp_path / "w",
                                        tmp_path / "log")
    assert len(failures) == 4  # C and C++, both orders
    assert all("redefinition of 'struct flock'" in f for f in failures)


def test_a_header_that_is_not_cpp_fails_as_cpp_only(tmp_path: Path) -> None:
    include = tmp_path / "hdr"
    write_header(include, "static inline void *wq_f(void *p) { int *new = p; return new; }\n")
    failures = seriescheck.compile_uapi(["linux/wq_test.h"], include, tmp_path / "w",
                                        tmp_path / "log")
    assert failures and all(" as C++ " in f for f in failures)


# --- man pages, in-tree selftests --------------------------------------------------------

def test_man_lint_failure_is_a_failure(tmp_path: Path) -> None:
    lint = script(tmp_path / "lint.sh", "#!/bin/sh\necho 'man2/x.2:3:2: WARNING: bad'\nexit 1\n")
    assert seriescheck.man_lint(lint, tmp_path / "log") == [
        "man pages: lint.sh exit 1: man2/x.2:3:2: WARNING: bad"]
    ok = script(tmp_path / "ok.sh", "#!/bin/sh\necho clean\n")
    assert seriescheck.man_lint(ok, tmp_path / "log") == []
    assert "is missing" in seriescheck.man_lint(tmp_path / "none.sh", tmp_path / "log")[0]


def test_in_tree_selftests_must_match(tmp_path: Path) -> None:
    ours, tree = tmp_path / "selftests", tmp_path / "tree"
    ours.mkdir()
    (ours / "ring_test.c").write_text("int a;\n")
    (ours / "wq_util.h").write_text("int b;\n")
    (ours / "Makefile").write_text("not compared\n")
    assert seriescheck.selftests_identical(ours, tree) is None  # no such patch yet
    tree.mkdir()
    (tree / "ring_test.c").write_text("int a;\n")
    assert seriescheck.selftests_identical(ours, tree) == [
        "selftests: wq_util.h is not in tools/testing/selftests/watch_queue/ of the series"]
    (tree / "wq_util.h").write_text("int c;\n")
    assert seriescheck.selftests_identical(ours, tree) == [
        "selftests: wq_util.h differs from tools/testing/selftests/watch_queue/wq_util.h in "
        "the series"]
    (tree / "wq_util.h").write_text("int b;\n")
    assert seriescheck.selftests_identical(ours, tree) == []


# --- sparse ----------------------------------------------------------------------------

def test_sparse_checks_the_built_objects_of_the_touched_c_files(tmp_path: Path) -> None:
    obj = tmp_path / "obj"
    (obj / "kernel").mkdir(parents=True)
    (obj / "kernel" / "watch_queue.o").write_text("")
    touched = ["kernel/watch_queue.c", "fs/mount_notify.c", "samples/watch_queue/ring.c",
               "include/linux/watch_queue.h"]
    assert seriescheck.sparse_objects(touched, obj) == (["kernel/watch_queue.o"],
                                                        ["fs/mount_notify.c"])


def test_every_sparse_warning_fails(tmp_path: Path) -> None:
    make = script(tmp_path / "make", "#!/bin/sh\necho \"$@\" >" + str(tmp_path / "args") +
                  "\necho '  CHECK   kernel/watch_queue.c'\n"
                  "echo 'kernel/watch_queue.c:12:5: warning: symbol x was not declared'\n")
    failures = seriescheck.run_sparse(tmp_path, tmp_path / "obj", tmp_path / "sparse",
                                      ["kernel/watch_queue.o"], tmp_path / "log", [str(make)])
    assert failures == ["sparse: kernel/watch_queue.c:12:5: warning: symbol x was not declared"]
    assert "C=2 CHECK=" in (tmp_path / "args").read_text()


def test_sid_sparse_is_fetched_and_started_through_its_own_loader(
        tmp_path: Path, fake_apt: FakeApt) -> None:
    exe = 0o755
    for package in sidsparse.PACKAGES:
        files: dict[str, tuple[bytes, int]] = {f"usr/share/doc/{package}/copyright": (b"", 0o644)}
        if package == "libc6":
            files[f"{sidsparse.LIBDIR}/ld-linux-x86-64.so.2"] = (
                b'#!/bin/sh\n[ "$1" = --library-path ] || exit 9\nshift 2\nexec "$@"\n', exe)
        if package == "sparse":
            files["usr/bin/sparse"] = (b'#!/bin/sh\necho "0.6.5-rc1 $*"\n', exe)
        fake_apt.publish_files(package, "1.0-1", files)
    layout = Layout(tmp_path)
    wrapper = sidsparse.ensure(layout, tmp_path / "log")
    root = sidsparse.cache(layout) / "root"
    assert wrapper.read_text() == sidsparse.wrapper_text(root)
    out = subprocess.run([str(wrapper), "-Wx", "a.c"], text=True, capture_output=True,
                         check=True).stdout
    assert out == "0.6.5-rc1 -Wx a.c\n"
    calls = len(fake_apt.calls())
    sidsparse.ensure(layout, tmp_path / "log")  # cached: no download, no unpack
    assert not [c for c in fake_apt.calls()[calls:] if c[0] == "dpkg-deb" or "download" in c]


def test_a_package_sid_no_longer_has_is_named(tmp_path: Path, fake_apt: FakeApt) -> None:
    fake_apt.publish_files("sparse", "1.0-1", {})
    with pytest.raises(HarnessError, match="sid offers no libc6"):
        sidsparse.ensure(Layout(tmp_path), tmp_path / "log")


# --- cover letter ------------------------------------------------------------------

def write_patch(folder: Path, name: str, subject: str) -> Path:
    path = folder / name
    path.write_text(f"From 0 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: {subject}\n\n"
                    "body\n")
    return path


def cover_fixture(tmp_path: Path, subject: str, shortlog: str) -> tuple[Path, list[Path]]:
    patches = [write_patch(tmp_path, "0001-a.patch", "[PATCH 01/02] watch_queue: Fix a"),
               write_patch(tmp_path, "0002-b.patch",
                           "[PATCH 02/02] watch_queue: Let <linux/watch_queue.h> be used\n"
                           " with the C library's <fcntl.h>")]
    cover = tmp_path / "0000-cover-letter.patch"
    cover.write_text(f"From 0 Mon Sep 17 00:00:00 2001\nSubject: {subject}\n\nBased on "
                     f"linux-source-7.3 7.3.4-1~bpo13+1.\n\n{shortlog}\n")
    return cover, patches


SHORTLOG = ("  watch_queue: Fix a\n  watch_queue: Let <linux/watch_queue.h> be used with the C\n"
            "    library's <fcntl.h>\n")


def test_a_cover_letter_of_this_series_passes(tmp_path: Path) -> None:
    cover, patches = cover_fixture(tmp_path, "[PATCH 00/02] watch_queue: A ring", SHORTLOG)
    assert seriescheck.cover_letter(cover, patches, "7.3.4-1~bpo13+1") == []


def test_a_stale_cover_letter_names_what_is_stale(tmp_path: Path) -> None:
    cover, patches = cover_fixture(tmp_path, "[PATCH 0/9] watch_queue: A ring",
                                   "  watch_queue: Fix a\n")
    failures = seriescheck.cover_letter(cover, patches, "7.3.5-1")
    assert len(failures) == 3
    assert "does not say 00/02" in failures[0]
    assert "0002-b.patch" in failures[1] and "0001-a.patch" not in failures[1]
    assert "7.3.5-1" in failures[2]


def test_a_missing_cover_letter_fails(tmp_path: Path) -> None:
    assert seriescheck.cover_letter(tmp_path / "0000-cover-letter.patch", [], "") != []


# --- the kernel's header test on the touched headers ------------------------------

def hdrtest_tree(tmp_path: Path, header: str, check: str = "exit 0;\n") -> tuple[Path, Path]:
    include = tmp_path / "hdr"
    write_header(include, header)
    src = tmp_path / "src"
    (src / "usr" / "dummy-include").mkdir(parents=True)
    (src / "usr" / "include").mkdir(parents=True)
    (src / "usr" / "include" / "headers_check.pl").write_text(check)
    return include, src


def test_a_guarded_c90_header_passes_the_kernel_header_test(tmp_path: Path) -> None:
    include, src = hdrtest_tree(tmp_path, "#ifndef X\n#define X\nstruct wq_x { int a; };\n"
                                          "#endif\n")
    assert seriescheck.hdrtest(["linux/wq_test.h"], include, src, tmp_path / "log") == []


def test_a_cxx_comment_fails_as_c90(tmp_path: Path) -> None:
    include, src = hdrtest_tree(tmp_path, "#ifndef X\n#define X\n// no\n#endif\n")
    failures = seriescheck.hdrtest(["linux/wq_test.h"], include, src, tmp_path / "log")
    assert len(failures) == 1 and "(C90)" in failures[0]


def test_a_missing_include_guard_fails(tmp_path: Path) -> None:
    include, src = hdrtest_tree(tmp_path, "struct wq_x { int a; };\n")
    failures = seriescheck.hdrtest(["linux/wq_test.h"], include, src, tmp_path / "log")
    assert len(failures) == 1 and "redefinition" in failures[0]


def test_headers_check_complaints_fail(tmp_path: Path) -> None:
    include, src = hdrtest_tree(tmp_path, "#ifndef X\n#define X\n#endif\n",
                                'print "wq_test.h:3: leaks CONFIG_X to userspace\\n"; exit 1;\n')
    failures = seriescheck.hdrtest(["linux/wq_test.h", "asm-generic/unistd.h"], include, src,
                                   tmp_path / "log")
    assert failures == ["uapi: linux/wq_test.h fails the kernel's header test "
                        "(headers_check.pl): wq_test.h:3: leaks CONFIG_X to userspace"]
