"""The README stands alone: no pointer outside the repository, every make target, whole tables."""
from __future__ import annotations

import re

from harness.layout import REPO

TEXT = (REPO / "README.md").read_text()


def test_no_pointer_outside_the_repository() -> None:
    assert "../" not in TEXT and "shared/docs" not in TEXT


def test_every_make_target_is_documented() -> None:
    make = (REPO / "Makefile").read_text()
    phony = make.split(".PHONY:")[1].split("\n\n")[0].replace("\\", " ").split()
    for target in phony:
        if target not in ("all", "help"):
            assert f"make {target}" in TEXT, target


def test_tables_are_not_split_by_blank_lines() -> None:
    lines = TEXT.splitlines()
    for i, line in enumerate(lines[1:-1], 1):
        if not line.strip():
            assert not (lines[i - 1].startswith("|") and lines[i + 1].startswith("|---")), i
            assert not (lines[i - 1].startswith("|") and lines[i + 1].startswith("| `")), i


def test_stress_sizes_match_the_code() -> None:
    cycles = re.search(r"#define DEFAULT_CYCLES (\d+)", (REPO / "selftests" / "wq_util.h")
                       .read_text())
    assert cycles and f"{int(cycles.group(1)):,} mount/umount cycles" in TEXT
    from harness.checkers import mount_oracle, ring_diff
    assert f"{ring_diff.DEFAULT_OPS:,} random operations" in TEXT
    assert f"{mount_oracle.DEFAULT_OPS:,} random mount" in TEXT


def test_the_disk_space_the_code_checks_is_stated() -> None:
    assert "6 << 30" in (REPO / "harness" / "source.py").read_text()
    assert "6 GiB" in TEXT
