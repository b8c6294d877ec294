"""Check (and, as root, install) the Debian packages and the project venv."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import StageResult, Timer, run_logged

# The kernel source is not among them: the source stage fetches linux-source-7.3 from
# trixie-backports itself (harness/debian.py), without root; nor is sparse: Debian 12's
# cannot parse 7.3, check-series runs sid's (harness/sidsparse.py).  libcap-dev: upstream's
# mount-notify and statmount selftests link with -lcap.  g++: the uapi compile test.
# mandoc, groff-base: patches/man-pages/lint.sh.
PACKAGES = ["qemu-system-x86", "udev", "gcc", "g++", "make", "flex", "bison", "bc",
            "libelf-dev", "libssl-dev", "cpio", "rsync", "ccache", "keyutils", "git",
            "python3-venv", "perl", "libcap-dev", "xz-utils", "debian-archive-keyring",
            "mandoc", "groff-base"]
REQUIREMENTS = "requirements.txt"


def missing_packages(packages: list[str]) -> list[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n",
                           *packages], text=True, capture_output=True)
    installed = {line.split()[0] for line in proc.stdout.splitlines()
                 if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_packages(log: Path, install: bool) -> list[str]:
    missing = missing_packages(PACKAGES)
    if not missing:
        return []
    command = f"apt-get install -y --no-install-recommends {' '.join(missing)}"
    if not install or os.geteuid() != 0:
        raise HarnessError(f"missing Debian packages: {' '.join(missing)}; install them with: "
                           f"sudo apt-get update && sudo {command}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_logged(["apt-get", "update"], log, "apt-get update", env=env)
    run_logged(command.split(), log, "apt-get install", env=env)
    still = missing_packages(PACKAGES)
    if still:
        raise HarnessError(f"apt-get could not install: {' '.join(still)}", log)
    return missing


def venv_python(layout: Layout) -> Path:
    return layout.repo / ".venv" / "bin" / "python"


def ensure_venv(layout: Layout, log: Path) -> bool:
    """Create .venv with the pinned requirements; True if it did any work."""
    py = venv_python(layout)
    req = layout.repo / REQUIREMENTS
    stamp = layout.repo / ".venv" / ".requirements"
    if py.exists() and stamp.exists() and stamp.read_text() == req.read_text():
        return False
    if not py.exists():
        run_logged([sys.executable, "-m", "venv", layout.repo / ".venv"], log, "python -m venv")
    run_logged([py, "-m", "pip", "install", "-q", "-r", req], log, "pip install")
    stamp.write_text(req.read_text())
    return True


def ensure(layout: Layout, log: Path, install: bool = True) -> StageResult:
    timer = Timer()
    installed = ensure_packages(log, install)
    for tool in ("udevadm",):
        if subprocess.run(["sh", "-c", f"command -v {tool} || test -x /usr/bin/{tool}"],
                          capture_output=True).returncode != 0:
            raise HarnessError(f"{tool} not found: virtme-ng needs udev on the host")
    made = ensure_venv(layout, log)
    detail = []
    if installed:
        detail.append(f"installed {' '.join(installed)}")
    if made:
        detail.append("venv updated")
    return StageResult("deps", timer.elapsed(), ", ".join(detail) or "all present")
