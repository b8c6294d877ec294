"""PLANT=leak: prove that a leak fails the run.

``make vmtest PLANT=leak`` builds the debug profile once more, into its own
folder (build/obj-debug-plant-leak), with modules and the kernel's own
kmemleak sample (samples/kmemleak, CONFIG_SAMPLE_KMEMLEAK: it leaks on
purpose when loaded; it can only be a module), and loads it in the guest
before the tests.  kmemleak's scans at the end must then report its objects
and the run must fail.  The guest has no kmod: ``python3 -m harness.plant KO``
loads the module with finit_module(2) and prints KTAP.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import sys
from pathlib import Path

from harness.layout import Layout
from harness.vm import GuestTest

KINDS = ("leak",)
PROGRAM = "plant_leak"  # its row: a T= filter never drops it
LEAK_CONFIG = "CONFIG_MODULES=y\nCONFIG_SAMPLES=y\nCONFIG_SAMPLE_KMEMLEAK=m\n"
LEAK_MODULE = Path("samples") / "kmemleak" / "kmemleak-test.ko"
SYS_FINIT_MODULE = 313  # x86_64


def layout(repo: Path, kind: str) -> Layout:
    return Layout(repo, "debug", obj_name=f"obj-debug-plant-{kind}")


def guest_test(lay: Layout) -> GuestTest:
    repo = shlex.quote(str(lay.repo))
    module = shlex.quote(str(lay.obj / LEAK_MODULE))
    return GuestTest(PROGRAM, f"cd {repo} && PYTHONPATH={repo} python3 -m harness.plant "
                     f"{module}", 120)


def main(argv: list[str]) -> int:
    ko = argv[1]
    print("TAP version 13\n1..1", flush=True)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(ko, os.O_RDONLY)
    rc = libc.syscall(SYS_FINIT_MODULE, fd, b"", 0)
    err = ctypes.get_errno()
    os.close(fd)
    if rc != 0:
        print(f"not ok 1 load {ko} # {os.strerror(err)}")
        return 1
    print(f"ok 1 load {ko} (it leaks on purpose)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
