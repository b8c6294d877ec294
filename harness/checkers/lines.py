# SPDX-License-Identifier: GPL-2.0
"""What keyctl_watch and watch_sample share: a line pump that follows a child's
output with a timeout on every wait, the per-step bookkeeping, the deadline."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from harness.checkers.ktap_out import Outcome, write_outcomes

LINE_TIMEOUT = 5.0  # seconds to wait for one expected line (TCG guests are slow)
QUIET = 0.5  # seconds of silence that count as "nothing more is coming"


class CheckFailed(Exception):
    """One expectation did not hold."""


class DeadlineExpired(Exception):
    """The whole check ran out of time."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise DeadlineExpired in the main thread after seconds."""
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExpired(f"checker deadline of {seconds}s expired")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _read_lines(fd: int, put: Callable[[str], None]) -> None:
    """Every line read from fd (a pipe or a pty master; EIO is the end)."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once a pty's slave side is closed
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *done, pending = pending.split(b"\n")
        for line in done:
            put(line.decode(errors="replace").rstrip("\r"))
    if pending:
        put(pending.decode(errors="replace").rstrip("\r"))


class LinePump:
    """A child process whose output lines (from out_fd) are queued by a thread,
    its stderr lines collected by another."""

    def __init__(self, proc: subprocess.Popen[bytes], out_fd: int, who: str) -> None:
        self.proc = proc
        self.who = who
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.eof = False
        threading.Thread(target=self._pump_out, args=(out_fd,), daemon=True).start()
        if proc.stderr is not None:
            threading.Thread(target=_read_lines, args=(proc.stderr.fileno(), self.stderr.append),
                             daemon=True).start()

    def _pump_out(self, fd: int) -> None:
        _read_lines(fd, self.lines.put)
        self.lines.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next line; None at the end of the output; CheckFailed on timeout."""
        if self.eof:
            return None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise CheckFailed(f"{self.who}: no line within {timeout:g}s") from None
        if line is None:
            self.eof = True
        return line

    def stderr_text(self) -> str:
        return " | ".join(self.stderr) or "none"

    def expect(self, want: str) -> None:
        got = self.next_line(LINE_TIMEOUT)
        if got != want:
            shown = "end of output" if got is None else repr(got)
            extra = f" (stderr: {self.stderr_text()})" if self.stderr else ""
            raise CheckFailed(f"{self.who}: expected {want!r}, got {shown}{extra}")

    def expect_quiet(self) -> None:
        try:
            got = self.next_line(QUIET)
        except CheckFailed:
            return
        if got is not None:
            raise CheckFailed(f"{self.who}: unexpected line {got!r}")

    def drain(self) -> list[str]:
        """Whatever arrives until QUIET seconds of silence."""
        seen: list[str] = []
        while True:
            try:
                line = self.next_line(QUIET)
            except CheckFailed:
                return seen
            if line is None:
                return seen
            seen.append(line)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=LINE_TIMEOUT)


def run_step(out: Outcome, what: str, action: Callable[[], None],
             pumps: Sequence[LinePump]) -> bool:
    """Run one action; a failure is recorded against out, the pumps drained
    so the steps that follow start in step again.  DeadlineExpired passes."""
    out.ran = True
    try:
        action()
    except DeadlineExpired as e:
        out.fail(f"{what}: {e}")
        raise
    except CheckFailed as e:
        out.fail(f"{what}: {e}")
        for p in pumps:
            p.drain()
        return False
    return True


def run_checker(run: Callable[[], None], close: Callable[[], None],
                outcomes: Sequence[Outcome], prefix: str, seconds: int) -> int:
    """Run a checker under a deadline, always clean up, write its KTAP;
    the exit status.  A deadline is noted on every test that had not run."""
    try:
        with deadline(seconds):
            run()
    except DeadlineExpired as e:
        for out in outcomes:
            if not out.skip and not out.ran:
                out.diags.append(str(e))
    finally:
        close()
    return 0 if write_outcomes(outcomes, prefix) else 1
