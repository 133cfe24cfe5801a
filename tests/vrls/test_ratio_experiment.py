"""`vrls-ratio` end to end with a tiny budget (CLI, outputs, every estimator present)."""

import json

import pytest

from lions_jax import cli
from lions_jax.vrls.ratio_experiment import VRLSRatioConfig


def test_vrls_ratio_tiny_run(tmp_path):
    out = tmp_path / "r"
    argv = ["run", "vrls-ratio", "--out", str(out), "--seeds", "2", "--no-progress"]
    extra = [
        "datasets=digits",
        "alphas=0.1,10",
        "test_sizes=50,300",
        "num_draws=6",
        "zetas=0.1",
        "predictor_steps=150",
        "cross_check_draws=1",
    ]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    ds = res["datasets"]["digits"]
    names = {"BBSE-hard", "BBSE-soft", "RLLS", "MLLS", "VRLS"}
    assert set(ds["mse"]) == names
    assert set(ds["acc"]) == names | {"uncorrected", "oracle"}
    for n in names:
        cell = ds["mse"][n]["alpha=0.1,m=300"]
        assert len(cell["per_seed"]) == 2 and cell["mean"] >= 0
    # EM and projected gradient solve the same problem (float64, tolerance 1e-10).
    assert ds["cross_check"]["em_vs_pgd"] < 1e-5
    # Under a strong shift (alpha = 0.1) the oracle correction beats the uncorrected predictor.
    acc = ds["acc"]
    assert acc["oracle"]["alpha=0.1,m=300"]["mean"] > acc["uncorrected"]["alpha=0.1,m=300"]["mean"]
    assert (out / "mse_digits.png").exists()
    assert "MSE of r̂" in (out / "table.md").read_text()


def test_config_validation():
    with pytest.raises(ValueError, match="vrls_zeta"):
        VRLSRatioConfig(zetas=(0.05,), vrls_zeta=0.1)
    with pytest.raises(ValueError, match="alphas"):
        VRLSRatioConfig(alphas=(0.0,))
    with pytest.raises(ValueError, match="datasets"):
        VRLSRatioConfig(datasets=("cifar10",))
