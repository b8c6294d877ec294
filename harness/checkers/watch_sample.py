"""Regression check of the kernel tree's own watch_queue user, samples/watch_queue/watch_test.

Runs inside the test VM:

    python3 -m harness.checkers.watch_sample [--binary PATH]

PATH defaults to $VMTEST_SELFTESTS/samples/watch_test.  The sample opens a
notification pipe (256 notes, filter: every key subtype), watches the session
keyring as watch 1 and the user keyring as watch 2, and prints each read():

    read() = 16
    NOTIFY[000]: ty=000001 sy=02 i=00000110
    KEY 1234abcd change=2[linked] aux=305419896

This checker gives the sample a fresh session keyring, changes that keyring
(link, unlink, setattr, clear, revoke; invalidate in a second session) and the
user keyring, one event at a time, and compares the sample's lines exactly.
The sample's stdout is a pty so that its printf() output is line-buffered.
Key changes are made with raw keyctl(2)/add_key(2) through ctypes, so keyutils
is not needed.  Output is KTAP, one subtest per behaviour; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import subprocess
import sys
import time
import tty
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

DEADLINE = 100  # seconds for the whole check (the harness allows 120)

_U = uapi.current()
SUBTYPES = {_U.NOTIFY_KEY_INSTANTIATED: "instantiated", _U.NOTIFY_KEY_UPDATED: "updated",
            _U.NOTIFY_KEY_LINKED: "linked", _U.NOTIFY_KEY_UNLINKED: "unlinked",
            _U.NOTIFY_KEY_CLEARED: "cleared", _U.NOTIFY_KEY_REVOKED: "revoked",
            _U.NOTIFY_KEY_INVALIDATED: "invalidated", _U.NOTIFY_KEY_SETATTR: "setattr"}
KEY_NOTE_LEN = _U.sizeof_key_notification

TESTS = ("runs_and_watches_session_keyring", "linked", "unlinked", "setattr", "cleared",
         "revoked", "invalidated", "user_keyring_is_watch_id_2", "no_stray_output")


class Keys:
    """keyctl(2) and add_key(2), numbered by the installed headers."""

    def _call(self, what: str, nr: int, *args: object) -> int:
        try:
            return sys_call(nr, *args)
        except OSError as e:
            raise CheckFailed(f"{what}: {os.strerror(e.errno or 0)}") from None

    def keyctl(self, what: str, cmd: int, *args: int) -> int:
        return self._call(what, _U.NR_keyctl, cmd, *args)

    def add_key(self, type_: str, desc: str, payload: bytes, ring: int) -> int:
        return self._call(f"add_key {desc}", _U.NR_add_key, type_.encode(), desc.encode(),
                          payload, len(payload), ring)

    def new_session(self) -> int:
        return self.keyctl("join session", _U.KEYCTL_JOIN_SESSION_KEYRING, 0)

    def keyring_id(self, spec: int) -> int:
        return self.keyctl("get keyring id", _U.KEYCTL_GET_KEYRING_ID, spec, 0)

    def perm(self, key: int) -> int:
        buf = ctypes.create_string_buffer(256)
        self._call("describe", _U.NR_keyctl, _U.KEYCTL_DESCRIBE, key, buf, len(buf))
        fields = buf.value.decode(errors="replace").split(";")
        try:
            return int(fields[3], 16)
        except (IndexError, ValueError):
            raise CheckFailed(f"describe {key}: cannot parse {buf.value!r}") from None

    def setperm(self, key: int, perm: int) -> None:
        self.keyctl("setperm", _U.KEYCTL_SETPERM, key, perm)


class Sample(LinePump):
    """The sample with its stdout on a raw pty (so printf() is line-buffered)."""

    def __init__(self, binary: str) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            proc = subprocess.Popen([binary], stdin=subprocess.DEVNULL, stdout=slave,
                                    stderr=subprocess.PIPE)
        finally:
            os.close(slave)
        self.master = master
        super().__init__(proc, master, "sample")

    def expect_record(self, keyring: int, subtype: int, aux: int, watch_id: int) -> None:
        """The three lines the sample prints for one key record read on its own."""
        self.expect(f"read() = {KEY_NOTE_LEN}")
        info = (watch_id << 8) | KEY_NOTE_LEN
        self.expect(f"NOTIFY[000]: ty={_U.WATCH_TYPE_KEY_NOTIFY:06x} sy={subtype:02x} "
                    f"i={info:08x}")
        self.expect(f"KEY {keyring:08x} change={subtype}[{SUBTYPES[subtype]}] aux={aux}")

    def stop(self) -> None:
        super().stop()
        os.close(self.master)


class Checker:
    def __init__(self, binary: str, keys: Keys) -> None:
        self.binary = binary
        self.keys = keys
        self.outcomes = {name: Outcome(name) for name in TESTS}
        self.samples: list[Sample] = []
        self.running: dict[str, Sample] = {}

    def step(self, name: str, what: str, action: Callable[[], None]) -> bool:
        return run_step(self.outcomes[name], what, action, self.samples)

    def start(self, session: int) -> Sample:
        """Start the sample and wait until its watches are in place.

        The sample prints nothing until a record arrives, so probe: rewrite
        the session keyring's permissions (NOTIFY_KEY_SETATTR) until a record
        is printed, then swallow the lines of probes still in flight.
        """
        sample = Sample(self.binary)
        self.samples.append(sample)
        perm = self.keys.perm(session)
        give_up = time.monotonic() + 6 * LINE_TIMEOUT
        while True:
            self.keys.setperm(session, perm)
            try:
                first = sample.next_line(0.3)
            except CheckFailed:
                if sample.proc.poll() is not None or time.monotonic() > give_up:
                    raise CheckFailed(
                        f"{self.binary} never printed a record (exit {sample.proc.poll()}, "
                        f"stderr: {sample.stderr_text()})") from None
                continue
            break
        if first is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                sample.proc.wait(timeout=LINE_TIMEOUT)
            time.sleep(0.1)  # let the stderr thread catch up
            raise CheckFailed(f"{self.binary} exited with status {sample.proc.poll()} "
                              f"(stderr: {sample.stderr_text()})")
        lines = [first, *sample.drain()]
        setattr_ = _U.NOTIFY_KEY_SETATTR
        want = f"KEY {session:08x} change={setattr_}[{SUBTYPES[setattr_]}] aux=0"
        keys_lines = [line for line in lines if line.startswith("KEY ")]
        if not keys_lines or any(line != want for line in keys_lines):
            raise CheckFailed(f"unexpected output while starting: {lines}")
        for line in lines:
            if not line.startswith(("KEY ", "read() = ", "NOTIFY[")):
                raise CheckFailed(f"unexpected line while starting: {line!r}")
        return sample

    def finish(self, sample: Sample, what: str) -> None:
        """Nothing more printed, nothing on stderr, still running until stopped."""
        def check() -> None:
            stray = sample.drain()
            if stray:
                raise CheckFailed(f"unexpected lines: {stray}")
            if sample.proc.poll() is not None:
                raise CheckFailed(f"sample exited early with status {sample.proc.returncode}")
            if sample.stderr:
                raise CheckFailed(f"sample stderr: {sample.stderr_text()}")
        self.step("no_stray_output", what, check)

    def run(self) -> None:
        keys = self.keys
        ctx: dict[str, int] = {}

        def start_first() -> None:
            keys.new_session()
            ctx["s"] = keys.keyring_id(_U.KEY_SPEC_SESSION_KEYRING)
            ctx["u"] = keys.keyring_id(_U.KEY_SPEC_USER_KEYRING)
            self.running["first"] = self.start(ctx["s"])

        if not self.step("runs_and_watches_session_keyring", "first session", start_first):
            return
        s, u, smp = ctx["s"], ctx["u"], self.running["first"]

        def linked() -> None:
            ctx["a"] = keys.add_key("user", "ws_a", b"aaa", s)
            smp.expect_record(s, _U.NOTIFY_KEY_LINKED, ctx["a"], 1)

        def user_keyring() -> None:
            # Made in the session keyring, so possessed and linkable.
            ctx["c"] = keys.add_key("user", "ws_c", b"ccc", s)
            smp.expect_record(s, _U.NOTIFY_KEY_LINKED, ctx["c"], 1)
            keys.keyctl("link", _U.KEYCTL_LINK, ctx["c"], u)
            smp.expect_record(u, _U.NOTIFY_KEY_LINKED, ctx["c"], 2)
            keys.keyctl("unlink", _U.KEYCTL_UNLINK, ctx["c"], u)
            smp.expect_record(u, _U.NOTIFY_KEY_UNLINKED, ctx["c"], 2)

        def unlinked() -> None:
            keys.keyctl("unlink", _U.KEYCTL_UNLINK, ctx["a"], s)
            smp.expect_record(s, _U.NOTIFY_KEY_UNLINKED, ctx["a"], 1)

        def setattr_() -> None:
            keys.setperm(s, keys.perm(s))
            smp.expect_record(s, _U.NOTIFY_KEY_SETATTR, 0, 1)

        def cleared() -> None:
            keys.keyctl("clear", _U.KEYCTL_CLEAR, s)
            smp.expect_record(s, _U.NOTIFY_KEY_CLEARED, 0, 1)

        def revoked() -> None:
            keys.keyctl("revoke", _U.KEYCTL_REVOKE, s)
            smp.expect_record(s, _U.NOTIFY_KEY_REVOKED, 0, 1)

        self.step("linked", "add_key into the session keyring", linked)
        self.step("user_keyring_is_watch_id_2", "add_key/link/unlink via the user keyring",
                  user_keyring)
        self.step("unlinked", "unlink from the session keyring", unlinked)
        self.step("setattr", "setperm on the session keyring", setattr_)
        self.step("cleared", "clear the session keyring", cleared)
        self.step("revoked", "revoke the session keyring", revoked)
        self.finish(smp, "first session")
        smp.stop()

        # A revoked keyring cannot be invalidated: a second session for that.
        def start_second() -> None:
            keys.new_session()
            ctx["s2"] = keys.keyring_id(_U.KEY_SPEC_SESSION_KEYRING)
            self.running["second"] = self.start(ctx["s2"])

        if not self.step("runs_and_watches_session_keyring", "second session", start_second):
            return

        def invalidated() -> None:
            keys.keyctl("invalidate", _U.KEYCTL_INVALIDATE, ctx["s2"])
            self.running["second"].expect_record(ctx["s2"], _U.NOTIFY_KEY_INVALIDATED, 0, 1)

        self.step("invalidated", "invalidate the session keyring", invalidated)
        self.finish(self.running["second"], "second session")
        self.running["second"].stop()

    def close(self) -> None:
        for s in self.samples:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(timeout=LINE_TIMEOUT)


def default_binary() -> str | None:
    root = os.environ.get("VMTEST_SELFTESTS")
    return os.path.join(root, "samples", "watch_test") if root else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check samples/watch_queue/watch_test")
    parser.add_argument("--binary", default=default_binary(),
                        help="the built sample (default: $VMTEST_SELFTESTS/samples/watch_test)")
    args = parser.parse_args(argv)
    binary: str | None = args.binary
    if binary is None or not os.access(binary, os.X_OK):
        why = (f"{binary} not built" if binary else
               "no --binary and VMTEST_SELFTESTS is not set")
        KtapWriter().skip_all("watch_sample", why)
        return 0
    checker = Checker(binary, Keys())
    return run_checker(checker.run, checker.close, list(checker.outcomes.values()),
                       "watch_sample_", DEADLINE)


if __name__ == "__main__":
    sys.exit(main())
