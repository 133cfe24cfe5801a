"""`mpo-games` end to end with a tiny budget (CLI, outputs) and its config validation."""

import json

import pytest

from lions_jax import cli
from lions_jax.mpo import games_experiment as ge


def test_mpo_games_tiny_run(tmp_path):
    """One method (trajectory-level SPPO), one size run and one where it is skipped (A^H > 4096)."""
    out = tmp_path / "r"
    argv = ["run", "mpo-games", "--out", str(out), "--seeds", "2", "--no-progress"]
    extra = ["sizes=[4x2x2,2x2x13]", "methods=[sppo_trajectory]", "num_updates=20", "num_log=2"]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    size = res["sizes"]["S=4, A=2, H=2"]
    assert set(size["methods"]) == {"sppo_trajectory"} and not size["skipped"]
    for m in size["methods"].values():
        assert len(m["average_curve_mean"]) == 2 and m["average_final"] >= 0
    skipped = res["sizes"]["S=2, A=2, H=13"]
    assert not skipped["methods"] and "8,192" in skipped["skipped"]["sppo_trajectory"]
    table = (out / "table.md").read_text()
    assert "## S=4, A=2, H=2" in table and "Note: sppo_trajectory skipped" in table
    assert len(list(out.glob("exploitability_*.png"))) == 1


def test_config_validation():
    with pytest.raises(ValueError, match="sizes"):
        ge.MPOGamesConfig(sizes=("4x1x2",))
    with pytest.raises(ValueError, match="methods"):
        ge.MPOGamesConfig(methods=("dpo",))
    with pytest.raises(ValueError, match="num_log"):
        ge.MPOGamesConfig(num_updates=100, num_log=7)


def test_mpo_lm_tiny_run(tmp_path):
    """``mpo-lm`` through the CLI: one method (trajectory-level SPPO; test_lm builds and checks
    the step-level batches and every loss), two seeds vmapped."""
    out = tmp_path / "lm"
    argv = ["run", "mpo-lm", "--out", str(out), "--seeds", "2", "--no-progress"]
    extra = [
        "methods=[sppo]", "num_iterations=1", "horizon=2", "num_samples=3", "num_prompts=4",
        "inner_steps=2", "sft_steps=3", "sft_batch=8", "d_model=16", "num_eval_prompts=4",
    ]  # fmt: skip
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    curves = res["sppo"]
    assert len(curves["exploitability"]) == 2 and min(curves["exploitability"]) >= 0
    assert all(abs(sum(p) - 1) < 1e-5 for p in curves["style_probs"])
    assert "| sppo |" in (out / "table.md").read_text()
    assert (out / "mpo_lm.png").exists()
