"""deps: the Debian packages and the venv, with fake dpkg-query, apt-get and pip."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness import deps
from harness.errors import HarnessError
from harness.layout import Layout


def tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    # dpkg-query: every package installed except those in $MISSING (space separated)
    tool(bin_dir, "dpkg-query", 'shift 3; for p in "$@"; do case " $MISSING " in '
         '*" $p "*) echo "$p not-installed";; *) echo "$p installed";; esac; done\n')
    tool(bin_dir, "apt-get", 'echo "apt-get $*" >>"$CALLS"; [ "$1" = update ] && exit 0; '
         '[ -n "$APT_FAIL" ] && { echo "E: Unable to locate package $APT_FAIL"; exit 100; }; '
         'exit 0\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("MISSING", "")
    return bin_dir


def test_nothing_missing(fake_bin: Path, tmp_path: Path) -> None:
    assert deps.ensure_packages(tmp_path / "log", install=True) == []


def test_missing_and_not_root_names_the_command(fake_bin: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING", "mandoc keyutils")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HarnessError, match="missing Debian packages: keyutils mandoc; install "
                       "them with: sudo apt-get update && sudo apt-get install -y "
                       "--no-install-recommends keyutils mandoc"):
        deps.ensure_packages(tmp_path / "log", install=True)
    assert not (tmp_path / "calls").exists()


def test_no_install_only_checks(fake_bin: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING", "mandoc")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(HarnessError, match="missing Debian packages: mandoc"):
        deps.ensure_packages(tmp_path / "log", install=False)


def test_a_failed_apt_get_install_is_one_line_with_the_log(
        fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING", "mandoc")
    monkeypatch.setenv("APT_FAIL", "mandoc")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(HarnessError) as exc:
        deps.ensure_packages(tmp_path / "log", install=True)
    assert "apt-get install failed (exit 100): E: Unable to locate package mandoc" in str(exc.value)
    assert exc.value.log == tmp_path / "log"


def test_install_that_leaves_a_package_missing_is_an_error(
        fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSING", "mandoc")  # apt-get "succeeds", dpkg still says missing
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(HarnessError, match="apt-get could not install: mandoc"):
        deps.ensure_packages(tmp_path / "log", install=True)
    assert (tmp_path / "calls").read_text().splitlines()[0] == "apt-get update"


def test_the_venv_is_left_alone_when_requirements_did_not_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout(tmp_path)
    (tmp_path / "requirements.txt").write_text("pytest==9.2.0\n")
    venv = tmp_path / ".venv"
    tool(venv / "bin", "python", 'echo "python $*" >>"$CALLS"\n')
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    assert deps.ensure_venv(layout, tmp_path / "log")  # no stamp yet: pip runs
    assert "-m pip install -q -r" in (tmp_path / "calls").read_text()
    (tmp_path / "calls").unlink()
    assert not deps.ensure_venv(layout, tmp_path / "log")
    assert not (tmp_path / "calls").exists()


def test_a_failing_pip_is_a_harness_error(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    (tmp_path / "requirements.txt").write_text("nosuchpackage==1\n")
    tool(tmp_path / ".venv" / "bin", "python", 'echo "ERROR: No matching distribution"; exit 1\n')
    with pytest.raises(HarnessError, match=r"pip install failed .*No matching distribution"):
        deps.ensure_venv(layout, tmp_path / "log")
