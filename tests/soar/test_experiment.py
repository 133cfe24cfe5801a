"""`soar-tabular` end to end with a tiny budget."""

import json

import pytest

from lions_jax import cli


def test_soar_tabular_tiny_run(tmp_path):
    argv = ["run", "soar-tabular", "--out", str(tmp_path / "r"), "--seeds", "2", "--no-progress"]
    extra = ["mdps=chain", "members=2", "betas=0.1", "num_iters=6", "num_expert=20"]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    arms = res["chain"]["arms"]
    assert set(arms) == {"L=1", "ensemble L=2", "SOAR L=2 β=0.1", "min L=2", "UCB"}
    # the ensemble consumes about twice the transitions of L = 1 per iteration
    ratio = arms["ensemble L=2"]["total_samples"]["mean"] / arms["L=1"]["total_samples"]["mean"]
    assert 1.3 < ratio < 3.0
    assert (tmp_path / "r" / "gap_chain.png").exists()


@pytest.mark.slow  # ~80 s of compilation (three vmapped SAC programs): `make test-slow`
def test_soar_brax_tiny_run(tmp_path):
    out = tmp_path / "b"
    argv = ["run", "soar-brax", "--preset", "tiny", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["methods"]["mlirl_sa"]
    assert m["sigma"] in (1.0, 10.0) and set(m["tune_auc"]) == {"1.0", "10.0"}
    labels = list(m["arms"])
    assert labels[0] == "base (L=1)" and labels[1].startswith("ensemble only (L=4, β=0")
    assert labels[2].startswith("SOAR (L=4, β=1")
    for arm in m["arms"].values():
        assert len(arm["steps_to_threshold"]) == 2  # num_seeds
        # the x-axis counts the reward rollouts: 2 iterations x 2 rollouts x <= 20 steps on top
        assert 80 < arm["total_samples"] <= 80 + 4 * 2 * 20 and arm["sac_env_steps"] == 80
    assert (out / "return_mlirl_sa.png").exists()
    assert "steps to base's final" in (out / "table.md").read_text()
