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
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

LINE_TIMEOUT = 5.0  # seconds to wait for one expected line
QUIET = 0.5  # seconds of silence that count as "nothing more is coming"
DEADLINE = 100  # seconds for the whole check (the harness allows 120)

# (add_key, keyctl) syscall numbers.
SYSCALLS = {
    "x86_64": (248, 250),
    "aarch64": (217, 219),
    "riscv64": (217, 219),
    "loongarch64": (217, 219),
}

KEYCTL_GET_KEYRING_ID = 0
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_REVOKE = 3
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEYCTL_CLEAR = 7
KEYCTL_LINK = 8
KEYCTL_UNLINK = 9
KEYCTL_INVALIDATE = 21
KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4

SUBTYPES = {0: "instantiated", 1: "updated", 2: "linked", 3: "unlinked", 4: "cleared",
            5: "revoked", 6: "invalidated", 7: "setattr"}
KEY_NOTIFY = 1
KEY_NOTE_LEN = 16

TESTS = ("runs_and_watches_session_keyring", "linked", "unlinked", "setattr", "cleared",
         "revoked", "invalidated", "user_keyring_is_watch_id_2", "no_stray_output")


class CheckFailed(Exception):
    """One expectation did not hold."""


class DeadlineExpired(Exception):
    """The whole check ran out of time."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise DeadlineExpired(f"checker deadline of {DEADLINE}s expired")


class Keys:
    """keyctl(2) and add_key(2) through ctypes."""

    def __init__(self, nr_add_key: int, nr_keyctl: int) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.nr_add_key = nr_add_key
        self.nr_keyctl = nr_keyctl

    def _check(self, what: str, ret: int) -> int:
        if ret < 0:
            err = ctypes.get_errno()
            raise CheckFailed(f"{what}: {os.strerror(err)}")
        return ret

    def keyctl(self, what: str, cmd: int, *args: int) -> int:
        cargs = [ctypes.c_long(a) for a in args]
        return self._check(what, int(self.libc.syscall(
            ctypes.c_long(self.nr_keyctl), ctypes.c_long(cmd), *cargs)))

    def add_key(self, type_: str, desc: str, payload: bytes, ring: int) -> int:
        return self._check(f"add_key {desc}", int(self.libc.syscall(
            ctypes.c_long(self.nr_add_key), ctypes.c_char_p(type_.encode()),
            ctypes.c_char_p(desc.encode()), ctypes.c_char_p(payload),
            ctypes.c_size_t(len(payload)), ctypes.c_long(ring))))

    def new_session(self) -> int:
        return self.keyctl("join session", KEYCTL_JOIN_SESSION_KEYRING, 0)

    def keyring_id(self, spec: int) -> int:
        return self.keyctl("get keyring id", KEYCTL_GET_KEYRING_ID, spec, 0)

    def perm(self, key: int) -> int:
        buf = ctypes.create_string_buffer(256)
        n = int(self.libc.syscall(ctypes.c_long(self.nr_keyctl), ctypes.c_long(KEYCTL_DESCRIBE),
                                  ctypes.c_long(key), buf, ctypes.c_long(len(buf))))
        self._check("describe", n)
        fields = buf.value.decode(errors="replace").split(";")
        try:
            return int(fields[3], 16)
        except (IndexError, ValueError):
            raise CheckFailed(f"describe {key}: cannot parse {buf.value!r}") from None

    def setperm(self, key: int, perm: int) -> None:
        self.keyctl("setperm", KEYCTL_SETPERM, key, perm)


class Sample:
    """The sample with its stdout on a raw pty; lines queued by a thread."""

    def __init__(self, binary: str) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            self.proc = subprocess.Popen([binary], stdin=subprocess.DEVNULL, stdout=slave,
                                         stderr=subprocess.PIPE, text=True)
        finally:
            os.close(slave)
        self.master = master
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.eof = False
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO once the slave side is closed
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *done, pending = pending.split(b"\n")
            for line in done:
                self.lines.put(line.decode(errors="replace").rstrip("\r"))
        if pending:
            self.lines.put(pending.decode(errors="replace").rstrip("\r"))
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def next_line(self, timeout: float) -> str | None:
        if self.eof:
            return None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise CheckFailed(f"sample: no line within {timeout:g}s") from None
        if line is None:
            self.eof = True
        return line

    def expect(self, want: str) -> None:
        got = self.next_line(LINE_TIMEOUT)
        if got != want:
            shown = "end of output" if got is None else repr(got)
            extra = f" (stderr: {' | '.join(self.stderr)})" if self.stderr else ""
            raise CheckFailed(f"expected {want!r}, got {shown}{extra}")

    def expect_record(self, keyring: int, subtype: int, aux: int, watch_id: int) -> None:
        """The three lines the sample prints for one key record read on its own."""
        self.expect(f"read() = {KEY_NOTE_LEN}")
        info = (watch_id << 8) | KEY_NOTE_LEN
        self.expect(f"NOTIFY[000]: ty={KEY_NOTIFY:06x} sy={subtype:02x} i={info:08x}")
        self.expect(f"KEY {keyring:08x} change={subtype}[{SUBTYPES[subtype]}] aux={aux}")

    def drain(self) -> list[str]:
        seen: list[str] = []
        while True:
            try:
                line = self.next_line(QUIET)
            except CheckFailed:
                return seen
            if line is None:
                return seen
            seen.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=LINE_TIMEOUT)
        os.close(self.master)


@dataclass
class Outcome:
    name: str
    diags: list[str] = field(default_factory=list)
    failed: bool = False
    ran: bool = False


class Checker:
    def __init__(self, binary: str, keys: Keys) -> None:
        self.binary = binary
        self.keys = keys
        self.outcomes = {name: Outcome(name) for name in TESTS}
        self.samples: list[Sample] = []
        self.running: dict[str, Sample] = {}

    def step(self, name: str, what: str, action: Callable[[], None]) -> bool:
        out = self.outcomes[name]
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
            for s in self.samples:
                s.drain()
            return False
        return True

    def start(self, session: int) -> Sample:
        """Start the sample and wait until its watches are in place.

        The sample prints nothing until a record arrives, so probe: rewrite
        the session keyring's permissions (NOTIFY_KEY_SETATTR) until a record
        is printed, then swallow the lines of probes still in flight.
        """
        sample = Sample(self.binary)
        self.samples.append(sample)
        perm = self.keys.perm(session)
        deadline = time.monotonic() + 6 * LINE_TIMEOUT
        while True:
            self.keys.setperm(session, perm)
            try:
                first = sample.next_line(0.3)
            except CheckFailed:
                if sample.proc.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailed(
                        f"{self.binary} never printed a record (exit {sample.proc.poll()}, "
                        f"stderr: {' | '.join(sample.stderr) or 'none'})") from None
                continue
            break
        if first is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                sample.proc.wait(timeout=LINE_TIMEOUT)
            time.sleep(0.1)  # let the stderr thread catch up
            raise CheckFailed(f"{self.binary} exited with status {sample.proc.poll()} "
                              f"(stderr: {' | '.join(sample.stderr) or 'none'})")
        lines = [first, *sample.drain()]
        want = f"KEY {session:08x} change=7[setattr] aux=0"
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
                raise CheckFailed(f"sample stderr: {' | '.join(sample.stderr)}")
        self.step("no_stray_output", what, check)

    def run(self) -> None:
        keys = self.keys
        ctx: dict[str, int] = {}

        def start_first() -> None:
            keys.new_session()
            ctx["s"] = keys.keyring_id(KEY_SPEC_SESSION_KEYRING)
            ctx["u"] = keys.keyring_id(KEY_SPEC_USER_KEYRING)
            self.running["first"] = self.start(ctx["s"])

        if not self.step("runs_and_watches_session_keyring", "first session", start_first):
            return
        s, u, smp = ctx["s"], ctx["u"], self.running["first"]

        def linked() -> None:
            ctx["a"] = keys.add_key("user", "ws_a", b"aaa", s)
            smp.expect_record(s, 2, ctx["a"], 1)

        def user_keyring() -> None:
            # Made in the session keyring, so possessed and linkable.
            ctx["c"] = keys.add_key("user", "ws_c", b"ccc", s)
            smp.expect_record(s, 2, ctx["c"], 1)
            keys.keyctl("link", KEYCTL_LINK, ctx["c"], u)
            smp.expect_record(u, 2, ctx["c"], 2)
            keys.keyctl("unlink", KEYCTL_UNLINK, ctx["c"], u)
            smp.expect_record(u, 3, ctx["c"], 2)

        def unlinked() -> None:
            keys.keyctl("unlink", KEYCTL_UNLINK, ctx["a"], s)
            smp.expect_record(s, 3, ctx["a"], 1)

        def setattr_() -> None:
            keys.setperm(s, keys.perm(s))
            smp.expect_record(s, 7, 0, 1)

        def cleared() -> None:
            keys.keyctl("clear", KEYCTL_CLEAR, s)
            smp.expect_record(s, 4, 0, 1)

        def revoked() -> None:
            keys.keyctl("revoke", KEYCTL_REVOKE, s)
            smp.expect_record(s, 5, 0, 1)

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
            ctx["s2"] = keys.keyring_id(KEY_SPEC_SESSION_KEYRING)
            self.running["second"] = self.start(ctx["s2"])

        if not self.step("runs_and_watches_session_keyring", "second session", start_second):
            return

        def invalidated() -> None:
            keys.keyctl("invalidate", KEYCTL_INVALIDATE, ctx["s2"])
            self.running["second"].expect_record(ctx["s2"], 6, 0, 1)

        self.step("invalidated", "invalidate the session keyring", invalidated)
        self.finish(self.running["second"], "second session")
        self.running["second"].stop()

    def close(self) -> None:
        for s in self.samples:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(timeout=LINE_TIMEOUT)


def emit(outcomes: Sequence[Outcome]) -> bool:
    print("KTAP version 1")
    print(f"1..{len(outcomes)}")
    ok_all = True
    for n, out in enumerate(outcomes, 1):
        name = f"watch_sample_{out.name}"
        for d in out.diags:
            print(f"# {d}")
        if out.failed or not out.ran:
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
    print(f"ok 1 watch_sample # SKIP {reason}")
    return 0


def default_binary() -> str | None:
    root = os.environ.get("VMTEST_SELFTESTS")
    return os.path.join(root, "samples", "watch_test") if root else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check samples/watch_queue/watch_test")
    parser.add_argument("--binary", default=default_binary(),
                        help="the built sample (default: $VMTEST_SELFTESTS/samples/watch_test)")
    args = parser.parse_args(argv)
    binary: str | None = args.binary
    if binary is None:
        return skip_all("no --binary and VMTEST_SELFTESTS is not set")
    if not os.access(binary, os.X_OK):
        return skip_all(f"{binary} not built")
    nrs = SYSCALLS.get(platform.machine())
    if nrs is None:
        return skip_all(f"no keyctl syscall numbers for {platform.machine()}")
    checker = Checker(binary, Keys(*nrs))
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(DEADLINE)
    try:
        checker.run()
    except DeadlineExpired as e:
        for out in checker.outcomes.values():
            if not out.ran:
                out.diags.append(str(e))
    finally:
        signal.alarm(0)
        checker.close()
    return 0 if emit(list(checker.outcomes.values())) else 1


if __name__ == "__main__":
    sys.exit(main())
