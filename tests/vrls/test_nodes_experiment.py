"""`vrls-nodes` end to end with a tiny budget on digits (CLI, outputs, every method present), the
split designs, and config validation."""

import json

import numpy as np
import pytest

from lions_jax import cli

# Importing the module registers the experiment (in case the registry's module list lacks it).
from lions_jax.vrls import nodes_experiment as ne


def test_vrls_nodes_tiny_run(tmp_path):
    out = tmp_path / "r"
    argv = ["run", "vrls-nodes", "--out", str(out), "--seeds", "2", "--no-progress"]
    extra = [
        "dataset=digits",
        "n_train=400",
        "n_val=100",
        "n_test=100",
        "hidden=32",
        "pred_hidden=32",
        "num_steps=150",
        "eval_every=50",
        "pred_steps=100",
        "fedavg=false",  # FedAvg is FedProx with mu = 0: one compilation less
    ]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == "digits"
    names = {"ERM", "FedProx", "IW-ERM (BBSE)", "IW-ERM (VRLS)", "IW-ERM (true ratios)"}
    assert set(res["splits"]) == {"5clients", "dirichlet"}
    for split in res["splits"].values():
        assert set(split["methods"]) == names
        for m in names:
            cell = split["methods"][m]
            assert len(cell["per_seed"]) == 2
            assert all(0.0 <= a <= 1.0 for a in cell["per_seed"])
            assert len(cell["curve_mean"]) == len(split["eval_step"]) == 3
        for e in ("BBSE", "MLLS", "VRLS"):
            assert np.isfinite(split["weights_mse"][e]["mean"])
            assert 0.0 <= split["q_mse"][e]["mean"] <= 1.0
    five = res["splits"]["5clients"]["methods"]
    # Under 5clients the nodes' training data hold ~1 % of each test class, so plain averaging
    # barely predicts the test classes, while reweighting by the true ratios does: a large,
    # robust gap on every seed (tens of points even at this tiny size).
    gaps = np.subtract(five["IW-ERM (true ratios)"]["per_seed"], five["ERM"]["per_seed"])
    assert np.all(gaps > 0.15), gaps
    table = (out / "table.md").read_text()
    assert "## 5clients" in table and "## dirichlet" in table and "IW-ERM (VRLS)" in table
    assert (out / "acc_5clients.png").exists() and (out / "acc_dirichlet.png").exists()


def test_methods():
    assert ne.methods(ne.VRLSNodesConfig())[:3] == ("ERM", "FedAvg", "FedProx")
    assert "FedAvg" not in ne.methods(ne.VRLSNodesConfig(fedavg=False))
    assert ne.PRESETS["paper"].num_seeds >= 5 and ne.PRESETS["paper"].num_steps == 1_000


def test_make_node_data_5clients_design():
    cfg = ne.VRLSNodesConfig(dataset="digits", n_train=300, n_val=60, n_test=100, num_seeds=2)
    _, pools, _ = ne.load_pools("digits")
    data = ne.make_node_data(cfg, "5clients", pools, np.random.default_rng(0))
    assert data["x_train"].shape == (5, 300, 64) and data["x_test"].shape == (5, 100, 64)
    for k in range(5):
        assert np.mean(data["y_train"][k] == k + 5) == pytest.approx(0.95, abs=0.01)
        assert np.mean(data["y_test"][k] == k) == pytest.approx(0.95, abs=0.01)
    np.testing.assert_allclose(data["q_test"].sum(1), 1.0)
    dirich = ne.make_node_data(cfg, "dirichlet", pools, np.random.default_rng(1))
    assert not np.allclose(dirich["p_train"], dirich["q_test"])
    assert dirich["y_train"].shape == (5, 300)


@pytest.mark.parametrize(
    "overrides",
    [
        {"dataset": "mnist"},
        {"splits": ("5clients", "bogus")},
        {"splits": ()},
        {"num_nodes": 6},  # 5clients needs K <= C/2
        {"num_nodes": 1, "splits": ("dirichlet",)},
        {"n_val": 3_000},
        {"num_seeds": 1},
        {"num_steps": 301},  # not a multiple of local_steps
        {"eval_every": 52},
        {"local_steps": 1},
        {"dirichlet_alpha": 0.0},
        {"major_frac": 1.0},
    ],
)
def test_config_validation(overrides):
    with pytest.raises(ValueError):
        ne.VRLSNodesConfig(**overrides)


def test_cli_rejects_bad_override(capsys):
    assert cli.main(["run", "vrls-nodes", "--out", "/nonexistent/x", "splits=nope"]) == 2
    assert "splits" in capsys.readouterr().err
