# SPDX-License-Identifier: GPL-2.0
"""harness.uapi: the constants come from uapi_dump's JSON, and uapi_dump.c and
the Uapi dataclass name the same constants."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from harness import uapi
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent
DUMP_C = REPO / "selftests" / "drivers" / "uapi_dump.c"
DATA = Path(__file__).parent / "data" / "uapi.json"

_ENTRY = re.compile(r"^\s*(C|S|SIZE|OFF|IOC_SIZE)\(([^)]*)\);", re.M)


def c_names() -> list[str]:
    """The JSON names uapi_dump.c prints, in order."""
    names = []
    for macro, args in _ENTRY.findall(DUMP_C.read_text()):
        parts = [a.strip() for a in args.split(",")]
        if macro in ("C", "S"):
            names.append(parts[0])
        elif macro == "SIZE":
            names.append(f"sizeof_{parts[0]}")
        elif macro == "OFF":
            names.append(f"offsetof_{parts[0]}_{parts[1]}")
        else:
            names.append(f"{parts[0]}_size")
    return names


def test_dump_program_and_dataclass_agree() -> None:
    fields = [f.name for f in dataclasses.fields(uapi.Uapi)]
    assert [uapi.field_name(n) for n in c_names()] == fields


def test_snapshot_is_what_the_dump_program_prints() -> None:
    raw = json.loads(DATA.read_text())
    assert list(raw) == c_names()


def test_ioctl_encodings_carry_the_struct_sizes() -> None:
    """asm-generic/ioctl.h: bits 16..29 are the size the kernel copies."""
    u = uapi.load(DATA)
    assert u.sizeof_watch_notification == u.IOC_WATCH_QUEUE_INJECT >> 16 & 0x3FFF
    assert u.IOC_WATCH_QUEUE_TAKE_LOSS_size == u.IOC_WATCH_QUEUE_TAKE_LOSS >> 16 & 0x3FFF
    assert u.IOC_WATCH_QUEUE_NR_PAGES >> 16 == 0


def test_parse_rejects_drift() -> None:
    raw = json.loads(DATA.read_text())
    assert uapi.parse(json.dumps(raw)).NR_watch_mount == raw["__NR_watch_mount"]
    missing = dict(raw)
    del missing["WATCH_TYPE__NR"]
    with pytest.raises(HarnessError, match=r"missing \['WATCH_TYPE__NR'\]"):
        uapi.parse(json.dumps(missing))
    with pytest.raises(HarnessError, match=r"unknown \['NEW_THING'\]"):
        uapi.parse(json.dumps({**raw, "NEW_THING": 1}))
    with pytest.raises(HarnessError, match="not integers"):
        uapi.parse(json.dumps({**raw, "WATCH_TYPE_META": "0"}))
    with pytest.raises(HarnessError, match="not JSON"):
        uapi.parse("{")


def test_locate_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMTEST_UAPI", "/a/uapi.json")
    monkeypatch.setenv("VMTEST_SELFTESTS", "/b")
    assert uapi.locate() == Path("/a/uapi.json")
    monkeypatch.delenv("VMTEST_UAPI")
    assert uapi.locate() == Path("/b/uapi.json")
    monkeypatch.delenv("VMTEST_SELFTESTS")
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path))
    assert uapi.locate() == tmp_path / "obj-default" / "selftests" / "uapi.json"


def test_load_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=str(tmp_path / "none.json")):
        uapi.load(tmp_path / "none.json")
