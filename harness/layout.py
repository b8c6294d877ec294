"""Where everything lives.  One place, so every stage agrees."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILES = ("default", "debug")


@dataclass(frozen=True)
class Layout:
    repo: Path
    profile: str = "default"
    obj_name: str = ""  # overrides the per-profile build folder (check-series)

    @property
    def build(self) -> Path:
        return Path(os.environ.get("VMTEST_BUILD_DIR", self.repo / "build"))

    @property
    def src(self) -> Path:
        """The kernel git tree: base commit plus the series."""
        return self.build / "src"

    @property
    def obj(self) -> Path:
        """Out-of-tree kernel build, one per profile so both stay warm."""
        return self.build / (self.obj_name or f"obj-{self.profile}")

    @property
    def headers(self) -> Path:
        return self.obj / "hdr"

    @property
    def selftests_out(self) -> Path:
        return self.obj / "selftests"

    @property
    def bzimage(self) -> Path:
        return self.obj / "arch/x86/boot/bzImage"

    @property
    def logs(self) -> Path:
        return self.build / "logs"

    @property
    def results_root(self) -> Path:
        return self.build / "results"

    @property
    def patches(self) -> Path:
        return self.repo / "patches"

    @property
    def configs(self) -> Path:
        return self.repo / "configs"

    @property
    def selftests(self) -> Path:
        return self.repo / "selftests"

    @property
    def cache(self) -> Path:
        """Facts about this host that outlive a clone (the KVM probe)."""
        base = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        return Path(base) / "watch_queue-vmtest"


def default_layout(profile: str = "default") -> Layout:
    return Layout(REPO, profile)
