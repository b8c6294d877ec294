"""The command line: subcommands, their options, the handler table and its error paths."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import cli
from harness.errors import HarnessError
from harness.layout import REPO

DATA = Path(__file__).parent / "data" / "results"


@pytest.fixture(autouse=True)
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VMTEST_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path / "build"


def test_every_command_has_a_handler_and_a_subparser() -> None:
    parser = cli.parser()
    for name in cli.COMMANDS:
        args = parser.parse_args([name])
        assert args.command == name
    assert set(cli.COMMANDS) >= {"deps", "source", "config", "build", "run", "parse", "vmtest",
                                 "vmrun", "vmshell", "bench", "check-series", "export-patches",
                                 "reset-source"}


def test_options_belong_to_their_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.parser()
    args = parser.parse_args(["vmtest", "--profile", "debug", "-T", "ring_test.*loss*"])
    assert (args.profile, args.filter) == ("debug", "ring_test.*loss*")
    with pytest.raises(SystemExit):
        parser.parse_args(["vmtest", "--cmd", "true"])  # vmrun's option
    with pytest.raises(SystemExit):
        parser.parse_args(["parse", "--accel", "kvm"])


def test_plant_implies_the_debug_profile_in_its_own_build_folder() -> None:
    opts = cli._options(cli.parser().parse_args(["vmtest", "--plant", "leak"]))
    assert opts.profile == "debug" and opts.plant == "leak"
    assert cli._layout(opts).obj.name == "obj-debug-plant-leak"


def test_parse_of_a_missing_folder_is_one_line_and_status_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["parse", "--results", "/missing"]) == 2
    err = capsys.readouterr().err
    assert err == "error: /missing is not a results folder (it has no guest/)\n"


def test_an_unexpected_exception_is_one_line_a_log_and_status_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        build_dir: Path) -> None:
    def boom(s: object, args: argparse.Namespace) -> int:
        raise KeyError("no such thing")

    monkeypatch.setitem(cli.COMMANDS, "parse", cli.Command(boom, "x", ("results",)))
    assert cli.main(["parse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: internal error in the harness: KeyError: 'no such thing' "
                          "(traceback: ")
    log = Path(err.split("(traceback: ")[1].rstrip(")\n"))
    assert log.parent == build_dir / "logs" and "Traceback" in log.read_text()


def test_a_harness_error_is_one_line_and_status_2(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def fail(s: object, args: argparse.Namespace) -> int:
        raise HarnessError("make failed", Path("/b/build.log"))

    monkeypatch.setitem(cli.COMMANDS, "build", cli.Command(fail, "x", ("profile",)))
    assert cli.main(["build"]) == 2
    assert capsys.readouterr().err == "error: make failed (full log: /b/build.log)\n"


def test_parse_prints_the_verdict_of_a_results_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "leak"
    shutil.copytree(DATA / "leak", results)
    assert cli.main(["parse", "--results", str(results)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "3 passed, 4 failed, 0 skipped"  # the unlisted skip fails
    assert any(line.startswith("SKIPPED ring_test.ring.loss_counts") for line in out)
    assert any(line.startswith("SPLAT kmemleak (guest/kmemleak.txt:1)") for line in out)
    assert (results / "kcidb.json").exists()


def test_parse_keeps_what_the_run_recorded(tmp_path: Path) -> None:
    """A re-read results folder keeps the run's base and series in results.json and KCIDB."""
    results = tmp_path / "leak"
    shutil.copytree(DATA / "leak", results)
    (results / "results.json").write_text(json.dumps({"meta": {
        "base": "linux-source-7.3 7.3.4-1~bpo13+1", "series_sha256": "ab" * 32}}))
    cli.main(["parse", "--results", str(results)])
    checkout = json.loads((results / "kcidb.json").read_text())["checkouts"][0]
    assert checkout["patchset_hash"] == "ab" * 32
    assert json.loads((results / "results.json").read_text())["meta"]["base"].startswith(
        "linux-source-7.3")


def test_the_venv_target_does_not_rerun_deps(tmp_path: Path) -> None:
    """make's venv target depends on a stamp, not on the .venv/bin/python symlink."""
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").mkdir()
    (tmp_path / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    stamp = tmp_path / ".venv" / ".deps-stamp"
    stamp.write_text("")
    out = subprocess.run(["make", "-n", "-C", str(tmp_path), "unit"], text=True,
                         capture_output=True, check=True).stdout
    assert "harness deps" not in out
    stamp.unlink()
    out = subprocess.run(["make", "-n", "-C", str(tmp_path), "unit"], text=True,
                         capture_output=True, check=True).stdout
    assert "harness deps" in out


def test_make_help_names_every_target() -> None:
    text = (REPO / "Makefile").read_text()
    phony = text.split(".PHONY:")[1].split("\n\n")[0].replace("\\", " ").split()
    helptext = subprocess.run(["make", "-s", "-C", str(REPO), "help"], text=True,
                              capture_output=True, check=True).stdout
    for target in phony:
        if target not in ("all", "help"):
            assert target in helptext, target


def test_a_filter_that_matches_nothing_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from harness import suite

    monkeypatch.setattr(suite, "guest_tests", lambda *a: [])
    monkeypatch.setitem(cli.COMMANDS, "run", cli.Command(
        lambda s, args: len(cli._tests(s)), "x", ("profile", "filter")))
    assert cli.main(["run", "-T", "nothing_here.*"]) == 2
    assert "T=nothing_here.* matches no program" in capsys.readouterr().err


def test_an_invalid_kcidb_file_is_a_harness_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import kcidb

    results = tmp_path / "leak"
    shutil.copytree(DATA / "leak", results)
    monkeypatch.setattr(kcidb, "check_file", lambda path: "status is not one of [...]")
    assert cli.main(["parse", "--results", str(results)]) == 2
