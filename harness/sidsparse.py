"""sparse 0.6.5 from Debian sid, run on Debian 12 through sid's own loader.

Debian 12's sparse (0.6.4) cannot parse 7.3's __typeof_unqual__.  sid's runs on
Debian 12 if it is started by sid's ld.so with sid's libraries: the packages
below are fetched with an apt state of our own (as the base is, see debian.py;
suite sid), unpacked with dpkg-deb -x into the cache, and a wrapper script
starts ``ld-linux-x86-64.so.2 --library-path ... usr/bin/sparse`` for kbuild's
CHECK=.  Nothing is installed; the system's apt is neither read nor changed.
"""
from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

from harness.debian import REFRESH_SECONDS, AptState, deb_name
from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import run_logged

SUITE = "sid"
PACKAGES = ("sparse", "libc6", "libsqlite3-0", "libxml2-16", "libicu78", "liblzma5", "zlib1g")
LIBDIR = "usr/lib/x86_64-linux-gnu"
_WRAPPER = """#!/bin/sh
# sid's sparse through sid's loader and libraries (harness/sidsparse.py)
exec {root}/{libdir}/ld-linux-x86-64.so.2 --library-path {root}/{libdir} {root}/usr/bin/sparse "$@"
"""


def cache(layout: Layout) -> Path:
    return layout.cache / "sparse-sid"


def wrapper_text(root: Path) -> str:
    return _WRAPPER.format(root=root, libdir=LIBDIR)


def ensure(layout: Layout, log: Path) -> Path:
    """The wrapper script, fetching and unpacking the packages when their versions changed."""
    top = cache(layout)
    apt = AptState(top / "apt", suite=SUITE)
    apt.setup()
    top.mkdir(parents=True, exist_ok=True)
    with (top / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        age = apt.lists_age()
        if age is None or not 0 <= age <= REFRESH_SECONDS:
            try:
                apt.update(log)
            except HarnessError:
                if age is None:
                    raise
        versions = {}
        for package in PACKAGES:
            version = apt.candidate(package)
            if not version:
                raise HarnessError(f"{SUITE} offers no {package}: update PACKAGES in "
                                   "harness/sidsparse.py", log)
            versions[package] = version
        wanted = "".join(f"{p} {v}\n" for p, v in sorted(versions.items()))
        root = top / "root"
        stamp = top / "root.versions"
        wrapper = top / "sparse"
        if not (stamp.exists() and stamp.read_text() == wanted and wrapper.exists()):
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            for package, version in versions.items():
                deb = apt.debs / deb_name(package, version)
                if not deb.exists():
                    deb = apt.download(package, version, log)
                run_logged(["dpkg-deb", "-x", deb, root], log, f"dpkg-deb -x {deb.name}")
            wrapper.write_text(wrapper_text(root))
            wrapper.chmod(0o755)
            stamp.write_text(wanted)
    proc = run_logged([wrapper, "--version"], log, "sid's sparse --version", check=False)
    if proc.returncode != 0:
        raise HarnessError(f"sid's sparse does not start: {proc.stdout.strip()[:200]}", log)
    return wrapper
