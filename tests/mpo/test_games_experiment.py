"""`mpo-games` end to end with a tiny budget (CLI, outputs) and its config validation."""

import json

import pytest

from lions_jax import cli
from lions_jax.mpo import games_experiment as ge


def test_mpo_games_tiny_run(tmp_path):
    out = tmp_path / "r"
    argv = ["run", "mpo-games", "--out", str(out), "--seeds", "2", "--no-progress"]
    extra = ["sizes=4x2x2", "methods=[ompo]", "num_updates=20", "num_log=2"]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    size = res["sizes"]["S=4, A=2, H=2"]
    assert set(size["methods"]) == {"ompo"}
    for m in size["methods"].values():
        assert len(m["average_curve_mean"]) == 2 and m["average_final"] >= 0
    assert "## S=4, A=2, H=2" in (out / "table.md").read_text()
    assert list(out.glob("exploitability_*.png"))


def test_config_validation():
    with pytest.raises(ValueError, match="sizes"):
        ge.MPOGamesConfig(sizes=("4x1x2",))
    with pytest.raises(ValueError, match="methods"):
        ge.MPOGamesConfig(methods=("dpo",))
    with pytest.raises(ValueError, match="num_log"):
        ge.MPOGamesConfig(num_updates=100, num_log=7)
