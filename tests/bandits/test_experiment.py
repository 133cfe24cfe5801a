"""`bandits` end to end with a tiny budget (CLI, outputs, every cell present) and its config
validation; the closed-form minimax rows against simulation."""

import json

import jax
import numpy as np
import pytest

from lions_jax import cli
from lions_jax.bandits import experiment as be


def test_bandits_tiny_run(tmp_path):
    out = tmp_path / "r"
    argv = ["run", "bandits", "--out", str(out), "--seeds", "4", "--no-progress"]
    extra = [
        "horizons=[400]",
        "num_log=10",
        "opponents=[minimax,biased,always_bet_call,adaptive]",
    ]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["games"]) == {"rps", "kuhn"}
    rps = res["games"]["rps"]
    assert rps["br_value_per_round"]["biased"] == pytest.approx(0.3)
    assert res["games"]["kuhn"]["comparator_exploitability"] > 0  # the ε-floored equilibrium
    for game, opps in (
        ("rps", ("minimax", "biased", "adaptive")),
        ("kuhn", ("minimax", "always_bet_call", "adaptive")),
    ):
        cells = res["games"][game]["cells"]
        for o in opps:
            for v in ("minimax", "base", "PA"):
                for t in (400,):
                    assert np.isfinite(cells[f"{o}/{v}/{t}"]["regret_best"])
            assert cells[f"{o}/minimax/400"]["regret_comparator"] == 0.0
    assert set(res["games"]["rps"]["slopes"]) == {"minimax", "base", "PA"}
    table = (out / "table.md").read_text()
    assert "## rps" in table and "## kuhn" in table and "slope" in table
    assert (out / "regret_rps.png").exists() and (out / "regret_kuhn.png").exists()


def test_closed_form_minimax_matches_simulation():
    """The experiment's exact minimax rows equal the simulator's α = 0 run (expected quantities)."""
    cfg = be.BanditsExperimentConfig(games=("kuhn",), horizons=(200,), num_seeds=2, num_log=4)
    s = be.setting(cfg, "kuhn")
    opponents = list(s["fixed"]) + s["dynamic"]
    rounds = [{"adaptive": 0, "switching": 100}.get(o, 200) for o in opponents]
    strategies = [s["fixed"].get(o, s["switch_from"]) for o in opponents]
    exact = be._comparator_cell(cfg, s, 200, opponents, rounds, strategies)
    from lions_jax.bandits import BanditConfig, make_train

    for o, r, y in zip(opponents, rounds, strategies, strict=True):
        kind = "fixed" if r == 200 else ("best_response" if r == 0 else "switching")
        bcfg = BanditConfig(
            game=s["game"], comparator=s["comparator"], num_rounds=200, opponent=kind,
            opponent_strategy=y, variant="comparator", base="rm", num_log=4,
        )  # fmt: skip
        sim = make_train(bcfg)(jax.random.key(0))
        for k in ("regret_best", "expected_payoff"):
            np.testing.assert_allclose(
                np.asarray(getattr(sim, k)), exact[o][k][0, 0], rtol=1e-4, atol=1e-3
            )


def test_config_validation():
    with pytest.raises(ValueError, match="games"):
        be.BanditsExperimentConfig(games=("chess",))
    with pytest.raises(ValueError, match="horizons"):
        be.BanditsExperimentConfig(horizons=(150,), num_log=100)
    with pytest.raises(ValueError, match="opponents"):
        be.BanditsExperimentConfig(opponents=("nobody",))
    with pytest.raises(ValueError, match="cs"):
        be.BanditsExperimentConfig(cs=(0.0,))
    assert be.PRESETS["paper"].horizons[-1] == 1_000_000 and be.PRESETS["quick"].num_seeds >= 50
