# SPDX-License-Identifier: GPL-2.0
"""The unit tests do not see the developer's VMTEST_* settings (tests/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.layout import REPO, default_layout


def test_no_vmtest_variable_leaks_in() -> None:
    assert [n for n in os.environ if n.startswith("VMTEST_")] == ["VMTEST_UAPI"]
    assert default_layout().build == REPO / "build"


def test_a_build_dir_in_the_environment_is_dropped(tmp_path: Path) -> None:
    env = dict(os.environ, VMTEST_BUILD_DIR=str(tmp_path / "elsewhere"),
               VMTEST_SELFTESTS=str(tmp_path / "st"))
    code = ("import tests, os; from harness.layout import default_layout; "
            "print(default_layout().build, os.environ.get('VMTEST_SELFTESTS'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [str(REPO / "build"), "None"]
