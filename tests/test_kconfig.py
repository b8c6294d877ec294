from __future__ import annotations

from pathlib import Path

import pytest

from harness import kconfig
from harness.errors import HarnessError
from harness.layout import Layout


def test_dropped_option_is_named_with_its_fragment() -> None:
    reqs = kconfig.parse_fragment("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n", "f")
    config = kconfig.read_config("CONFIG_A=y\nCONFIG_B=y\n")
    lost = kconfig.dropped(reqs, config)
    assert lost == ["CONFIG_B=n (f:2) ended up =y", 'CONFIG_C="x" (f:3) ended up not set']


def test_all_present_means_nothing_dropped() -> None:
    reqs = kconfig.parse_fragment("CONFIG_A=y\n# CONFIG_B is not set\n", "f")
    assert kconfig.dropped(reqs, kconfig.read_config("CONFIG_A=y\n")) == []


def test_garbage_in_a_fragment_is_an_error() -> None:
    with pytest.raises(HarnessError, match="f:2: not a config line"):
        kconfig.parse_fragment("CONFIG_A=y\nA=y\n", "f")


def test_profile_fragment_comes_last_and_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "configs"
    cfg.mkdir()
    (cfg / "base.config").write_text("CONFIG_A=y\nCONFIG_KASAN=n\n")
    (cfg / "feature.config").write_text("CONFIG_B=y\n")
    (cfg / "debug.config").write_text("CONFIG_KASAN=y\n")
    default = Layout(tmp_path, "default")
    debug = Layout(tmp_path, "debug")
    assert [f.name for f in kconfig.fragments(default)] == ["base.config", "feature.config"]
    assert [f.name for f in kconfig.fragments(debug)][-1] == "debug.config"
    merged, reqs = kconfig.merge(debug)
    assert "CONFIG_KASAN=y" in merged.splitlines()
    assert {r.option: r.value for r in reqs}["CONFIG_KASAN"] == "y"


def test_real_fragments_parse() -> None:
    for profile in ("default", "debug"):
        merged, reqs = kconfig.merge(Layout(Path(__file__).resolve().parent.parent, profile))
        assert any(r.option == "CONFIG_WATCH_QUEUE" for r in reqs)
        assert ("CONFIG_KASAN=y" in merged) == (profile == "debug")
