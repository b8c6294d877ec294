"""Boot the test kernel under virtme-ng and run a list of commands inside it.

The host follows the console (kernel log and the guest script's markers) and
kills the VM's whole process group on a panic, a boot hang or the overall
deadline.  Every byte the VM printed is kept in console.log.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import REPO, Layout

GUEST_SCRIPT = REPO / "harness" / "guest" / "run-tests.sh"
_PANIC = re.compile(r"Kernel panic - not syncing|---\[ end Kernel panic")
_MARK = re.compile(r"vmtest: (guest up|start|done|timeout|guest done)\b\s*(\S*)")


@dataclass(frozen=True)
class GuestTest:
    name: str
    command: str
    timeout: int


@dataclass(frozen=True)
class VmRequest:
    kernel: Path
    results: Path
    tests: list[GuestTest]
    accel: str  # "kvm" or "tcg"
    memory: str = "1G"
    cpus: int = 2
    boot_timeout: int = 120
    vng: str = "vng"
    append: tuple[str, ...] = ()


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
    cmd = [req.vng, "--run", str(req.kernel), "--verbose", "--memory", req.memory,
           "--cpus", str(req.cpus), f"--rwdir={req.results}={req.results}",
           "--cwd", "/", "--append", "panic_on_warn=0"]
    for arg in req.append:
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
    for test in req.tests:
        if "\t" in test.command or "\n" in test.command:
            raise HarnessError(f"guest command for {test.name} contains a tab or newline")
        lines.append(f"{test.name}\t{test.timeout}\t{test.command}\n")
    (req.results / "tests.list").write_text("".join(lines))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run(req: VmRequest, console: Path, echo: bool = False) -> VmOutcome:
    """Boot, run the manifest, follow the console; never raise for guest failures."""
    if shutil.which(req.vng) is None and not Path(req.vng).exists():
        raise HarnessError(f"virtme-ng ({req.vng}) not found: run `make deps`")
    if not req.kernel.exists():
        raise HarnessError(f"no kernel image at {req.kernel}: run the build stage first")
    write_manifest(req)
    start = time.monotonic()
    outcome = VmOutcome(returncode=-1, console=console, elapsed=0.0)
    limit = deadline(req)
    with console.open("wb") as log:
        # vng runs its helpers (virtme-run) from its own bin folder.
        env = dict(os.environ)
        env["PATH"] = f"{Path(req.vng).parent}:{env.get('PATH', '')}"
        proc = subprocess.Popen(vng_command(req), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        pending = b""
        panic_at: float | None = None
        while True:
            now = time.monotonic() - start
            if outcome.boot_seconds is None and now > req.boot_timeout:
                outcome.killed = f"boot hang: no guest output after {req.boot_timeout}s"
            elif now > limit:
                last = outcome.started[-1] if outcome.started else "none"
                outcome.killed = f"VM deadline of {limit}s passed (last test started: {last})"
            elif panic_at is not None and now - panic_at > 10:
                outcome.killed = "kernel panic (VM did not exit by itself)"
            if outcome.killed:
                _kill(proc)
                break
            if not sel.select(timeout=1.0):
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            log.write(chunk)
            log.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                if _PANIC.search(line) and panic_at is None:
                    outcome.panic, panic_at = True, now
                mark = _MARK.search(line)
                if mark:
                    _on_mark(outcome, mark.group(1), mark.group(2), now, echo)
        sel.close()
        outcome.returncode = proc.wait()
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
