"""Regression check of a real notification-pipe user: keyutils' ``keyctl watch``.

Runs inside the test VM (as root, host root filesystem read-only):

    python3 -m harness.checkers.keyctl_watch

In a fresh session keyring it starts two ``keyctl watch`` consumers, one on a
keyring and one on a user key in it, drives every key event the kernel posts
(link, unlink, update, setattr, clear, revoke, invalidate, and the removal
notification when a watched key is destroyed), and checks each consumer's
output exactly and in order.  ``keyctl watch`` prints, line-buffered:

    <id> link <aux>   <id> unlk <aux>   <id> upd   <id> clr
    <id> rev          <id> inv          <id> attr  <id> inst
    <id> gc           (removal; it then exits 0, its watch id being 1)

Output is KTAP, one subtest per event kind.  Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

MODULE = "harness.checkers.keyctl_watch"
SESSION_ENV = "KEYCTL_WATCH_CHECKER_SESSION"
LINE_TIMEOUT = 5.0  # seconds to wait for one expected line (TCG guests are slow)
QUIET = 0.5  # seconds of silence that count as "nothing more is coming"
CMD_TIMEOUT = 10.0  # seconds for one keyctl command
DEADLINE = 100  # seconds for the whole check (the harness allows 120)
PERM = "0x3f3f0000"  # possessor: all, user: all

KINDS = ("link", "unlk", "upd", "attr", "clr", "rev", "inv", "gc", "inst")
INST_SKIP = ("6.12 cannot post NOTIFY_KEY_INSTANTIATED to a watcher: KEYCTL_WATCH_KEY "
             "waits for key construction to finish")


class CheckFailed(Exception):
    """One expectation did not hold."""


class DeadlineExpired(Exception):
    """The whole check ran out of time."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise DeadlineExpired(f"checker deadline of {DEADLINE}s expired")


@dataclass
class Outcome:
    name: str
    diags: list[str] = field(default_factory=list)
    failed: bool = False
    skip: str = ""
    ran: bool = False


class Watcher:
    """A ``keyctl watch <key>`` process whose stdout lines are queued by a thread."""

    def __init__(self, keyctl: str, key: int) -> None:
        self.key = key
        self.proc = subprocess.Popen(
            [keyctl, "watch", str(key)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.eof = False
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def next_line(self, timeout: float) -> str | None:
        """The next stdout line; None at end of output; CheckFailed on timeout."""
        if self.eof:
            return None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise CheckFailed(f"watch {self.key}: no line within {timeout:g}s") from None
        if line is None:
            self.eof = True
        return line

    def expect(self, want: str) -> None:
        got = self.next_line(LINE_TIMEOUT)
        if got != want:
            shown = "end of output" if got is None else repr(got)
            extra = f" (stderr: {' | '.join(self.stderr)})" if self.stderr else ""
            raise CheckFailed(f"watch {self.key}: expected {want!r}, got {shown}{extra}")

    def expect_quiet(self) -> None:
        try:
            got = self.next_line(QUIET)
        except CheckFailed:
            return
        if got is not None:
            raise CheckFailed(f"watch {self.key}: unexpected line {got!r}")

    def expect_end(self) -> None:
        """No more output, and keyctl exits 0."""
        got = self.next_line(LINE_TIMEOUT)
        if got is not None:
            raise CheckFailed(f"watch {self.key}: unexpected line {got!r} after removal")
        rc = self.wait_exit(LINE_TIMEOUT)
        if rc != 0:
            raise CheckFailed(f"keyctl watch {self.key}: exit status {rc} after removal")

    def drain(self) -> list[str]:
        """Discard whatever arrives until QUIET seconds of silence."""
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
            self.proc.wait(timeout=CMD_TIMEOUT)


class Checker:
    def __init__(self, keyctl: str) -> None:
        self.keyctl = keyctl
        self.outcomes = {kind: Outcome(kind) for kind in KINDS}
        self.outcomes["inst"].skip = INST_SKIP
        self.watchers: list[Watcher] = []

    def keyctl_out(self, *args: str) -> str:
        try:
            proc = subprocess.run([self.keyctl, *args], capture_output=True, text=True,
                                  timeout=CMD_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"keyctl {' '.join(args)}: timed out") from None
        if proc.returncode != 0:
            raise CheckFailed(f"keyctl {' '.join(args)}: exit {proc.returncode}: "
                              f"{proc.stderr.strip()}")
        return proc.stdout.strip()

    def keyctl_id(self, *args: str) -> int:
        out = self.keyctl_out(*args)
        try:
            return int(out.split()[-1])
        except (ValueError, IndexError):
            raise CheckFailed(f"keyctl {' '.join(args)}: no key id in {out!r}") from None

    def watch(self, key: int) -> Watcher:
        """Start ``keyctl watch key`` and wait until its watch is in place.

        keyctl prints nothing when its watch is set, so probe: change the
        key's permissions (NOTIFY_KEY_SETATTR) until an "attr" line appears,
        then swallow the "attr" lines of probes still in flight.
        """
        w = Watcher(self.keyctl, key)
        self.watchers.append(w)
        deadline = time.monotonic() + 3 * LINE_TIMEOUT
        while True:
            self.keyctl_out("setperm", str(key), PERM)
            try:
                first = w.next_line(0.3)
            except CheckFailed:
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailed(f"keyctl watch {key} never reported a change "
                                      f"(exit {w.proc.poll()}, stderr: "
                                      f"{' | '.join(w.stderr) or 'none'})") from None
                continue
            break
        if first is None:
            w.wait_exit(LINE_TIMEOUT)
            time.sleep(0.1)  # let the stderr thread catch up
            raise CheckFailed(f"keyctl watch {key} exited with status {w.proc.poll()} "
                              f"(stderr: {' | '.join(w.stderr) or 'none'})")
        stray = [line for line in [first, *w.drain()] if line != f"{key} attr"]
        if stray:
            raise CheckFailed(f"keyctl watch {key}: unexpected lines while starting: {stray}")
        return w

    def step(self, kind: str, what: str, action: Callable[[], None]) -> None:
        """Run one action; a failure is recorded against its event kind."""
        out = self.outcomes[kind]
        out.ran = True
        try:
            action()
        except DeadlineExpired as e:
            out.failed = True
            out.diags.append(f"{what}: {e}")
            raise
        except CheckFailed as e:
            out.failed = True
            out.diags.append(f"{what}: {e}")
            for w in self.watchers:  # resynchronise for the steps that follow
                w.drain()

    def run(self) -> None:
        try:
            ring = self.keyctl_id("newring", "kw_ring", "@s")
            a = self.keyctl_id("add", "user", "kw_a", "aaa", str(ring))
            c = self.keyctl_id("add", "user", "kw_c", "ccc", "@s")
            wring = self.watch(ring)
            wkey = self.watch(a)
        except CheckFailed as e:
            for out in self.outcomes.values():
                if not out.skip:
                    out.failed = True
                    out.diags.append(f"setup: {e}")
            return
        b = 0

        # Events on the watched user key.
        def update() -> None:
            self.keyctl_out("update", str(a), "bbb")
            wkey.expect(f"{a} upd")

        def add_over() -> None:
            if self.keyctl_id("add", "user", "kw_a", "ccc", str(ring)) != a:
                raise CheckFailed("add_key over kw_a returned a new key")
            wkey.expect(f"{a} upd")
            wring.expect_quiet()  # an update is not a link

        def setperm_key() -> None:
            self.keyctl_out("setperm", str(a), PERM)
            wkey.expect(f"{a} attr")

        def timeout_key() -> None:
            self.keyctl_out("timeout", str(a), "3600")
            wkey.expect(f"{a} attr")

        def setperm_ring() -> None:
            self.keyctl_out("setperm", str(ring), PERM)
            wring.expect(f"{ring} attr")

        def revoke_key() -> None:
            self.keyctl_out("revoke", str(a))
            wkey.expect(f"{a} rev")

        # Events on the watched keyring.
        def add_into_ring() -> None:
            nonlocal b
            b = self.keyctl_id("add", "user", "kw_b", "bbb", str(ring))
            wring.expect(f"{ring} link {b}")

        def link_into_ring() -> None:
            self.keyctl_out("link", str(c), str(ring))
            wring.expect(f"{ring} link {c}")

        def unlink_from_ring() -> None:
            self.keyctl_out("unlink", str(b), str(ring))
            wring.expect(f"{ring} unlk {b}")

        def unlink_watched_key() -> None:
            self.keyctl_out("unlink", str(a), str(ring))
            wring.expect(f"{ring} unlk {a}")

        def key_gc() -> None:
            # The revoked key lost its last link: gc destroys it and keyctl
            # watch prints the removal, then exits because its watch id is 1.
            wkey.expect(f"{a} gc")
            wkey.expect_end()

        def clear_ring() -> None:
            self.keyctl_out("clear", str(ring))
            wring.expect(f"{ring} clr")

        def invalidate_ring() -> None:
            self.keyctl_out("invalidate", str(ring))
            wring.expect(f"{ring} inv")

        def ring_gc() -> None:
            wring.expect(f"{ring} gc")
            wring.expect_end()

        self.step("upd", "keyctl update", update)
        self.step("upd", "keyctl add over an existing key", add_over)
        self.step("attr", "keyctl setperm on the key", setperm_key)
        self.step("attr", "keyctl timeout on the key", timeout_key)
        self.step("attr", "keyctl setperm on the keyring", setperm_ring)
        self.step("rev", "keyctl revoke", revoke_key)
        self.step("link", "keyctl add into the keyring", add_into_ring)
        self.step("link", "keyctl link into the keyring", link_into_ring)
        self.step("unlk", "keyctl unlink from the keyring", unlink_from_ring)
        self.step("unlk", "keyctl unlink of the watched key", unlink_watched_key)
        self.step("gc", "removal of the watched key", key_gc)
        self.step("clr", "keyctl clear", clear_ring)
        self.step("inv", "keyctl invalidate", invalidate_ring)
        self.step("gc", "removal of the watched keyring", ring_gc)

    def close(self) -> None:
        for w in self.watchers:
            w.stop()


def emit(outcomes: Sequence[Outcome]) -> bool:
    print("KTAP version 1")
    print(f"1..{len(outcomes)}")
    ok_all = True
    for n, out in enumerate(outcomes, 1):
        name = f"keyctl_watch_{out.name}"
        for d in out.diags:
            print(f"# {d}")
        if out.skip:
            print(f"ok {n} {name} # SKIP {out.skip}")
        elif out.failed or not out.ran:
            if not out.ran and not out.diags:
                print("# not run")
            print(f"not ok {n} {name}")
            ok_all = False
        else:
            print(f"ok {n} {name}")
    sys.stdout.flush()
    return ok_all


def skip_all(reason: str) -> int:
    print("KTAP version 1")
    print("1..1")
    print(f"ok 1 keyctl_watch # SKIP {reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    keyctl = shutil.which("keyctl")
    if keyctl is None:
        return skip_all("keyctl not installed")
    if os.environ.get(SESSION_ENV) != "1":
        # Rerun in a fresh anonymous session keyring, so nothing of the
        # caller's keys is touched and every key made here dies with us.
        env = dict(os.environ, **{SESSION_ENV: "1"})
        sys.stdout.flush()
        try:
            proc = subprocess.run([keyctl, "session", "-", sys.executable, "-m", MODULE],
                                  env=env, timeout=DEADLINE + 10, check=False)
        except subprocess.TimeoutExpired:
            print("Bail out! keyctl_watch checker hung")
            return 1
        return proc.returncode
    checker = Checker(keyctl)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(DEADLINE)
    try:
        checker.run()
    except DeadlineExpired as e:
        for out in checker.outcomes.values():
            if not out.skip and not out.ran:
                out.diags.append(str(e))
    finally:
        signal.alarm(0)
        checker.close()
    return 0 if emit(list(checker.outcomes.values())) else 1


if __name__ == "__main__":
    sys.exit(main())
