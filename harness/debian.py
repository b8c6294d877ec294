"""The base: Debian's linux-source-7.3, fetched from trixie-backports with an apt of our own.

Debian 12's apt does not list trixie-backports, so the harness keeps a private
apt state (a one-line sources list, package lists, cache) in
``~/.cache/watch_queue-vmtest/apt``.  It needs no root and never reads or
changes the system's apt configuration.  The package lists are refreshed once
a day; the .deb of the candidate version is downloaded once and reused.

Debian's own patches are the other half of this module: in the source tarball
the files Debian's patches changed carry a later mtime than upstream's.
:func:`split_mtimes` decides which those are, or refuses when the split does
not look like that.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import Layout
from harness.proc import run_logged

SERIES = "7.3"
PACKAGE = f"linux-source-{SERIES}"
SUITE = "trixie-backports"
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
REFRESH_SECONDS = 24 * 3600
# More files than this newer than upstream's mtime is not "Debian's patches".
MAX_DEBIAN_FILES = 1000
# The upstream mtime must hold at least this share of the files.
MIN_UPSTREAM_SHARE = 0.9

_SOURCE_PACKAGE = re.compile(r"^(linux-source-\d+\.\d+)\s")


@dataclass(frozen=True)
class Base:
    """One linux-source .deb in the cache."""

    package: str
    version: str
    deb: Path
    how: str  # what fetching it took: "cached", "downloaded", ...

    @property
    def tarball(self) -> str:
        """Where the kernel tarball sits inside the package."""
        return f"usr/src/{self.package}.tar.xz"

    def describe(self) -> str:
        return f"{self.package} {self.version}"


class AptState:
    """apt-get and apt-cache pointed at a sources list and state folder of their own."""

    def __init__(self, root: Path, suite: str = SUITE, mirror: str = MIRROR) -> None:
        self.root = root
        self.sources = root / "sources.list"
        self.lists = root / "lists"
        self.cache = root / "cache"
        self.debs = root / "debs"
        self.stamp = root / "lists" / "vmtest-updated"
        self.line = f"deb [signed-by={KEYRING}] {mirror} {suite} main\n"

    def setup(self) -> None:
        for folder in (self.lists / "partial", self.cache / "archives" / "partial", self.debs):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.sources.exists() or self.sources.read_text() != self.line:
            self.sources.write_text(self.line)
            self.stamp.unlink(missing_ok=True)  # another suite or mirror: refresh

    def options(self) -> list[str]:
        """Every apt path of ours; the system's sources, pins and dpkg status stay out."""
        settings = {
            "Dir::Etc::sourcelist": str(self.sources),
            "Dir::Etc::sourceparts": "/dev/null",
            "Dir::Etc::preferences": "/dev/null",
            "Dir::Etc::preferencesparts": "/dev/null",
            "Dir::State::Lists": str(self.lists),
            "Dir::State::status": "/dev/null",
            "Dir::Cache": str(self.cache),
            "Debug::NoLocking": "1",  # no root needed; our own lock serializes
        }
        out: list[str] = []
        for key, value in settings.items():
            out += ["-o", f"{key}={value}"]
        return out

    def lists_age(self) -> float | None:
        if not self.stamp.exists():
            return None
        return time.time() - self.stamp.stat().st_mtime

    def update(self, log: Path) -> None:
        run_logged(["apt-get", *self.options(), "update"], log, f"apt-get update ({SUITE})")
        self.stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))

    def candidate(self, package: str) -> str:
        """The version apt would download, or "" if the lists do not offer the package."""
        proc = subprocess.run(["apt-cache", *self.options(), "policy", package],
                              text=True, capture_output=True)
        return parse_candidate(proc.stdout)

    def offered(self) -> list[str]:
        """Every linux-source-X.Y the lists offer."""
        proc = subprocess.run(["apt-cache", *self.options(), "search", "--names-only",
                               "^linux-source-"], text=True, capture_output=True)
        return parse_offered(proc.stdout)

    def download(self, package: str, version: str, log: Path) -> Path:
        """Download package=version into the cache; return the .deb."""
        tmp = self.root / "download"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        run_logged(["apt-get", *self.options(), "download", f"{package}={version}"], log,
                   f"apt-get download {package}={version}", cwd=tmp)
        debs = list(tmp.glob("*.deb"))
        if len(debs) != 1:
            raise HarnessError(f"apt-get download {package}={version} left "
                               f"{len(debs)} .deb file(s) in {tmp}", log)
        got = deb_fields(debs[0], log)
        if got != (package, version):
            raise HarnessError(f"{debs[0].name} is {got[0]} {got[1]}, "
                               f"not {package} {version}", log)
        final = self.debs / deb_name(package, version)
        debs[0].replace(final)
        tmp.rmdir()
        return final


def parse_candidate(policy: str) -> str:
    for line in policy.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            value = value.strip()
            return "" if value == "(none)" else value
    return ""


def parse_offered(search: str) -> list[str]:
    found = {m.group(1) for line in search.splitlines() if (m := _SOURCE_PACKAGE.match(line))}
    return sorted(found, key=lambda name: [int(x) for x in name.rsplit("-", 1)[1].split(".")])


def deb_name(package: str, version: str) -> str:
    """The file name apt gives a .deb (an epoch's colon becomes %3a)."""
    return f"{package}_{version.replace(':', '%3a')}_all.deb"


def deb_fields(deb: Path, log: Path) -> tuple[str, str]:
    proc = run_logged(["dpkg-deb", "-f", deb, "Package", "Version"], log,
                      f"dpkg-deb -f {deb.name}")
    fields = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    return fields.get("Package", "").strip(), fields.get("Version", "").strip()


def apt_root(layout: Layout) -> Path:
    return layout.cache / "apt"


def fetch(layout: Layout, log: Path, package: str = PACKAGE) -> Base:
    """The current linux-source .deb: from the cache, or downloaded once.

    The lists are refreshed when they are older than a day; if that fails and
    older lists exist, the harness carries on with them (and says so).
    """
    apt = AptState(apt_root(layout))
    apt.setup()
    with (apt.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        notes = []
        age = apt.lists_age()
        if age is None or age > REFRESH_SECONDS or age < 0:
            try:
                apt.update(log)
            except HarnessError as exc:
                if age is None:
                    raise
                notes.append(f"apt-get update failed, using lists {age / 3600:.0f} h old "
                             f"({exc.message})")
        version = apt.candidate(package)
        if not version:
            offered = apt.offered()
            instead = (f"it offers {', '.join(offered)} instead" if offered
                       else "it offers no linux-source-X.Y at all")
            raise HarnessError(
                f"{SUITE} no longer offers {package}: {instead}. The base has to move: "
                f"change SERIES in harness/debian.py and rebase patches/", log)
        deb = apt.debs / deb_name(package, version)
        if deb.exists():
            how = "cached"
        else:
            deb = apt.download(package, version, log)
            how = f"downloaded {deb.stat().st_size >> 20} MiB"
            for old in apt.debs.glob(f"{package}_*.deb"):
                if old != deb:
                    old.unlink()
    return Base(package, version, deb, "; ".join([how, *notes]))


# --- which files Debian's patches changed ---------------------------------------------

@dataclass(frozen=True)
class MtimeSplit:
    upstream_mtime: int
    upstream_files: int
    debian: list[str]  # sorted paths, relative to the top of the tree

    def header(self) -> str:
        return (f"# upstream mtime {self.upstream_mtime}: {self.upstream_files} files; "
                f"{len(self.debian)} newer (changed by Debian's patches)")


def split_mtimes(mtimes: dict[str, int]) -> MtimeSplit:
    """Upstream's files share one mtime (the commonest); strictly newer ones are Debian's.

    Refuses (HarnessError) when the tree does not look like that: no mtime
    holding most files, files older than it, no newer file, or so many newer
    files that they cannot be Debian's patch set.
    """
    if not mtimes:
        raise HarnessError("no files in the base tarball")
    counts = Counter(mtimes.values())
    mode, upstream = counts.most_common(1)[0]
    newer = sorted(path for path, mtime in mtimes.items() if mtime > mode)
    older = sorted(path for path, mtime in mtimes.items() if mtime < mode)
    total = len(mtimes)
    problems = []
    if upstream < MIN_UPSTREAM_SHARE * total:
        problems.append(f"the commonest mtime ({mode}) holds only {upstream} of {total} files")
    if older:
        problems.append(f"{len(older)} file(s) are older than the commonest mtime, "
                        f"e.g. {older[0]}")
    if not newer:
        problems.append("no file is newer than the rest, so Debian's patched files cannot "
                        "be told apart")
    if len(newer) > MAX_DEBIAN_FILES:
        problems.append(f"{len(newer)} files are newer than the rest (more than "
                        f"{MAX_DEBIAN_FILES}), e.g. {newer[0]}")
    if problems:
        raise HarnessError("cannot tell the files Debian's patches changed from upstream's "
                           "by mtime: " + "; ".join(problems))
    return MtimeSplit(mode, upstream, newer)


def tree_mtimes(top: Path) -> dict[str, int]:
    """mtime (whole seconds) of every regular file under top, by relative path."""
    out: dict[str, int] = {}
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                out[os.path.relpath(path, top)] = int(st.st_mtime)
    return out
