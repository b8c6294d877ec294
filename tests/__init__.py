"""Unit tests of the harness (no VM).

They are hermetic: the VMTEST_* variables a developer or CI may have set
(a build folder elsewhere, an accelerator, the guest's folders) are dropped
before any test module is imported, and the uapi constants come from
tests/data/uapi.json (what uapi_dump prints for the 7.3 headers with the
series), never from a build folder.  A test that wants one of the variables
sets it with monkeypatch.
"""
from __future__ import annotations

import os
from pathlib import Path

for _name in [n for n in os.environ if n.startswith("VMTEST_")]:
    del os.environ[_name]
os.environ["VMTEST_UAPI"] = str(Path(__file__).parent / "data" / "uapi.json")
