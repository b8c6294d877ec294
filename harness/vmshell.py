"""make vmshell: an interactive shell in the test kernel, the tests on PATH.

The selftests, the benchmarks, the sample and one wrapper per checker (it runs
``python -m harness.checkers.NAME`` from the repository) are put on PATH by a
small shell script that virtme-ng starts instead of the user's shell.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

from harness import suite, vm
from harness.layout import Layout

_WRAPPER = """#!/bin/sh
cd {repo} && PYTHONPATH={repo} VMTEST_SELFTESTS={selftests} exec {python} -m {module} "$@"
"""
_SHELL = """#!/bin/bash
# Started by virtme-ng as the guest's shell (make vmshell).
export PATH={path}:$PATH VMTEST_SELFTESTS={selftests} PYTHONPATH={repo}
[ -d /sys/kernel/debug/tracing ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo "test kernel $(uname -r); on PATH: $(ls {bin} | tr '\\n' ' ')"
exec bash --norc -i
"""


def write_bin(layout: Layout, python: Path) -> Path:
    """A folder of wrappers, one per checker, and the shell script; returns the script."""
    folder = layout.obj / "vmshell"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    for checker in suite.CHECKERS:
        path = bin_dir / checker.name
        path.write_text(_WRAPPER.format(repo=q(str(layout.repo)), python=q(str(python)),
                                        selftests=q(str(layout.selftests_out)),
                                        module=checker.module))
        path.chmod(0o755)
    out = layout.selftests_out
    dirs = ":".join(q(str(p)) for p in (bin_dir, out, out / "bench", out / "samples"))
    script = folder / "shell.sh"
    script.write_text(_SHELL.format(path=dirs, selftests=q(str(out)), repo=q(str(layout.repo)),
                                    bin=q(str(bin_dir))))
    script.chmod(0o755)
    return script


def command(req: vm.VmRequest, shell: Path) -> list[str]:
    """vng for a person at a terminal: no --exec, our shell script as the shell."""
    cmd = vm.vng_command(replace(req, cached_root=False))  # host edits show in the guest
    cmd = cmd[:cmd.index("--exec")]
    return [*cmd, "--shell", str(shell)]


def run(layout: Layout, req: vm.VmRequest, python: Path) -> int:
    shell = write_bin(layout, python)
    env = dict(os.environ, PATH=f"{Path(req.vng).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run(command(req, shell), env=env, check=False).returncode
