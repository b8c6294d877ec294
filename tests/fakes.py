"""Stand-ins for apt-get, apt-cache and dpkg-deb, and a tiny Debian source tarball.

The fake commands live in a bin folder put first on PATH; each appends its
argv to calls.jsonl.  The archive they serve is ``offer.json``
({package: version}); a fake .deb is a plain tar holding ``control`` (package
and version) and the package's files.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

UPSTREAM_MTIME = 1_794_334_210
DEBIAN_MTIME = 1_794_781_852

_COMMON = f"""#!{sys.executable}
import json, os, pathlib, sys
state = pathlib.Path(os.environ["FAKE_APT_STATE"])
with (state / "calls.jsonl").open("a") as fh:
    fh.write(json.dumps([pathlib.Path(sys.argv[0]).name, *sys.argv[1:]]) + "\\n")
args = sys.argv[1:]
opts = {{}}
while len(args) >= 2 and args[0] == "-o":
    key, _, value = args[1].partition("=")
    opts[key] = value
    args = args[2:]
offer = json.loads((state / "offer.json").read_text())
"""

APT_GET = _COMMON + """
if args[0] == "update":
    if (state / "fail-update").exists():
        print("E: Failed to fetch InRelease"); sys.exit(100)
    pathlib.Path(opts["Dir::State::Lists"], "Packages").write_text(json.dumps(offer))
elif args[0] == "download":
    package, _, version = args[1].partition("=")
    lists = json.loads(pathlib.Path(opts["Dir::State::Lists"], "Packages").read_text())
    if lists.get(package) != version:
        print(f"E: Version '{version}' for '{package}' was not found"); sys.exit(100)
    src = state / "debs" / f"{package}_{version}.deb"
    name = f"{package}_{version.replace(':', '%3a')}_all.deb"
    pathlib.Path(name).write_bytes(src.read_bytes())
else:
    sys.exit(2)
"""

APT_CACHE = _COMMON + """
packages = pathlib.Path(opts["Dir::State::Lists"], "Packages")
lists = json.loads(packages.read_text()) if packages.exists() else {}
if args[0] == "policy":
    if args[1] in lists:
        print(f"{args[1]}:\\n  Installed: (none)\\n  Candidate: {lists[args[1]]}\\n"
              "  Version table:")
elif args[0] == "search":
    for name in sorted(lists):
        print(f"{name} - Linux kernel source for version {name[13:]} with Debian patches")
"""

DPKG_DEB = _COMMON + """
import tarfile
if args[0] == "-f":
    with tarfile.open(args[1]) as tar:
        control = json.loads(tar.extractfile("control").read())
    for field in args[2:]:
        print(f"{field}: {control[field]}")
elif args[0] == "-x":
    with tarfile.open(args[1]) as tar:
        members = [m for m in tar.getmembers() if m.name != "control"]
        tar.extractall(args[2], members=members, filter="fully_trusted")
else:
    sys.exit(2)
"""


class FakeApt:
    def __init__(self, root: Path) -> None:
        self.state = root / "fake-apt"
        self.bin = self.state / "bin"
        (self.state / "debs").mkdir(parents=True)
        self.bin.mkdir()
        for name, text in (("apt-get", APT_GET), ("apt-cache", APT_CACHE),
                           ("dpkg-deb", DPKG_DEB)):
            path = self.bin / name
            path.write_text(text)
            path.chmod(0o755)
        self.offer({})

    def offer(self, packages: dict[str, str]) -> None:
        (self.state / "offer.json").write_text(json.dumps(packages))

    def publish(self, package: str, version: str, tarball: bytes) -> None:
        """Put a .deb holding usr/src/<package>.tar.xz into the archive and offer it."""
        deb = self.state / "debs" / f"{package}_{version}.deb"
        with tarfile.open(deb, "w") as tar:
            _add(tar, "control", json.dumps({"Package": package, "Version": version}).encode())
            _add(tar, f"usr/src/{package}.tar.xz", tarball)
        offer = json.loads((self.state / "offer.json").read_text())
        offer[package] = version
        self.offer(offer)

    def publish_files(self, package: str, version: str,
                      files: dict[str, tuple[bytes, int]]) -> None:
        """A .deb holding files {path: (content, mode)}, offered like publish()."""
        deb = self.state / "debs" / f"{package}_{version}.deb"
        with tarfile.open(deb, "w") as tar:
            _add(tar, "control", json.dumps({"Package": package, "Version": version}).encode())
            for name, (data, mode) in files.items():
                _add(tar, name, data, mode=mode)
        offer = json.loads((self.state / "offer.json").read_text())
        offer[package] = version
        self.offer(offer)

    def fail_update(self, fail: bool = True) -> None:
        flag = self.state / "fail-update"
        if fail:
            flag.write_text("")
        else:
            flag.unlink(missing_ok=True)

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def verbs(self) -> list[str]:
        """The apt-get / apt-cache subcommands run so far, e.g. "apt-get update"."""
        out = []
        for call in self.calls():
            args = call[1:]
            while len(args) >= 2 and args[0] == "-o":
                args = args[2:]
            out.append(f"{call[0]} {args[0]}")
        return out


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int = UPSTREAM_MTIME,
         mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


DEBIAN_GITIGNORE = (".*\n*.o\n# Debian packaging: ignore everything at the top "
                    "level, since it isn't\n# included in our repository\n#\n/*\n!/debian/\n")


def kernel_tarball(top: str = "linux-source-7.3", sublevel: int = 4,
                   debian: tuple[str, ...] = ("fs/namei.c", "Makefile"),
                   mtimes: dict[str, int] | None = None) -> tuple[bytes, int]:
    """A .tar.xz shaped like Debian's: upstream files at one mtime, Debian's newer.

    Returns the tarball and how many non-directory entries it holds.  It has the
    traps of the real one: a top-level .gitignore ignoring everything, dot files,
    nested .gitignore files, and a symlink.
    """
    files = {
        "Makefile": f"VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = {sublevel}\nEXTRAVERSION =\n",
        ".gitignore": DEBIAN_GITIGNORE,
        ".clang-format": "BasedOnStyle: LLVM\n",
        "fs/namei.c": "int namei;\n",
        "fs/namespace.c": "int ns;\n",
        "kernel/watch_queue.c": "int wq;\n",
        "kernel/fork.c": "int fork;\n",
        "arch/mips/crypto/.gitignore": "*\n",
        "arch/mips/crypto/poly.S": "nop\n",
        "Documentation/netlink/spec.yaml": "a: b\n",
    }
    for i in range(40):
        files[f"lib/f{i}.c"] = f"int f{i};\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for folder in sorted({str(Path(f).parent) for f in files} - {"."}):
            info = tarfile.TarInfo(f"{top}/{folder}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, UPSTREAM_MTIME
            tar.addfile(info)
        for name, text in files.items():
            mtime = (mtimes or {}).get(name, DEBIAN_MTIME if name in debian else UPSTREAM_MTIME)
            _add(tar, f"{top}/{name}", text.encode(), mtime)
        link = tarfile.TarInfo(f"{top}/lib/link.c")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "f0.c", UPSTREAM_MTIME
        tar.addfile(link)
    return buf.getvalue(), len(files) + 1


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    apt = FakeApt(tmp_path)
    monkeypatch.setenv("FAKE_APT_STATE", str(apt.state))
    monkeypatch.setenv("PATH", f"{apt.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    return apt
