"""Unit tests of the harness (no VM).

The uapi constants come from tests/data/uapi.json (what uapi_dump prints for
the 7.3 headers with the series), never from a build folder, so the tests are
the same whatever $VMTEST_BUILD_DIR or $VMTEST_SELFTESTS say.  Set here, before
any test module imports harness.ring_model.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ["VMTEST_UAPI"] = str(Path(__file__).parent / "data" / "uapi.json")
