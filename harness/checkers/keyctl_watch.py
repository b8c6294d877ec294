"""Regression check of a real notification-pipe user: keyutils' ``keyctl watch``.

Runs inside the test VM (as root, host root filesystem read-only):

    python3 -m harness.checkers.keyctl_watch

In a fresh session keyring it starts two ``keyctl watch`` consumers, one on a
keyring and one on a user key in it, drives every key event the kernel posts
(link, unlink, update, setattr, clear, revoke, invalidate, and the removal
notification when a watched key is destroyed), and checks each consumer's
output exactly and in order.  ``keyctl watch`` prints, line-buffered:

    <id> link <aux>   <id> unlk <aux>   <id> upd   <id> clr
    <id> rev          <id> inv          <id> attr
    <id> gc           (removal; it then exits 0, its watch id being 1)

Output is KTAP, one subtest per event kind.  Every wait is bounded.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from harness import uapi
from harness.checkers.ktap_out import KtapWriter, Outcome
from harness.checkers.lines import (
    LINE_TIMEOUT,
    CheckFailed,
    LinePump,
    run_checker,
    run_step,
)
from harness.checkers.syscalls import sys_call

_U = uapi.current()

CMD_TIMEOUT = 10.0  # seconds for one keyctl command
DEADLINE = 100  # seconds for the whole check (the harness allows 120)
PERM = "0x3f3f0000"  # possessor: all, user: all

# No "inst": the kernel posts NOTIFY_KEY_INSTANTIATED only to the watchers of a key
# being constructed, and KEYCTL_WATCH_KEY waits for construction to finish before it
# adds a watch (lookup_user_key() without KEY_LOOKUP_PARTIAL), so no watcher exists to
# receive it. A subtest for it could only ever skip.
KINDS = ("link", "unlk", "upd", "attr", "clr", "rev", "inv", "gc")


class Watcher(LinePump):
    """A ``keyctl watch <key>`` process."""

    def __init__(self, keyctl: str, key: int) -> None:
        self.key = key
        proc = subprocess.Popen([keyctl, "watch", str(key)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        super().__init__(proc, proc.stdout.fileno(), f"watch {key}")

    def expect_end(self) -> None:
        """No more output, and keyctl exits 0."""
        got = self.next_line(LINE_TIMEOUT)
        if got is not None:
            raise CheckFailed(f"watch {self.key}: unexpected line {got!r} after removal")
        rc = self.wait_exit(LINE_TIMEOUT)
        if rc != 0:
            raise CheckFailed(f"keyctl watch {self.key}: exit status {rc} after removal")


class Checker:
    def __init__(self, keyctl: str) -> None:
        self.keyctl = keyctl
        self.outcomes = {kind: Outcome(kind) for kind in KINDS}
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
        give_up = time.monotonic() + 3 * LINE_TIMEOUT
        while True:
            self.keyctl_out("setperm", str(key), PERM)
            try:
                first = w.next_line(0.3)
            except CheckFailed:
                if w.proc.poll() is not None or time.monotonic() > give_up:
                    raise CheckFailed(f"keyctl watch {key} never reported a change "
                                      f"(exit {w.proc.poll()}, stderr: "
                                      f"{w.stderr_text()})") from None
                continue
            break
        if first is None:
            w.wait_exit(LINE_TIMEOUT)
            time.sleep(0.1)  # let the stderr thread catch up
            raise CheckFailed(f"keyctl watch {key} exited with status {w.proc.poll()} "
                              f"(stderr: {w.stderr_text()})")
        stray = [line for line in [first, *w.drain()] if line != f"{key} attr"]
        if stray:
            raise CheckFailed(f"keyctl watch {key}: unexpected lines while starting: {stray}")
        return w

    def step(self, kind: str, what: str, action: Callable[[], None]) -> None:
        """Run one action; a failure is recorded against its event kind."""
        run_step(self.outcomes[kind], what, action, self.watchers)

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
                    out.fail(f"setup: {e}")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    keyctl = shutil.which("keyctl")
    if keyctl is None:
        KtapWriter().skip_all("keyctl_watch", "keyctl not installed")
        return 0
    # A fresh anonymous session keyring, which the keyctl commands inherit: nothing
    # of the caller's keys is touched, and every key made here dies with us.
    try:
        sys_call(_U.NR_keyctl, _U.KEYCTL_JOIN_SESSION_KEYRING, None)
    except OSError as e:
        KtapWriter().bail_out(f"keyctl_watch: joining a new session keyring: {e.strerror}")
        return 1
    checker = Checker(keyctl)
    return run_checker(checker.run, checker.close, list(checker.outcomes.values()),
                       "keyctl_watch_", DEADLINE)


if __name__ == "__main__":
    sys.exit(main())
