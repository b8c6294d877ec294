"""Running commands with their output kept in a log."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError


@dataclass
class StageResult:
    """What every stage returns: its name, whether it did work, and how long it took."""

    stage: str
    elapsed: float
    detail: str = ""


def run_logged(cmd: Sequence[str | Path], log: Path, what: str,
               cwd: Path | None = None, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, appending its combined output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", buffering=1) as fh:
        fh.write(f"$ {' '.join(str(c) for c in cmd)}\n")
        fh.flush()
        start = time.monotonic()
        try:
            proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError as exc:
            raise HarnessError(f"{what}: command not found: {cmd[0]}", log) from exc
        fh.write(proc.stdout)
        fh.write(f"# exit {proc.returncode} after {time.monotonic() - start:.1f}s\n")
    if check and proc.returncode != 0:
        last = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise HarnessError(f"{what} failed (exit {proc.returncode}): {last[0]}", log)
    return proc


def git(src: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(src), *args], text=True,
                          capture_output=True)
    if check and proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args)} failed in {src}: {proc.stderr.strip()}")
    return proc.stdout.strip()


class Timer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
