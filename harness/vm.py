"""Boot the test kernel under virtme-ng and run a list of commands inside it.

The host spawns vng with pexpect and follows the console: it expects the boot
marker, each test's start and end marks, a kernel panic and EOF, each with its
own timeout (the boot timeout, each running test's limit, 10 s for a panicked
VM to stop), and kills the VM's whole process group on a panic, a boot hang, a
test past its limit or the overall deadline.  Every byte the VM printed is
kept in console.log.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.layout import REPO, Layout

if TYPE_CHECKING:
    import pexpect

GUEST_SCRIPT = REPO / "harness" / "guest" / "run-tests.sh"
_PANIC = re.compile(rb"Kernel panic - not syncing|---\[ end Kernel panic")
_MARK = re.compile(rb"vmtest: (guest up|start|done|timeout|guest done)\b[ \t]*(\S*)[^\n]*\n")
# A kernel log big enough that nothing the boot and the tests print is lost before the
# guest copies it to dmesg.txt (KASAN and lockdep reports are long).
LOG_BUF = "log_buf_len=16M"
PANIC_GRACE = 10  # seconds a panicked VM gets to stop by itself
GUEST_KILL_GRACE = 15  # the guest's `timeout -k 5` needs this long past a test's limit
CPUS = 2  # the guest's vCPUs, and the lanes its script runs side by side (suite.schedule)
# The root (the host's, read-only over 9p) with the guest's caches on.  vng mounts it
# with cache=none, so every stat(), open() and read() is a 9p round trip: under TCG
# `python3 -c pass` took 8 s that way and 1.1 s with cache=loose.  A test run does not
# change the host's files while the guest runs (the results folder, the one the guest
# writes, is a mount of its own and stays uncached); make vmshell, where a person may
# edit on the host and rerun in the guest, keeps vng's default.  The kernel takes the
# last rootflags= it is given.
CACHED_ROOT = "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"


@dataclass(frozen=True)
class GuestTest:
    name: str
    command: str
    timeout: int
    # The guest runs one lane per vCPU.  A lane that is free takes the next group not
    # yet taken, lowest ``order`` first, and runs its tests one after the other.
    group: str = ""  # "": a group of its own
    order: int = 0


@dataclass(frozen=True)
class VmRequest:
    kernel: Path
    results: Path
    tests: list[GuestTest]
    accel: str  # "kvm" or "tcg"
    memory: str = "1G"
    cpus: int = CPUS
    boot_timeout: int = 120
    vng: str = "vng"
    append: tuple[str, ...] = ()
    cached_root: bool = True  # CACHED_ROOT


@dataclass
class VmOutcome:
    returncode: int
    console: Path
    elapsed: float
    boot_seconds: float | None = None
    panic: bool = False
    killed: str = ""  # why the host killed the VM, "" if it exited by itself
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


def vng_command(req: VmRequest) -> list[str]:
    """The virtme-ng command line (pure, so the unit tests can pin it down)."""
    # --force-9p: the root is shared over 9p here anyway; without it vng first waits
    # 3 s for virtiofsd, twice, before falling back to 9p.  --skip-modules: no
    # modules directory for the guest (vng would need the host's depmod to make one);
    # PLANT=leak loads its one module by path.
    cmd = [req.vng, "--run", str(req.kernel), "--verbose", "--force-9p", "--skip-modules",
           "--memory", req.memory,
           "--cpus", str(req.cpus), f"--rwdir={req.results}={req.results}",
           "--cwd", "/", "--append", "panic_on_warn=0", "--append", LOG_BUF]
    for arg in (*req.append, *((CACHED_ROOT,) if req.cached_root else ())):
        cmd += ["--append", arg]
    if req.accel == "tcg":
        cmd.append("--disable-kvm")
    cmd += ["--exec", f"bash {GUEST_SCRIPT} {req.results}"]
    return cmd


def deadline(req: VmRequest) -> int:
    return req.boot_timeout + sum(t.timeout + 10 for t in req.tests) + 30


def write_manifest(req: VmRequest) -> None:
    req.results.mkdir(parents=True, exist_ok=True)
    lines = []
    for test in sorted(req.tests, key=lambda t: t.order):  # stable: a group keeps its order
        if "\t" in test.command or "\n" in test.command:
            raise HarnessError(f"guest command for {test.name} contains a tab or newline")
        group = test.group or test.name
        if not re.fullmatch(r"[\w.+-]+", group):
            raise HarnessError(f"guest test group {group!r} is not a plain name")
        lines.append(f"{group}\t{test.name}\t{test.timeout}\t{test.command}\n")
    (req.results / "tests.list").write_text("".join(lines))


def _raw_tty() -> None:
    """In the child, before exec: the console as the VM wrote it (no CR added, no echo)."""
    with contextlib.suppress(termios.error):
        attrs = termios.tcgetattr(0)
        attrs[1] &= ~termios.ONLCR
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(0, termios.TCSANOW, attrs)


def _kill(child: pexpect.spawn[str]) -> None:
    assert child.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    for _ in range(50):
        if not child.isalive():
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    child.close(force=True)


class _Follow:
    """Which timeout applies now, and what it means when it runs out."""

    def __init__(self, req: VmRequest, start: float) -> None:
        self.req = req
        self.start = start
        self.limit = deadline(req)
        self.limits = {t.name: t.timeout + GUEST_KILL_GRACE for t in req.tests}
        self.running: dict[str, float] = {}  # the running tests and when each started
        self.panic_at: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.start

    def next(self, outcome: VmOutcome) -> tuple[float, str]:
        """(seconds to wait, why the VM is killed if nothing comes in that time)."""
        now = self.now()
        last = outcome.started[-1] if outcome.started else "none"
        waits = [(self.limit - now,
                  f"VM deadline of {self.limit}s passed (last test started: {last})")]
        if outcome.boot_seconds is None:
            waits.append((self.req.boot_timeout - now,
                          f"boot hang: no guest output after {self.req.boot_timeout}s"))
        for name, since in self.running.items():
            waits.append((since + self.limits.get(name, 0) - now,
                          f"{name} ran past its limit of {self.limits.get(name, 0)}s "
                          "and the guest did not stop it"))
        if self.panic_at is not None:
            waits.append((self.panic_at + PANIC_GRACE - now,
                          "kernel panic (VM did not exit by itself)"))
        wait, why = min(waits)
        return max(wait, 0.0), why


def run(req: VmRequest, console: Path, echo: bool = False) -> VmOutcome:
    """Boot, run the manifest, follow the console; never raise for guest failures."""
    if shutil.which(req.vng) is None and not Path(req.vng).exists():
        raise HarnessError(f"virtme-ng ({req.vng}) not found: run `make deps`")
    if not req.kernel.exists():
        raise HarnessError(f"no kernel image at {req.kernel}: run the build stage first")
    import pexpect  # the venv has it; `python3 -m harness deps` runs before the venv exists

    write_manifest(req)
    start = time.monotonic()
    outcome = VmOutcome(returncode=-1, console=console, elapsed=0.0)
    follow = _Follow(req, start)
    # vng runs its helpers (virtme-run) from its own bin folder.
    env = dict(os.environ)
    env["PATH"] = f"{Path(req.vng).parent}:{env.get('PATH', '')}"
    cmd = vng_command(req)
    with console.open("wb") as log:
        child = pexpect.spawn(cmd[0], cmd[1:], env=env, timeout=None, logfile=log,
                              preexec_fn=_raw_tty, dimensions=(50, 250))
        patterns: list[re.Pattern[str] | re.Pattern[bytes] | str | bytes | type[pexpect.EOF]
                       | type[pexpect.TIMEOUT]] = [_MARK, _PANIC, pexpect.EOF, pexpect.TIMEOUT]
        while True:
            wait, why = follow.next(outcome)
            which = child.expect(patterns, timeout=wait)
            now = follow.now()
            if which == 0:
                match = child.match
                assert isinstance(match, re.Match)
                what, arg = (g.decode(errors="replace") if isinstance(g, bytes) else str(g)
                             for g in match.groups())
                _on_mark(outcome, what, arg, now, echo)
                if what == "start":
                    follow.running[arg] = now
                elif what in ("done", "timeout"):
                    follow.running.pop(arg, None)
            elif which == 1:
                if follow.panic_at is None:
                    outcome.panic, follow.panic_at = True, now
            elif which == 2:
                break
            else:
                outcome.killed = why
                _kill(child)
                break
        log.flush()
        if child.isalive():
            child.wait()
        child.close()
        status = child.exitstatus
        outcome.returncode = status if status is not None else -(child.signalstatus or 1)
    outcome.elapsed = time.monotonic() - start
    return outcome


def _on_mark(outcome: VmOutcome, what: str, arg: str, now: float, echo: bool) -> None:
    if what == "guest up" and outcome.boot_seconds is None:
        outcome.boot_seconds = now
    elif what == "start":
        outcome.started.append(arg)
        if echo:
            print(f"[vm] {now:6.1f}s  running {arg}", flush=True)
    elif what == "done":
        outcome.finished.append(arg)


def diagnose(outcome: VmOutcome) -> str:
    """One line that says why a VM run went wrong, or "" when it did not."""
    if outcome.killed:
        return outcome.killed
    if outcome.panic:
        return "kernel panic"
    if outcome.boot_seconds is None:
        if outcome.returncode == 255:
            return ("the guest returned no exit code and printed nothing: QEMU failed, or no "
                    "virtio-serial ports (is udev installed on the host?)")
        return f"the VM exited ({outcome.returncode}) before the guest script started"
    if outcome.returncode != 0:
        return f"the VM exited with {outcome.returncode} (255: no exit code came back)"
    return ""


# --- choosing KVM or TCG -------------------------------------------------------

def _probe_key() -> str:
    qemu = shutil.which("qemu-system-x86_64") or ""
    return f"{os.uname().release} {qemu} {Path(qemu).stat().st_mtime if qemu else 0}"


def choose_accel(layout: Layout, kernel: Path, vng: str, setting: str) -> tuple[str, str]:
    """Return (accel, why).  KVM only where a probe actually booted a guest with it."""
    if setting in ("kvm", "tcg"):
        return setting, f"VMTEST_ACCEL={setting}"
    if setting != "auto":
        raise HarnessError(f"VMTEST_ACCEL must be auto, kvm or tcg, not {setting!r}")
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as exc:
        return "tcg", f"/dev/kvm unusable ({exc.strerror})"
    cache = layout.cache / "kvm-probe.json"
    key = _probe_key()
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return str(data["accel"]), f"cached KVM probe ({cache})"
    probe_dir = layout.build / "kvm-probe"
    shutil.rmtree(probe_dir, ignore_errors=True)
    req = VmRequest(kernel, probe_dir, [GuestTest("probe", "true", 5)], "kvm",
                    boot_timeout=25, vng=vng)
    print("[vm] probing whether KVM can boot a guest here (once per host)...", file=sys.stderr)
    outcome = run(req, probe_dir / "console.log")
    ok = outcome.returncode == 0 and "probe" in outcome.finished
    accel = "kvm" if ok else "tcg"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": accel}))
    return accel, "KVM probe booted" if ok else "KVM probe failed to boot a guest"
