"""Fetching linux-source-7.3 with a private apt state, and telling Debian's files apart."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness import debian
from harness.errors import HarnessError
from harness.layout import Layout
from tests.fakes import FakeApt, kernel_tarball

VERSION = "7.3.4-1~bpo13+1"


@pytest.fixture
def layout(tmp_path: Path, fake_apt: FakeApt) -> Layout:
    fake_apt.publish("linux-source-7.2", "7.2.13-1~bpo13+1", b"x")
    fake_apt.publish("linux-source-7.3", VERSION, kernel_tarball()[0])
    return Layout(tmp_path)


def test_first_fetch_downloads_then_the_cache_serves(layout: Layout, fake_apt: FakeApt) -> None:
    log = layout.build / "log"
    first = debian.fetch(layout, log)
    assert (first.package, first.version) == ("linux-source-7.3", VERSION)
    assert first.how.startswith("downloaded")
    assert first.deb == layout.cache / "apt" / "debs" / f"linux-source-7.3_{VERSION}_all.deb"
    assert first.deb.exists() and first.tarball == "usr/src/linux-source-7.3.tar.xz"
    assert fake_apt.verbs() == ["apt-get update", "apt-cache policy", "apt-get download",
                                "dpkg-deb -f"]
    again = debian.fetch(layout, log)
    assert again.how == "cached" and again.deb == first.deb
    assert fake_apt.verbs()[4:] == ["apt-cache policy"]  # lists fresh: no update, no download


def test_apt_never_sees_the_system_configuration(layout: Layout, fake_apt: FakeApt) -> None:
    debian.fetch(layout, layout.build / "log")
    root = layout.cache / "apt"
    assert (root / "sources.list").read_text() == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian trixie-backports main\n")
    for call in fake_apt.calls():
        if call[0] == "dpkg-deb":
            continue
        opts = dict(call[i + 1].split("=", 1) for i, a in enumerate(call) if a == "-o")
        assert opts["Dir::Etc::sourcelist"] == str(root / "sources.list")
        assert opts["Dir::Etc::sourceparts"] == "/dev/null"
        assert opts["Dir::State::Lists"] == str(root / "lists")
        assert opts["Dir::Cache"] == str(root / "cache")
        assert opts["Dir::State::status"] == "/dev/null"
        assert opts["Debug::NoLocking"] == "1"


def _age_lists(layout: Layout, hours: float) -> None:
    stamp = layout.cache / "apt" / "lists" / "vmtest-updated"
    old = time.time() - hours * 3600
    os.utime(stamp, (old, old))


def test_a_newer_upload_replaces_the_cached_deb_after_a_day(layout: Layout,
                                                            fake_apt: FakeApt) -> None:
    log = layout.build / "log"
    first = debian.fetch(layout, log)
    fake_apt.publish("linux-source-7.3", "7.3.5-1~bpo13+1", kernel_tarball(sublevel=5)[0])
    assert debian.fetch(layout, log).version == VERSION  # lists not a day old yet
    _age_lists(layout, 25)
    second = debian.fetch(layout, log)
    assert second.version == "7.3.5-1~bpo13+1" and second.how.startswith("downloaded")
    assert not first.deb.exists()  # one .deb of 160 MB is enough


def test_gone_package_names_what_is_offered_instead(layout: Layout, fake_apt: FakeApt) -> None:
    fake_apt.offer({"linux-source-7.2": "7.2.13-1", "linux-source-7.10": "7.10.1-1",
                    "linux-source-7.4": "7.4.1-1~bpo13+1"})
    with pytest.raises(HarnessError) as exc:
        debian.fetch(layout, layout.build / "log")
    assert ("trixie-backports no longer offers linux-source-7.3: it offers linux-source-7.2, "
            "linux-source-7.4, linux-source-7.10 instead") in exc.value.message


def test_nothing_offered_at_all(layout: Layout, fake_apt: FakeApt) -> None:
    fake_apt.offer({})
    with pytest.raises(HarnessError, match=r"offers no linux-source-X\.Y at all"):
        debian.fetch(layout, layout.build / "log")


def test_failed_refresh_falls_back_to_old_lists(layout: Layout, fake_apt: FakeApt) -> None:
    log = layout.build / "log"
    debian.fetch(layout, log)
    _age_lists(layout, 48)
    fake_apt.fail_update()
    again = debian.fetch(layout, log)
    assert again.version == VERSION
    assert "cached; apt-get update failed, using lists 48 h old" in again.how


def test_failed_first_update_is_an_error(layout: Layout, fake_apt: FakeApt) -> None:
    fake_apt.fail_update()
    with pytest.raises(HarnessError, match=r"apt-get update \(trixie-backports\) failed"):
        debian.fetch(layout, layout.build / "log")


def test_policy_and_search_parsing() -> None:
    policy = ("linux-source-7.3:\n  Installed: (none)\n  Candidate: 1:7.3.4-1\n"
              "  Version table:\n     1:7.3.4-1 100\n")
    assert debian.parse_candidate(policy) == "1:7.3.4-1"
    assert debian.parse_candidate("x:\n  Candidate: (none)\n") == ""
    assert debian.parse_candidate("") == ""
    search = ("linux-source-7.3 - Linux kernel source\nlinux-source - meta\n"
              "linux-source-7.2 - Linux kernel source\n")
    assert debian.parse_offered(search) == ["linux-source-7.2", "linux-source-7.3"]
    assert debian.deb_name("linux-source-7.3", "1:7.3-1") == "linux-source-7.3_1%3a7.3-1_all.deb"


# --- the mtime rule -------------------------------------------------------------------

def _tree(upstream: int, newer: int = 0, older: int = 0, other: int = 0) -> dict[str, int]:
    mtimes = {f"up/{i}.c": 1000 for i in range(upstream)}
    mtimes.update({f"deb/{i}.c": 2000 + i % 3 for i in range(newer)})
    mtimes.update({f"old/{i}.c": 500 for i in range(older)})
    mtimes.update({f"other/{i}.c": 1500 for i in range(other)})
    return mtimes


def test_newer_than_the_commonest_mtime_is_debian() -> None:
    split = debian.split_mtimes(_tree(95_850, newer=105))
    assert split.upstream_mtime == 1000 and split.upstream_files == 95_850
    assert len(split.debian) == 105 and split.debian == sorted(split.debian)
    assert all(path.startswith("deb/") for path in split.debian)
    assert split.header().startswith("# upstream mtime 1000: 95850 files; 105 newer")


@pytest.mark.parametrize(("mtimes", "why"), [
    (_tree(60, newer=0, other=40), "holds only 60 of 100 files"),
    (_tree(1000, newer=5, older=1), r"1 file\(s\) are older than the commonest mtime"),
    (_tree(1000), "no file is newer than the rest"),
    (_tree(95_000, newer=3000), "3000 files are newer than the rest"),
    ({}, "no files"),
])
def test_an_implausible_split_is_refused(mtimes: dict[str, int], why: str) -> None:
    with pytest.raises(HarnessError, match=why):
        debian.split_mtimes(mtimes)


def test_tree_mtimes_counts_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.c").write_text("a")
    os.utime(tmp_path / "d" / "a.c", (5, 5))
    (tmp_path / "l.c").symlink_to("d/a.c")
    (tmp_path / "ld").symlink_to("d")
    assert debian.tree_mtimes(tmp_path) == {"d/a.c": 5}
