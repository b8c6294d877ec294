"""Merge configs/ fragments into .config and check that every request survived."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import PROFILES, Layout
from harness.proc import StageResult, Timer, run_logged

_SET = re.compile(r"^(CONFIG_\w+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_\w+) is not set$")


@dataclass(frozen=True)
class Request:
    option: str
    value: str  # "n" for "is not set"
    origin: str  # fragment:line


def fragments(layout: Layout) -> list[Path]:
    """base.config first, then the feature fragments, then the profile's own."""
    frags = sorted(layout.configs.glob("*.config"))
    base = [f for f in frags if f.stem == "base"]
    features = [f for f in frags if f.stem != "base" and f.stem not in PROFILES]
    profile = [f for f in frags if f.stem == layout.profile]
    if not base:
        raise HarnessError(f"no {layout.configs}/base.config")
    return base + features + profile


def parse_fragment(text: str, name: str) -> list[Request]:
    reqs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if m := _SET.match(line):
            reqs.append(Request(m.group(1), m.group(2), f"{name}:{number}"))
        elif m := _UNSET.match(line):
            reqs.append(Request(m.group(1), "n", f"{name}:{number}"))
        elif line and not line.startswith("#"):
            raise HarnessError(f"{name}:{number}: not a config line: {line!r}")
    return reqs


def merge(layout: Layout) -> tuple[str, list[Request]]:
    """The merged fragment text (later fragments win) and the final requests."""
    final: dict[str, Request] = {}
    for frag in fragments(layout):
        for req in parse_fragment(frag.read_text(), frag.name):
            final[req.option] = req
    lines = [f"# CONFIG_{r.option[7:]} is not set" if r.value == "n" else f"{r.option}={r.value}"
             for r in final.values()]
    return "\n".join(lines) + "\n", list(final.values())


def read_config(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
    return values


def dropped(requests: list[Request], config: dict[str, str]) -> list[str]:
    """Every request the resolved config does not honour, as a readable line."""
    out = []
    for req in requests:
        got = config.get(req.option, "n")
        if got != req.value:
            out.append(f"{req.option}={req.value} ({req.origin}) ended up "
                       f"{'not set' if got == 'n' else '=' + got}")
    return out


def configure(layout: Layout, log: Path, extra: str = "") -> StageResult:
    """Write obj/.config from the fragments; leave it untouched if nothing changed.

    ``extra`` is one more fragment, applied last (PLANT=leak's module options).
    """
    timer = Timer()
    layout.obj.mkdir(parents=True, exist_ok=True)
    merged, requests = merge(layout)
    if extra:
        more = parse_fragment(extra, "extra")
        merged += "".join(f"# CONFIG_{r.option[7:]} is not set\n" if r.value == "n"
                          else f"{r.option}={r.value}\n" for r in more)
        mine = {r.option for r in more}
        requests = [r for r in requests if r.option not in mine] + more
    frag = layout.obj / "vmtest-fragment.config"
    frag.write_text(merged)
    candidate = layout.obj / ".config.vmtest-candidate"
    env = dict(os.environ, KCONFIG_CONFIG=candidate.name)
    run_logged(["make", "-s", "-C", layout.src, f"O={layout.obj}", "allnoconfig",
                f"KCONFIG_ALLCONFIG={frag}"], log, "kernel config (allnoconfig)", env=env)
    text = candidate.read_text()
    lost = dropped(requests, read_config(text))
    if lost:
        raise HarnessError(
            f"{len(lost)} requested config option(s) dropped by Kconfig (missing dependency?): "
            + "; ".join(lost), log)
    config = layout.obj / ".config"
    if config.exists() and config.read_text() == text:
        candidate.unlink()
        return StageResult("config", timer.elapsed(), "unchanged")
    candidate.replace(config)
    return StageResult("config", timer.elapsed(), f"{len(requests)} options requested, all present")
